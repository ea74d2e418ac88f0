"""Which models the cluster serves right now: the union over online nodes' retained `info`."""

from __future__ import annotations

from aigloo_edge.errors import PayloadError
from aigloo_edge.mqtt import Inbound, Session
from aigloo_edge.payloads import NodeInfo, parse_availability


class ModelDirectory:
    """Follows `nodes/+/info` and `nodes/+/availability` on `session`."""

    def __init__(self, session: Session) -> None:
        self.topics = t = session.topics
        self._models: dict[str, tuple[str, ...]] = {}
        self._online: set[str] = set()
        self._session = session
        session.route(t.filter("node_info"), self._on_info)
        session.route(t.filter("node_availability"), self._on_availability)

    def models(self) -> list[str]:
        return sorted({m for node in self._online for m in self._models.get(node, ())})

    def _node(self, topic: str) -> str:
        matched = self.topics.match(topic)
        assert matched is not None  # routed by a contract filter
        return matched.params["node"]

    async def _on_info(self, message: Inbound) -> None:
        node = self._node(message.topic)
        if not message.payload:  # the node's info was removed
            self._models.pop(node, None)
            return
        try:
            self._models[node] = tuple(NodeInfo.from_json(message.payload).models)
        except PayloadError as exc:
            await self._session.reject(message.topic, str(exc))

    async def _on_availability(self, message: Inbound) -> None:
        node = self._node(message.topic)
        try:
            online = parse_availability(message.payload)
        except PayloadError as exc:  # junk is rejected, not read as offline
            await self._session.reject(message.topic, str(exc))
            return
        if online:
            self._online.add(node)
        else:
            self._online.discard(node)
