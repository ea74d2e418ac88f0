"""`aigloo top`: the terminal dashboard (Textual), built on the operator tools in `ops`."""

from aigloo_edge.tui.app import TopApp

__all__ = ["TopApp"]
