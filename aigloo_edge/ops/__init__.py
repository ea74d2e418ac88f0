"""Operator tools: the rig's state from its messages, `aigloo status`, control commands."""

from aigloo_edge.ops.state import NodeView, Received, RigState

__all__ = ["NodeView", "Received", "RigState"]
