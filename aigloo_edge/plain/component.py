"""The `plain` component: republishes chosen JSON state fields as retained plain-text topics.

For phone apps that cannot read JSON: `aigloo/power/battery` → `aigloo/power/battery/soc_pct`
= `57`, and so on (see `fields`). Values are retained like their source and published only when
they change; a field that disappears, or a cleared source, clears its topics (empty retained).
Telemetry is retained with a message expiry, so its plain values carry one too: a fixed
`telemetry_expiry_s` from the config (the session's inbound messages do not carry the
source's remaining expiry), refreshed while the source keeps coming.

A payload that does not validate clears the plain topics of its source (they no longer say
what the source says) and is reported through the session (`bridge/plain/rejected`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Final

from aigloo_edge.errors import NotConnectedError, PayloadError
from aigloo_edge.mqtt import Inbound, Session
from aigloo_edge.plain.changes import ChangeFilter
from aigloo_edge.plain.fields import PlainUpdate, plain_values, source_filters
from aigloo_edge.plain.settings import PlainConfig

log = logging.getLogger(__name__)

# An unchanged expiring value is published again after a third of its expiry, so a source that
# keeps coming (every telemetry interval) never lets it lapse.
REFRESH_FRACTION: Final = 3.0


class PlainValues:
    """Routes the JSON state topics of the enabled groups to their plain topics; see module."""

    def __init__(
        self,
        session: Session,
        config: PlainConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.session = session
        self.config = config
        self.topics = session.topics
        self._groups = frozenset(config.groups)
        self._changes = ChangeFilter()
        self._clock = clock
        for topic_filter in source_filters(self.topics, self._groups):
            session.route(topic_filter, self._on_state)
        session.on_connect(self._on_connect)

    async def run(self) -> None:
        """Serve until cancelled; the work happens in the session's routes (run it beside)."""
        log.info("plain values for %s", ", ".join(self.config.groups))
        await asyncio.Event().wait()

    async def _on_connect(self) -> None:
        # The broker may have lost what we published (no persistence): say everything again.
        self._changes.forget_all()

    async def _on_state(self, message: Inbound) -> None:
        try:
            update = plain_values(self.topics, message.topic, message.payload, self._groups)
        except PayloadError as exc:
            await self._publish(plain_values(self.topics, message.topic, b"", self._groups))
            await self.session.reject(message.topic, str(exc), "invalid")
            return
        await self._publish(update)

    async def _publish(self, update: PlainUpdate | None) -> None:
        if update is None:
            return
        expiry = self.config.telemetry_expiry_s if update.expiring else None
        refresh = expiry / REFRESH_FRACTION if expiry is not None else None
        now = self._clock()
        for topic, value in update.values.items():
            if not self._changes.due(topic, value, now, refresh):
                continue
            try:
                await self.session.publish(
                    topic,
                    b"" if value is None else value,
                    retain=True,
                    expiry_s=None if value is None else expiry,
                )
            except NotConnectedError:
                # The reconnect forgets what was sent: every value goes out again then.
                log.debug("not connected: %s waits for the reconnect", topic)
                return
            self._changes.sent(topic, value, now)
