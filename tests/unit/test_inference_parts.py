"""Small pure parts of the inference path."""

from __future__ import annotations

import asyncio

from aigloo_edge.inference.engine import Event, Finished, Piece
from aigloo_edge.inference.mlx_engine import _merge_ready


async def test_pieces_that_piled_up_are_sent_as_one() -> None:
    """Pieces waiting in the queue join the one just taken; the Finished stays last, unmerged."""
    queue: asyncio.Queue[Event | BaseException] = asyncio.Queue()
    done = Finished("stop", 3, 3, 0.1, 9.0)
    for item in (Piece("lo"), Piece(" there"), done):
        queue.put_nowait(item)
    assert _merge_ready(Piece("hel"), queue) == Piece("hello there")
    assert queue.get_nowait() == done
    assert queue.empty()


async def test_a_lone_piece_or_the_end_passes_as_it_is() -> None:
    """Nothing waiting: the piece is unchanged; a Finished is never merged into."""
    queue: asyncio.Queue[Event | BaseException] = asyncio.Queue()
    assert _merge_ready(Piece("a"), queue) == Piece("a")
    queue.put_nowait(Piece("b"))
    done = Finished("length", 1, 1, None, None)
    assert _merge_ready(done, queue) == done
