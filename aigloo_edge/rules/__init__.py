"""The rules engine: rule files → a pure core deciding desired states → an MQTT runner.

`loader` reads and checks `rules/*.yaml`, `expr` compiles their expressions, `engine` is the
pure core (with `arbiter` and `signals`), `runner` connects it to the broker, `replay` runs it
over a recording. Import the submodule you need: this package keeps its import light.
"""
