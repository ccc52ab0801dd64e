"""Timing traces as JSON lines, for measuring a gateway's added latency from outside it.

Both ends of a gateway under test write one: the simulated Live server (the model's side,
:class:`SimTrace`) and the load tester's phones (the caller's side,
``gateway.rig.loadtest.trace``), each with :class:`gateway.trace_writer.TraceWriter`. Every
record carries ``t``, a ``time.monotonic()`` value: on one machine CLOCK_MONOTONIC is shared
by all processes, so the two files can be compared record by record
(``gateway.rig.loadtest.timelines`` reads them back, ``gateway.rig.loadtest.added`` compares
them).

Cost: recording an event formats one short line (about 1 µs) and appends it to a list; the
list is written out in batches by a task :meth:`TraceWriter.start` runs (every 100 ms), or
at once when it reaches ``max_buffered`` lines, so memory stays bounded and the file never
lags far behind. :meth:`TraceWriter.aclose` stops that task and writes what is left: the
simulator calls it on shutdown, including SIGTERM.

Each batch goes out in one ``write`` on a file opened for appending, so several processes
can share one trace (``voicegw simulate-live --workers``): Linux appends each write whole,
never interleaving two.
"""

from __future__ import annotations

from gateway.trace_writer import FLUSH_EVERY_S, TraceWriter

__all__ = ["FLUSH_EVERY_S", "SimTrace", "TraceWriter"]


class SimTrace(TraceWriter):
    """The simulated Live server's side: one record per event, ``s`` the session number.

    - ``open``: ``t`` the connection was accepted, ``setup_t`` its setup arrived, ``handle``
      whether the setup carried a resumption handle (``null``: closed before any setup);
    - ``in``: audio received, ``ms`` the session's cumulative input audio (from each chunk's
      bytes and the rate in its mime type), once per client message that carried audio;
    - ``out``: a reply audio chunk handed to the socket, ``turn`` (1, 2... within the session),
      ``ms`` the cumulative reply audio of that turn, this chunk included, and ``late`` how
      many ms after its paced due time it went (the simulator's own event-loop delay: when
      it grows, the simulator or the machine is busy, and its ``in`` stamps are late too);
    - ``interrupted``, ``turn_complete``: those messages sent (``turn`` as above);
    - ``close``: the connection ended, with its close ``code``.
    """

    def opened(self, t: float, session: int, handle: bool | None, setup_t: float | None
               ) -> None:
        h = "null" if handle is None else ("true" if handle else "false")
        st = "null" if setup_t is None else f"{setup_t:.6f}"
        self.add(f'{{"ev":"open","t":{t:.6f},"s":{session},"handle":{h},"setup_t":{st}}}')

    def received(self, t: float, session: int, ms: float) -> None:
        self.add(f'{{"ev":"in","t":{t:.6f},"s":{session},"ms":{ms:.3f}}}')

    def reply(self, t: float, session: int, turn: int, ms: float, late_ms: float = 0.0
              ) -> None:
        self.add(f'{{"ev":"out","t":{t:.6f},"s":{session},"turn":{turn},"ms":{ms:.3f},'
                 f'"late":{late_ms:.3f}}}')

    def interrupted(self, t: float, session: int, turn: int) -> None:
        self.add(f'{{"ev":"interrupted","t":{t:.6f},"s":{session},"turn":{turn}}}')

    def turn_complete(self, t: float, session: int, turn: int) -> None:
        self.add(f'{{"ev":"turn_complete","t":{t:.6f},"s":{session},"turn":{turn}}}')

    def closed_session(self, t: float, session: int, code: int) -> None:
        self.add(f'{{"ev":"close","t":{t:.6f},"s":{session},"code":{code}}}')
