"""Capped exponential backoff with jitter for reconnect loops."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Delays of `initial * factor**n`, capped at `maximum`, each scaled by a random 50-100 %.

    The jitter keeps a fleet of agents from reconnecting in lock-step after the broker returns.
    """

    initial: float = 0.5
    maximum: float = 4.0
    factor: float = 2.0
    rng: random.Random = field(default_factory=random.Random)
    attempts: int = 0

    def next_delay(self) -> float:
        delay = min(self.maximum, self.initial * self.factor**self.attempts)
        self.attempts += 1
        return delay * self.rng.uniform(0.5, 1.0)

    def reset(self) -> None:
        self.attempts = 0
