"""Load and soak (issue 10 item 6): the whole rig under steady load, and the figures it leaves.

All real parts: Mosquitto from the project's conf (the caller's RunningBroker); the Mini as ONE
`aigloo run` process (its agent; the live twin as station, sun, probes, fans, MacBook Pro and
Air; the shipped rules plus one soak rule; the dispatcher; the Home Assistant bridge; plain
values); the Studio as another `aigloo run` (agent and mlx-lm worker on the demo model); the
simulated nodes and a raw paho echo in processes of their own (nodes.py).
This process only drives and measures, so its own CPU distorts nothing it measures:

* RSS of each process (psutil, the process and its children), every `sample_every_s`;
* QoS 1 loss: every simulated node's telemetry by its `seq`, against what the generator says
  it sent (received, missing, duplicated);
* inference: a request every `infer_every_s` through the dispatcher, each counted by the finals
  seen on the bus (exactly one each) and by how its stream ended;
* rules latency: a `soak` probe reading that flips the soak rule, timed to the rules engine's
  retained `infer/policy/soak`, against the same publish echoed by raw paho (the baseline of
  benchmarks/rules.py, whose goals are p50 <= 1.5x and p99 <= 3x the echo's);
* availability of every component and node, rejection reports, reconnects.

The soak rule drives `inference.soak_allowed`: a node no machine is, so it fights neither the
shipped rules nor the twin, and the dispatcher only records its policy. The twin plays the
sunny day from 06:00 with the station at 95 %: from the shipped 60 %, `studio-sleeps-without-sun`
puts the real Studio's worker to sleep about 2 minutes in (`aigloo simulate` of the first half
hour: Studio available 0.03 h; from 95 %: 0.5 h, no power toggle).

The modules: `rig` (the plan, the rig's files, its processes), `watch` (what the bus shows),
`probes` (what the window measures), `figures` (what that comes to, and its table), `run`
(`run_soak`: start it all, measure, stop), `nodes` (the helper processes' script).
"""
