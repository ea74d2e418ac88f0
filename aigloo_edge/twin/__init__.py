"""The digital twin: the rig's physics (battery, solar, machines, fans, the box's heat), pure and
time-stepped, so the whole system runs on one computer and rules can be tried on a simulated day.

`model` is the physics, `scenario` its parameters (one file per scenario, each with its source),
`live` publishes it over MQTT like the real bridge and agents, `simulate` runs it with the rules
engine's pure core faster than real time.
"""
