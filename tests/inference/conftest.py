"""Inference fixtures live in tests/conftest.py (the rig's `up` test needs the demo model too)."""
