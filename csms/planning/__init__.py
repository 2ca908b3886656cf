"""The parts of `csms.planner.Planner`, one concern each.

`context` (what the parts share), `held` (what each connector holds from us), `loop` (per-site
loops, coalescing, timers), `snapshot` (the allocator's input built from live state), `dispatch`
(lower-first sending of profiles), `verdicts` (closed-loop checks), `models` (what each charger
model accepts) and `records` (plan records).
"""
