"""Size-based rotation of a recording: FILE, then FILE.1 (newest) … FILE.K (oldest).

When the next line would take FILE past its limit, FILE becomes FILE.1, FILE.1 becomes FILE.2
and so on; whatever would become FILE.(K+1) is deleted. Lines are written whole, so a line is
never split across files (a single line longer than the limit gets a file of its own).

Not `logging.handlers.RotatingFileHandler`: it counts characters rather than bytes, reports a
failed write on stderr instead of raising (a full disk would lose a recording silently), and with
no backups it truncates the file in place.
"""

from __future__ import annotations

import logging
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Final, Self

log = logging.getLogger(__name__)

BYTES_PER_MB: Final = 1_000_000
DEFAULT_KEEP: Final = 5


def numbered(path: Path, number: int) -> Path:
    """FILE.N, the Nth most recent rotated file of FILE."""
    return path.with_name(f"{path.name}.{number}")


def rotated_files(path: Path) -> list[tuple[int, Path]]:
    """FILE's rotated files that exist, as (N, FILE.N), newest (N = 1) first."""
    if not path.parent.is_dir():
        return []
    prefix = f"{path.name}."
    found = [
        (int(candidate.name[len(prefix) :]), candidate)
        for candidate in path.parent.iterdir()
        if candidate.name.startswith(prefix) and candidate.name[len(prefix) :].isdecimal()
    ]
    return sorted(found)


def recording_files(path: Path) -> list[Path]:
    """FILE and its rotated files in time order, oldest first: FILE.K … FILE.1, FILE."""
    older = [rotated for _, rotated in reversed(rotated_files(path))]
    return [*older, path] if path.exists() else older


def rotate(path: Path, keep: int) -> None:
    """Shift FILE → FILE.1 → FILE.2 …, keeping `keep` rotated files (0: FILE is deleted)."""
    for number, rotated in reversed(rotated_files(path)):  # oldest first: never overwrite
        if number >= keep:
            rotated.unlink()
        else:
            rotated.replace(numbered(path, number + 1))
    if keep > 0:
        path.replace(numbered(path, 1))
    else:
        path.unlink(missing_ok=True)


class RotatingWriter:
    """Appends whole lines to FILE, rotating it before it would pass `max_bytes`.

    Without `max_bytes` it never rotates. Each line is flushed: a recording is read while it grows
    and must survive a crash.
    """

    def __init__(self, path: Path, *, max_bytes: int | None = None, keep: int = DEFAULT_KEEP):
        if max_bytes is not None and max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        if keep < 0:
            raise ValueError("keep must be 0 or more")
        self.path = path
        self.max_bytes = max_bytes
        self.keep = keep
        self.rotations = 0
        self._out = self._open()

    def write_line(self, line: str) -> None:
        data = line.encode("utf-8") + b"\n"
        if self._would_overflow(len(data)):
            self._rotate()
        self._out.write(data)
        self._out.flush()

    def close(self) -> None:
        self._out.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _would_overflow(self, size: int) -> bool:
        if self.max_bytes is None:
            return False
        written = self._out.tell()
        return written > 0 and written + size > self.max_bytes

    def _rotate(self) -> None:
        self._out.close()
        rotate(self.path, self.keep)
        self.rotations += 1
        log.info("rotated %s (keeping %d older files)", self.path, self.keep)
        self._out = self._open()

    def _open(self) -> BinaryIO:
        out = self.path.open("ab")
        _end_torn_line(self.path, out)
        return out


def _end_torn_line(path: Path, out: BinaryIO) -> None:
    """A recorder killed mid-write leaves a partial last line: end it, so the next line stays
    whole (the partial one is then reported as one bad line)."""
    if out.tell() == 0:
        return
    with path.open("rb") as existing:
        existing.seek(-1, 2)
        if existing.read(1) != b"\n":
            out.write(b"\n")
