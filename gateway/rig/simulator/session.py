"""Sans-I/O core of one *simulated* Live API session (a test and demo tool, not a model).

:class:`LiveSession` is a plain synchronous state machine. Feed it client frames
(:meth:`~LiveSession.receive`) or parsed events (:meth:`~LiveSession.feed`) with a
monotonic time; call :meth:`~LiveSession.tick` once :attr:`~LiveSession.deadline` has passed.
Each call returns the actions to perform, in order: :class:`Send` a message (always a binary
frame), :class:`Close` with a code, or :class:`Drop` the connection without a close frame.

A reply turn runs: caller speech ends -> ``response_delay_ms`` -> ``inputTranscription``
-> optional ``toolCall`` (then wait for the ``toolResponse`` of every call not declared
``NON_BLOCKING`` in the setup; answers to those arrive whenever) -> audio chunks paced at real
time / ``speed`` interleaved with ``outputTranscription`` -> ``generationComplete`` ->
``turnComplete`` once the audio would have finished playing -> ``sessionResumptionUpdate``
(when asked for) -> ``usageMetadata``. Caller speech starting before ``turnComplete`` cuts
the reply short: ``interrupted`` then ``turnComplete``, and that speech is the next turn.
A turn whose scenario says ``stall`` stops after its ``inputTranscription`` (phase
``STALLED``) until a text input or a resumed connection moves it on (see
:mod:`gateway.rig.simulator.scenario`).
"""

from __future__ import annotations

import binascii
import functools
import heapq
import hmac
import re
from collections.abc import Callable
from enum import Enum
from typing import Any, Final

from gateway.live import OUTPUT_RATE, parse_duration
from gateway.rig.simulator import protocol as p
from gateway.rig.simulator import speech
from gateway.rig.simulator.auth_tokens import PREFIX, AuthTokenStore, IssuedToken, Refusal
from gateway.rig.simulator.protocol import Action, Close, Drop, Send
from gateway.rig.simulator.record import Conversation, HandleStore, SessionRecord
from gateway.rig.simulator.scenario import Injection, Reply, Scenario, StallUntil, Turn
from gateway.rig.simulator.vad import EnergyVad, SpeechEnded, SpeechStarted, VadEvent

INVALID_ARGUMENT: Final = "Request contains an invalid argument."
BAD_KEY: Final = "API key not valid. Please pass a valid API key."
SESSION_NOT_FOUND: Final = "BidiGenerateContent session not found"
DEADLINE: Final = "Deadline expired before operation could complete."
TOKENS_PER_AUDIO_S: Final = 32
_MODEL_RE: Final = re.compile(
    r"^(models/[^/\s]+|(projects/[^/\s]+/locations/[^/\s]+/)?publishers/[^/\s]+/models/[^/\s]+"
    r"|projects/\S+/models/[^/\s]+)$")


_Timer = tuple[float, int, int | None, Callable[[float], list[Action]]]


class Phase(Enum):
    IDLE = "idle"  # waiting for the caller
    PENDING = "pending"  # caller done, reply starts after response_delay_ms
    TOOL_WAIT = "tool_wait"  # toolCall sent, waiting for toolResponse
    STREAMING = "streaming"  # reply audio going out (until its turnComplete)
    STALLED = "stalled"  # the model went quiet on this turn (scenario ``stall``)


class LiveSession:
    """One connection's protocol state. ``record`` is updated as things happen."""

    def __init__(self, scenario: Scenario, record: SessionRecord, *, handles: HandleStore,
                 api_key: str | None = None, api_version: str = "v1beta",
                 tokens: AuthTokenStore | None = None) -> None:
        """``tokens``: this is a ``BidiGenerateContentConstrained`` session, whose
        ``api_key`` must be a token from that store."""
        self.scenario = scenario
        self._tokens = tokens
        self._token: IssuedToken | None = None
        self.record = record
        self.handles = handles
        self.phase = Phase.IDLE
        self._api_key = api_key
        self._api_version = api_version
        record.api_key_seen = bool(api_key)
        self._setup: p.Setup | None = None
        self._closed = False
        self._conversation = Conversation()
        self._position = 0  # scenario turns used up; the next reply is turn position + 1
        self._vad = EnergyVad(scenario.vad_threshold, scenario.onset_ms, 500,
                              scenario.vad_noise_margin_db)
        self._activity_from: float | None = None  # audio position of an open activityStart
        self._timers: list[_Timer] = []
        self._seq = 0
        self._epoch = 0  # bumped whenever the current reply is cancelled or replaced
        self._caller_s = 0.0  # caller speech collected for the next reply
        self._caller_kind = "audio"
        self._queued = False  # a caller turn finished while a reply could not be interrupted
        # the reply in progress
        self._spec: Turn | None = None
        self._reply: Reply | None = None
        self._call_ids: list[str] = []
        self._waiting: dict[str, str] = {}  # tool call id -> name
        self._prompt_s = 0.0
        self._chunks: list[bytes] = []
        self._texts: list[str] = []
        self._sent = 0
        self._sent_bytes = 0  # reply audio of the current turn sent so far
        self._t0 = 0.0

    # -- public ---------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def deadline(self) -> float | None:
        """When :meth:`tick` next has something to do (``None``: only on input)."""
        while self._timers and self._timers[0][2] not in (None, self._epoch):
            heapq.heappop(self._timers)
        return None if self._closed or not self._timers else self._timers[0][0]

    def receive(self, frame: str | bytes, now: float) -> list[Action]:
        """A raw client frame (text or binary)."""
        if self._closed:
            return []
        try:
            events = p.parse_client_message(frame)
        except p.ClientProtocolError:
            return self._close(1007, INVALID_ARGUMENT)
        out: list[Action] = []
        for event in events:
            out += self.feed(event, now)
        return out

    def feed(self, event: p.ClientEvent, now: float) -> list[Action]:
        """One parsed client event; also runs any timers that are due."""
        if self._closed:
            return []
        out = self.tick(now)
        if self._setup is None:
            if not isinstance(event, p.Setup):
                return out + self._close(1007, INVALID_ARGUMENT)
            return out + self._on_setup(event, now)
        if self._token is not None and self._tokens is not None \
                and self._tokens.expired(self._token):
            return out + self._close(1007, Refusal.EXPIRED.value)
        match event:
            case p.Setup():
                out += self._close(1007, INVALID_ARGUMENT)
            case p.AudioIn(pcm=pcm, rate=rate, mime_type=mime):
                out += self._on_audio(pcm, rate, mime, now)
            case p.TextIn(text=text):
                self.record.texts.append(text)
                out += self._on_text_turn(now)
            case p.ClientContent(texts=texts, turn_complete=complete):
                self.record.texts.extend(texts)
                if complete:
                    out += self._on_text_turn(now)
            # With automatic detection disabled the client's signals are the only turn
            # boundaries: a start barges in (START_OF_ACTIVITY_INTERRUPTS), an end closes
            # the caller's turn. A repeated start or an end without one changes nothing.
            case p.ActivityStart() if not self._setup.auto_vad \
                    and self._activity_from is None:
                self.record.activity_signals.append(("start", self.record.audio_seconds))
                self._activity_from = self.record.audio_seconds
                out += self._on_vad(SpeechStarted(self._activity_from), now)
            case p.ActivityEnd() if not self._setup.auto_vad \
                    and self._activity_from is not None:
                self.record.activity_signals.append(("end", self.record.audio_seconds))
                began, self._activity_from = self._activity_from, None
                out += self._on_vad(SpeechEnded(self.record.audio_seconds - began), now)
            case p.AudioStreamEnd():
                for ev in self._vad.flush():
                    out += self._on_vad(ev, now)
            case p.ToolResponse(responses=responses):
                out += self._on_tool_response(responses, now)
            case _:
                pass
        return out

    def tick(self, now: float) -> list[Action]:
        """Run every timer due at ``now`` (each at its own due time, so pacing never drifts)."""
        out: list[Action] = []
        while not self._closed and self.deadline is not None and self.deadline <= now:
            due, _seq, _epoch, fn = heapq.heappop(self._timers)
            out += fn(due)
        return out

    # -- plumbing -------------------------------------------------------------------------

    def _at(self, due: float, fn: Callable[[float], list[Action]], *,
            turn_bound: bool = True) -> None:
        self._seq += 1
        heapq.heappush(self._timers, (due, self._seq, self._epoch if turn_bound else None, fn))

    def _scaled(self, ms: float) -> float:
        return ms / 1000 / self.scenario.speed

    def _send(self, kind: str, message: p.Message, *, turn: int = 0,
              audio_ms: float = 0.0, due: float = 0.0) -> list[Action]:
        self.record.sent.append(kind)
        return [Send(kind, message, turn, audio_ms, due)]

    def _close(self, code: int, reason: str) -> list[Action]:
        self._closed = True
        self._timers.clear()
        self.record.closed = (code, reason)
        return [Close(code, reason)]

    def _drop(self) -> list[Action]:
        self._closed = True
        self._timers.clear()
        self.record.closed = (1006, "dropped by scenario")
        return [Drop()]

    # -- setup ----------------------------------------------------------------------------

    def _on_setup(self, setup: p.Setup, now: float) -> list[Action]:
        self.record.setup = dict(setup.raw)
        self.record.model = setup.model
        if self._tokens is not None:
            return self._on_constrained_setup(setup, now)
        if (self._api_key or "").startswith(PREFIX):  # a token is no API key
            return self._close(1007, BAD_KEY)
        return self._on_checked_setup(setup, now)

    def _on_constrained_setup(self, setup: p.Setup, now: float) -> list[Action]:
        assert self._tokens is not None
        resuming = setup.handle is not None and self.handles.resolve(setup.handle) is not None
        got = self._tokens.open_session(self._api_key, resuming=resuming)
        if isinstance(got, Refusal):
            return self._close(1007, got.value)
        self._token = got
        try:  # the locked fields are the token's, whatever the client sent
            setup = p.parse_setup(got.effective_setup(setup.raw))
        except p.ClientProtocolError:
            return self._close(1007, INVALID_ARGUMENT)
        self.record.setup = dict(setup.raw)
        self.record.model = setup.model
        return self._on_checked_setup(setup, now, keyed=False)

    def _on_checked_setup(self, setup: p.Setup, now: float, *,
                          keyed: bool = True) -> list[Action]:
        required = self.scenario.required_key
        if keyed and required is not None and not hmac.compare_digest(
                (self._api_key or "").encode(), required.encode()):
            return self._close(1007, BAD_KEY)
        if not _MODEL_RE.match(setup.model):
            return self._close(1007, INVALID_ARGUMENT)
        known = {m.rsplit("/", 1)[-1] for m in self.scenario.known_models}
        if known and setup.model.rsplit("/", 1)[-1] not in known:
            return self._close(1008, f"{setup.model} is not found for API version "
                                     f"{self._api_version}, or is not supported for "
                                     f"bidiGenerateContent. Call ListModels")
        if setup.handle is not None:
            self.record.handle_offered = True
            found = self.handles.resolve(setup.handle)
            if found is None:
                return self._close(1008, SESSION_NOT_FOUND)
            self._conversation, self._position = found
            self.record.resumed = True
        self._setup = setup
        silence = self.scenario.silence_ms or setup.silence_duration_ms or 500
        self._vad.silence_s = silence / 1000
        out = self._send("setupComplete", p.setup_complete())
        if setup.resumption:  # a resumable point from the start, not only after a turn
            out += self._resumption_update(True)
        lifetime = self.scenario.connection_lifetime_s
        if lifetime is not None:
            before = self.scenario.go_away_before_s
            # timeLeft in wall-clock terms, as everything the simulator times is scaled.
            left = f"{before / self.scenario.speed:.3f}s"
            self._at(now + self._scaled((lifetime - before) * 1000),
                     lambda _t: self._send("goAway", p.go_away(left)), turn_bound=False)
            self._at(now + self._scaled(lifetime * 1000),
                     lambda _t: self._close(1011, DEADLINE), turn_bound=False)
        return out + self._fire("after_resume" if self.record.resumed else "after_setup", 0, now)

    # -- caller input ---------------------------------------------------------------------

    def _on_audio(self, pcm: bytes, rate: int, mime: str, now: float) -> list[Action]:
        rec = self.record
        rec.audio_chunks += 1
        rec.audio_bytes += len(pcm)
        rec.audio_rates.add(rate)
        if not mime.startswith("audio/pcm") or rate <= 0:
            return []
        if self.scenario.keep_audio_s:  # only tests that score the audio keep it
            keep = 2 * round(self.scenario.keep_audio_s * rate) - len(rec.audio)
            if keep > 0:
                rec.audio += pcm[:keep]
        rec.audio_seconds += len(pcm) / 2 / rate
        assert self._setup is not None
        if not self._setup.auto_vad:
            return []
        out: list[Action] = []
        for ev in self._vad.feed(pcm, rate):
            out += self._on_vad(ev, now)
        return out

    def _on_vad(self, ev: VadEvent, now: float) -> list[Action]:
        assert self._setup is not None
        if isinstance(ev, SpeechStarted):
            if self.phase in (Phase.TOOL_WAIT, Phase.STREAMING) and self._setup.interrupts:
                return self._interrupt(now)
            if self.phase is Phase.PENDING:  # the caller carried on: same turn
                self._epoch += 1
                self.phase = Phase.IDLE
            return []
        self.record.speech_segments.append(ev.duration_s)
        self._caller_s += ev.duration_s
        if self.phase is Phase.STALLED:
            return []  # "hello?" into the silence does not wake a stalled model
        if self.phase in (Phase.TOOL_WAIT, Phase.STREAMING):
            self._queued = True
            return []
        return self._schedule_reply(now, "audio")

    def _on_text_turn(self, now: float) -> list[Action]:
        out: list[Action] = []
        if self.phase is Phase.STALLED:
            if self._spec is None or self._spec.stall is not StallUntil.NUDGE:
                return out  # read, and nothing more: only a new session gets this turn
            self.record.nudged += 1
        if self.phase in (Phase.TOOL_WAIT, Phase.STREAMING):
            out += self._interrupt(now)
        if not self._closed:
            out += self._schedule_reply(now, "text")
        return out

    def _on_tool_response(self, responses: tuple[Any, ...], now: float) -> list[Action]:
        for r in responses:
            self.record.tool_responses.append(dict(r))
            rid = r.get("id")
            if isinstance(rid, str) and rid in self._waiting:
                del self._waiting[rid]
            elif rid is None:  # no id: match the first outstanding call of that name
                for cid, name in self._waiting.items():
                    if name == r.get("name"):
                        del self._waiting[cid]
                        break
        if self.phase is Phase.TOOL_WAIT and not self._waiting:
            return self._begin_stream(now)
        return []

    # -- the reply ------------------------------------------------------------------------

    def _schedule_reply(self, now: float, kind: str) -> list[Action]:
        self._epoch += 1
        self.phase = Phase.PENDING
        self._caller_kind = kind
        self._at(now + self._scaled(self.scenario.response_delay_ms), self._start_reply)
        return []

    def _start_reply(self, t: float) -> list[Action]:
        assert self._setup is not None
        turns = self.scenario.turns
        self._spec = turns[self._position] if self._position < len(turns) else None
        self._reply = self.scenario.resolve_reply(self._spec, self._position)
        self._prompt_s, self._caller_s = self._caller_s, 0.0
        self._sent, self._chunks, self._texts, self._call_ids = 0, [], [], []
        self._sent_bytes = 0
        out: list[Action] = []
        if self._caller_kind == "audio" and self._setup.input_transcription:
            text = (self._spec.caller_text if self._spec and self._spec.caller_text
                    else f"(caller speech {self._prompt_s:.1f} s)")
            out += self._send("inputTranscription", p.input_transcription(text))
        turn_no = self._position + 1
        stall = self._spec.stall if self._spec is not None else None
        if stall is StallUntil.NEVER or (stall is not None
                                         and turn_no not in self._conversation.stalled):
            # Once per conversation: the connection that resumes it answers.
            self._conversation.stalled.add(turn_no)
            self.record.stalled_turns.append(turn_no)
            self.phase = Phase.STALLED
            return out
        calls = self._spec.tool_calls if self._spec else ()
        if not calls:
            return out + self._begin_stream(t)
        self._call_ids = [c.id or f"sim-call-{turn_no}-{i + 1}" for i, c in enumerate(calls)]
        # The model talks on while NON_BLOCKING functions run; it waits only for the others.
        self._waiting = {cid: c.name for cid, c in zip(self._call_ids, calls, strict=True)
                         if c.name not in self._setup.non_blocking}
        out += self._send("toolCall", p.tool_call(
            [{"id": cid, "name": c.name, "args": dict(c.args)}
             for cid, c in zip(self._call_ids, calls, strict=True)]))
        if not self._waiting:
            return out + self._begin_stream(t)
        self.phase = Phase.TOOL_WAIT
        self._at(t + self.scenario.tool_timeout_ms / 1000, self._tool_timeout)
        return out

    def _tool_timeout(self, t: float) -> list[Action]:
        self.record.tool_timeouts += 1
        self._waiting.clear()
        return self._begin_stream(t)

    def _text_mode(self) -> bool:
        assert self._setup is not None
        return "TEXT" in self._setup.modalities and "AUDIO" not in self._setup.modalities

    def _begin_stream(self, t: float) -> list[Action]:
        assert self._reply is not None
        self._epoch += 1  # forget the tool timeout
        pcm = speech.reply_pcm(self._reply.path)
        step = 2 * OUTPUT_RATE * self.scenario.chunk_ms // 1000
        self._chunks = [pcm[i:i + step] for i in range(0, len(pcm), step)] or [b""]
        self._texts = speech.split_text(self._reply.text, len(self._chunks))
        self._t0 = t
        self.phase = Phase.STREAMING
        turn_no = self._position + 1
        for i, inj in enumerate(self.scenario.injections):
            if inj.trigger == "during_turn" and inj.turn == turn_no:
                self._at(t + self._scaled(inj.offset_ms),
                         functools.partial(self._fire_one, i, inj))
        return self._stream(t)

    def _stream(self, t: float) -> list[Action]:
        assert self._setup is not None
        out: list[Action] = []
        period = self._scaled(self.scenario.chunk_ms)
        text_mode = self._text_mode()
        while self._sent < len(self._chunks) and self._t0 + self._sent * period <= t + 1e-9:
            chunk, piece = self._chunks[self._sent], self._texts[self._sent]
            due = self._t0 + self._sent * period
            self._sent += 1
            if text_mode:
                if piece:
                    out += self._send("text", p.model_text(piece))
                continue
            data = binascii.b2a_base64(chunk, newline=False).decode("ascii")
            self._sent_bytes += len(chunk)
            out += self._send("audio", p.model_audio(data, OUTPUT_RATE),
                              turn=self.record.turns_completed + 1,
                              audio_ms=self._sent_bytes * 500 / OUTPUT_RATE, due=due)
            if piece and self._setup.output_transcription:
                out += self._send("outputTranscription", p.output_transcription(piece))
        if self._sent < len(self._chunks):
            self._at(self._t0 + self._sent * period, self._stream)
            return out
        out += self._send("generationComplete", p.generation_complete())
        seconds = sum(len(c) for c in self._chunks) / 2 / OUTPUT_RATE
        self._at(self._t0 + seconds / self.scenario.speed, self._finish)
        return out

    def _finish(self, t: float) -> list[Action]:
        turn = self.record.turns_completed + 1
        return self._send("turnComplete", p.turn_complete(), turn=turn) + self._end_turn(t)

    def _interrupt(self, now: float) -> list[Action]:
        self._epoch += 1  # stops the stream, the tool timeout and during_turn injections
        out: list[Action] = []
        cancel = self._spec.cancel if self._spec else False
        answered = {r.get("id") for r in self.record.tool_responses}
        ids = ([cid for cid in self._call_ids if cid not in answered] if cancel is True
               else list(cancel or ()))
        if ids:
            out += self._send("toolCallCancellation", p.tool_call_cancellation(list(ids)))
        turn = self.record.turns_completed + 1
        out += self._send("interrupted", p.interrupted(), turn=turn)
        out += self._send("turnComplete", p.turn_complete(), turn=turn)
        self.record.interruptions += 1
        self.record.interrupted_at.append(now)
        return out + self._end_turn(now)

    def _end_turn(self, t: float) -> list[Action]:
        assert self._setup is not None
        turn_no = self._position + 1
        self._position += 1
        self.phase = Phase.IDLE
        self.record.turns_completed += 1
        self.record.reply_chunks.append(self._sent)
        self._waiting.clear()
        out: list[Action] = []
        if self._setup.resumption:
            out += self._resumption_update(True)
        reply_s = sum(len(c) for c in self._chunks[:self._sent]) / 2 / OUTPUT_RATE
        prompt = int(self._prompt_s * TOKENS_PER_AUDIO_S) + 4
        response = (sum(len(x) for x in self._texts[:self._sent]) // 4 if self._text_mode()
                    else int(reply_s * TOKENS_PER_AUDIO_S))
        out += self._send("usageMetadata", p.usage(
            prompt, response, "TEXT" if self._text_mode() else "AUDIO"))
        out += self._fire("after_turn", turn_no, t)
        if self._queued and not self._closed:
            self._queued = False
            out += self._schedule_reply(t, "audio")
        return out

    def _resumption_update(self, resumable: bool) -> list[Action]:
        handle = ""
        if resumable:
            handle = self.handles.issue(self._conversation, self._position)
            self.record.handles.append(handle)
        return self._send("sessionResumptionUpdate", p.resumption_update(handle, resumable))

    # -- injections -----------------------------------------------------------------------

    def _fire(self, trigger: str, turn: int, t: float) -> list[Action]:
        out: list[Action] = []
        for i, inj in enumerate(self.scenario.injections):
            if inj.trigger == trigger and inj.turn == turn and not self._closed:
                out += self._fire_one(i, inj, t)
        return out

    def _fire_one(self, index: int, inj: Injection, t: float) -> list[Action]:
        if index in self._conversation.fired or self._closed:
            return []
        self._conversation.fired.add(index)
        if inj.action == "go_away":
            left = parse_duration(inj.time_left) or 0.0
            if inj.close_after:
                self._at(t + self._scaled(left * 1000),
                         lambda _t: self._close(1011, DEADLINE), turn_bound=False)
            # The client reads timeLeft as wall-clock time, and our clock runs `speed` x.
            told = (inj.time_left if self.scenario.speed == 1
                    else f"{left / self.scenario.speed:.3f}s")
            return self._send("goAway", p.go_away(told))
        if inj.action == "resumption_update":
            return self._resumption_update(inj.resumable)
        if inj.action == "close":
            return self._close(inj.code, inj.reason)
        return self._drop()
