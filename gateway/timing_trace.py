"""The gateway's own timing trace: ``voicegw serve --trace PATH``. For measurements, not
production.

The load tester's phones and the simulated Live server each stamp when they *write* a
message (``gateway.rig.loadtest.trace``, ``gateway.rig.simulator.trace``); this stamps when the
gateway writes what that message caused. The difference is what the gateway added, socket
wait and event-loop queueing included, and nothing of the time the phones or the simulator
took to read: on a machine where they share a busy core with each other, their read stamps
run late, and an end-to-end figure measures them rather than the gateway.

Each stamp is taken once the write has returned. On loopback the peer, on another core, may
read the bytes a few tens of µs before that, so a path's figure can be that much above the
same path timed to the peer's read; it is never below the time the gateway took.

JSON lines, ``t`` a ``time.perf_counter()`` value (CLOCK_MONOTONIC on Linux, the clock the
other two traces use) and ``c`` the gateway's call number:

- ``call``: the caller's WebSocket was accepted;
- ``fwd``: a caller frame was written to the Live socket, ``ms`` the caller audio forwarded
  so far;
- ``media``: reply audio was written to the caller's socket, ``ms`` that message's audio;
- ``clear``: a ``clear`` was written to the caller's socket;
- ``turn_end``: the mark that ends a completed reply turn was written; like ``clear`` (an
  interrupted turn), it means the next reply audio starts a new turn;
- ``end``: the call is over.

Each record is one short line appended to a buffer (about 1 µs); a task writes the buffer
out every 100 ms (:class:`gateway.trace_writer.TraceWriter`).
"""

from __future__ import annotations

from gateway.trace_writer import TraceWriter


class GatewayTrace(TraceWriter):
    """One file for the whole server; :meth:`call` gives each call its recorder."""

    calls: int = 0

    def call(self, t: float) -> CallTimings:
        self.calls += 1
        self.add(f'{{"ev":"call","t":{t:.6f},"c":{self.calls}}}')
        return CallTimings(self, self.calls)


class CallTimings:
    __slots__ = ("_forwarded", "number", "trace")

    def __init__(self, trace: GatewayTrace, number: int) -> None:
        self.trace = trace
        self.number = number
        self._forwarded = 0.0

    def forwarded(self, t: float, ms: float) -> None:
        self._forwarded += ms
        self.trace.add(f'{{"ev":"fwd","t":{t:.6f},"c":{self.number},'
                       f'"ms":{self._forwarded:.1f}}}')

    def media(self, t: float, ms: float) -> None:
        self.trace.add(f'{{"ev":"media","t":{t:.6f},"c":{self.number},"ms":{ms:.3f}}}')

    def clear(self, t: float) -> None:
        self.trace.add(f'{{"ev":"clear","t":{t:.6f},"c":{self.number}}}')

    def turn_end(self, t: float) -> None:
        self.trace.add(f'{{"ev":"turn_end","t":{t:.6f},"c":{self.number}}}')

    def end(self, t: float) -> None:
        self.trace.add(f'{{"ev":"end","t":{t:.6f},"c":{self.number}}}')
