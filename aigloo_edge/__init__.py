"""Aigloo Edge: an off-grid AI-inference rig driven over MQTT."""

__version__ = "0.1.0"
