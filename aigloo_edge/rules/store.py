"""SQLite persistence of the engine's `Snapshot` (one file in the state directory).

Only what changed is written, in one transaction per decision batch; WAL keeps writes cheap.
A row that no longer parses (hand-edited, older version) is dropped with a warning: the rule
then starts idle, which is safe, rather than the engine refusing to start.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable
from pathlib import Path

from aigloo_edge.rules.state import ActuatorRuntime, RuleRuntime, Snapshot

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS rule_state (id TEXT PRIMARY KEY, state TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS actuator_state (name TEXT PRIMARY KEY, state TEXT NOT NULL);
"""


class StateStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def load(self) -> Snapshot:
        snapshot = Snapshot()
        for key, text in self._db.execute("SELECT id, state FROM rule_state"):
            try:
                snapshot.rules[key] = RuleRuntime.from_json(text)
            except (ValueError, TypeError) as exc:
                log.warning("dropped saved state of rule %s: %s", key, exc, extra={"rule": key})
        for key, text in self._db.execute("SELECT name, state FROM actuator_state"):
            try:
                snapshot.actuators[key] = ActuatorRuntime.from_json(text)
            except (ValueError, TypeError) as exc:
                log.warning("dropped saved state of actuator %s: %s", key, exc)
        return snapshot

    def save(
        self,
        rules: Iterable[tuple[str, RuleRuntime]],
        actuators: Iterable[tuple[str, ActuatorRuntime]],
        removed_rules: Iterable[str] = (),
    ) -> None:
        with self._db:  # one transaction
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT OR REPLACE INTO rule_state VALUES (?, ?)",
                [(key, runtime.to_json()) for key, runtime in rules],
            )
            self._db.executemany(
                "INSERT OR REPLACE INTO actuator_state VALUES (?, ?)",
                [(key, runtime.to_json()) for key, runtime in actuators],
            )
            self._db.executemany(
                "DELETE FROM rule_state WHERE id = ?", [(key,) for key in removed_rules]
            )

    def close(self) -> None:
        self._db.close()
