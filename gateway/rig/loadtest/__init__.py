"""``voicegw loadtest``: many simulated Twilio calls at once against a gateway.

Each call is :func:`gateway.rig.phone.place_call` playing a recording (or a capture) exactly as
Twilio would; the run measures connect time, response and barge-in latency at the phone,
playback underruns, frames written, errors by kind and, with psutil, the CPU and memory of
the gateway, the simulator and the load generator. Modules:

- :mod:`.calls`: one call's plan and placing it; :mod:`.errors`: failure kinds
- :mod:`.runner`: concurrency, ramp, duration/count; :mod:`.monitor`: CPU/RSS sampling
- :mod:`.local`: simulator + gateway as subprocesses; :mod:`.scrape`: the gateway's /metrics
- :mod:`.stats`, :mod:`.report`, :mod:`.html`, :mod:`.progress`: figures and their output
- :mod:`.command`: the CLI
"""
