"""Operator tools: the rig's state from its messages (`state`), `aigloo status` (`views`,
`watch`), control commands (`control`). Import the submodule you need: every `aigloo` command
imports this package's `cli`, so the package itself stays light."""
