"""The caller's audio on its way to the model, one frame at a time: decoded, kept for the
recording as the caller said it, cleaned (echo cancellation, noise suppression), noticed as
speech, resampled to the Live API's rate, heard by the gateway's own turn-taking, and handed
to the Live keeper. Built by the bridge once the call has started, with every collaborator it
needs; per-call layer: no I/O, no carrier named.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from gateway import live
from gateway.answering import AnswerScreen
from gateway.audio import AudioFormat, Resampler, decoder, peak
from gateway.call_watch import CallWatch
from gateway.caller_processing import CallerProcessing
from gateway.handover import LineGate
from gateway.live_keeper import LiveKeeper
from gateway.model_events import ModelEvents
from gateway.recording import CallRecording
from gateway.turns import LocalTurns

# A frame peaking above this counts as the caller speaking (-35 dBFS: above line noise,
# below any speech).
SPEECH_PEAK: Final = 600


class CallerPath:
    def __init__(self, fmt: AudioFormat, keeper: LiveKeeper, model: ModelEvents, *,
                 recording: CallRecording | None = None,
                 clean: CallerProcessing | None = None,
                 turns: LocalTurns | None = None, watch: CallWatch | None = None,
                 screen: AnswerScreen | None = None, gate: LineGate | None = None) -> None:
        self.keeper = keeper
        self.watch = watch  # the live-call monitor's view: who is speaking
        self.model = model
        self.recording = recording
        self.clean = clean
        self.turns = turns
        self.screen = screen  # a call the gateway placed: who answered, before the model hears
        self.gate = gate  # muted while the caller is on hold (a warm transfer)
        self._decode: Callable[[bytes], bytes] = decoder(fmt.codec)
        self._to_live = Resampler(fmt.rate, live.INPUT_RATE)
        self._ms_per_byte = 1000 / fmt.bytes_per_second

    async def audio(self, payload: bytes, received: float) -> None:
        """One frame as the carrier sent it, received at ``received`` (perf_counter)."""
        pcm = self._decode(payload)
        if self.recording is not None:
            self.recording.caller(pcm, received)
        if self.clean is not None:
            pcm = self.clean.near_end(pcm, received)
        speech = peak(pcm) >= SPEECH_PEAK
        if speech:
            self.model.caller_spoke(received)
        if self.watch is not None:
            self.watch.frame(received, speech)
        # Every frame goes through the resampler, forwarded now or not, so its state stays
        # continuous; the keeper holds the carrier's own bytes for a replay.
        live_pcm = self._to_live.process(pcm)
        if self.screen is not None and self.screen.holding:
            self.screen.heard(live_pcm)
            return
        if self.gate is not None and self.gate.muted:
            return
        if self.turns is not None:  # local turn-taking hears exactly what the model hears
            await self.turns.heard(live_pcm)
        await self.keeper.forward(payload, len(payload) * self._ms_per_byte, live_pcm,
                                  received)
