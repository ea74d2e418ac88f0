"""Tests of the inference subpackage (they run the real demo model on the CPU)."""
