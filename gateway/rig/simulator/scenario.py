"""Scenario files for the *simulated* Live server (test and demo tooling).

A scenario scripts what the simulated model says, turn by turn, and what goes wrong when
(``goAway``, closes, dropped connections). JSON or YAML; every field is optional::

    speed: 1.0               # pacing factor for everything the server times (4 = 4x faster)
    response_delay_ms: 300   # end of caller speech -> start of the reply
    silence_ms: 500          # caller silence that ends a turn (default: setup's, else 500)
    vad_threshold: 400       # frame RMS (PCM16 units) above which audio counts as speech
    vad_noise_margin_db: null  # if set, also this far above the tracked noise floor: steady
                             # noise (a simulated line's) is then not speech; echo still is
    onset_ms: 60             # loud audio needed before it counts as speech (and barges in)
    chunk_ms: 80             # audio per reply message
    tool_timeout_ms: 10000   # wait for a toolResponse (wall clock, not scaled by speed)
    required_key: null       # if set, any other API key is refused (1007)
    known_models: []         # if set, other models are refused (1008)
    connection_lifetime_s: null  # if set, each connection is cut (1011 "Deadline expired")
    go_away_before_s: 60     # this long after goAway; both in simulated time, like the
                             # service's ~10 min lifetime with goAway ~60 s before the cut
    keep_audio_s: 0          # caller audio each session keeps, to score what the model heard
    turns:                   # turn N uses turns[N-1]; later turns: bundled replies in order
      - caller_text: "Hi, I'd like to book a table"   # inputTranscription text
        reply: agent_greeting                          # bundled fixture name or WAV path
        reply_text: "Hello ..."                        # defaults to the fixture's text
        tool_calls: [{name: lookup, args: {day: mon}, id: call-1}]
        cancel: true    # on barge-in, toolCallCancellation for the turn's unanswered
                        # calls (or a list of ids: exactly those)
        stall: nudge    # | session | never: the model goes quiet on this turn (below)
    injections:              # one trigger key + one action key each
      - after_setup: true    # | after_resume: true | after_turn: N | during_turn: N
        offset_ms: 0         # with during_turn: reply-audio time into that turn
        go_away: {time_left: "10s", close: true}
      - after_turn: 2
        close: {code: 1011, reason: "Internal error occurred."}
      - during_turn: 3
        drop: true           # | resumption_update: {resumable: true}

Turns are numbered from 1; a reply cut short by the caller still uses up its turn. The reply
waits for the answers to its tool calls, except calls to functions the setup declares
``NON_BLOCKING``: those run while it is spoken (and can be cancelled by a barge-in). ``name``
and ``description`` are accepted and ignored. Injections fire once per conversation, also
across resumed connections. Without a scenario (or without ``turns``) the simulator acts as a
generic assistant answering with the bundled agent replies in order.

A turn with ``stall`` models a model that goes quiet: once the caller's turn has ended (and
its ``inputTranscription`` has gone, which the service's transcriber sends whatever the model
does), the session sends nothing at all for that turn (no audio, no ``turnComplete``, no
handle) and it stays that way while the caller talks on. With ``stall: nudge`` a text input
(``realtimeInput.text``, or ``clientContent`` with ``turnComplete``) unsticks it: the reply
then starts after ``response_delay_ms``, as for any text turn. With ``stall: session`` a text
input is read and does nothing; only a new connection resuming the conversation (with a
handle issued before the stall) gets the reply, once the caller's replayed audio ends its
turn there. A turn stalls once per conversation, so the connection that resumes it answers
normally; a fresh (unresumed) session is a new conversation and stalls again when it reaches
that turn. With ``stall: never`` nothing wakes it, on any connection (a service that has
stopped answering).
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Final

from gateway.errors import ConfigError
from gateway.live import parse_duration
from gateway.rig.simulator import speech

DEFAULT_CLOSE_REASONS: Final = {
    1000: "",
    1007: "Request contains an invalid argument.",
    1008: "Operation is not implemented, or supported, or enabled.",
    1011: "Internal error occurred.",
}
_TRIGGERS: Final = ("after_setup", "after_resume", "after_turn", "during_turn")
_ACTIONS: Final = ("go_away", "resumption_update", "close", "drop")


class ScenarioError(ConfigError):
    """A scenario file or object is invalid; the message names the offending field."""


def _fail(where: str, problem: str) -> ScenarioError:
    return ScenarioError(f"scenario field {where!r}: {problem}")


@dataclass(frozen=True, slots=True)
class ToolCallSpec:
    name: str
    args: Mapping[str, Any] = field(default_factory=dict, hash=False)
    id: str | None = None  # default: "sim-call-<turn>-<n>"


@dataclass(frozen=True, slots=True)
class Reply:
    """Reply audio resolved to a file: a bundled fixture or the scenario's own WAV."""

    path: Path
    text: str


class StallUntil(enum.Enum):
    """What ends a turn's stall (see the module's docstring)."""

    NUDGE = "nudge"  # a text input
    SESSION = "session"  # only a resumed connection
    NEVER = "never"  # nothing


@dataclass(frozen=True, slots=True)
class Turn:
    caller_text: str | None = None
    reply: str | None = None  # bundled fixture name ("agent_greeting") or a WAV file path
    reply_text: str | None = None
    tool_calls: tuple[ToolCallSpec, ...] = ()
    cancel: bool | tuple[str, ...] = False  # toolCallCancellation ids on barge-in
    stall: StallUntil | None = None  # the model goes quiet on this turn until ...


@dataclass(frozen=True, slots=True)
class Injection:
    trigger: str  # one of after_setup | after_resume | after_turn | during_turn
    action: str  # one of go_away | resumption_update | close | drop
    turn: int = 0  # for after_turn / during_turn
    offset_ms: int = 0  # for during_turn
    time_left: str = "10s"  # go_away
    close_after: bool = True  # go_away: close (1011) once time_left has passed
    code: int = 1011  # close
    reason: str = ""  # close
    resumable: bool = True  # resumption_update


@dataclass(frozen=True, slots=True)
class Scenario:
    turns: tuple[Turn, ...] = ()
    injections: tuple[Injection, ...] = ()
    speed: float = 1.0
    response_delay_ms: int = 300
    silence_ms: int | None = None
    vad_threshold: float = 400.0
    vad_noise_margin_db: float | None = None
    onset_ms: int = 60
    chunk_ms: int = 80
    tool_timeout_ms: int = 10000
    required_key: str | None = None
    known_models: tuple[str, ...] = ()
    connection_lifetime_s: float | None = None
    go_away_before_s: float = 60.0
    keep_audio_s: float = 0.0  # of the caller's audio, kept in SessionRecord.audio
    base_dir: Path | None = None  # relative reply paths resolve against this

    def __post_init__(self) -> None:
        for name in ("turns", "injections", "known_models"):
            value = getattr(self, name)
            if isinstance(value, list):
                object.__setattr__(self, name, tuple(value))
        if not self.speed > 0:
            raise _fail("speed", f"must be > 0 (got {self.speed})")
        for name in ("response_delay_ms", "onset_ms", "tool_timeout_ms", "keep_audio_s"):
            if getattr(self, name) < 0:
                raise _fail(name, "must be >= 0")
        if self.connection_lifetime_s is not None and not (
                0 <= self.go_away_before_s < self.connection_lifetime_s):
            raise _fail("go_away_before_s", "must be >= 0 and below connection_lifetime_s")
        if self.vad_noise_margin_db is not None and not 0 < self.vad_noise_margin_db <= 40:
            raise _fail("vad_noise_margin_db", "must be above 0 and at most 40")
        if self.silence_ms is not None and self.silence_ms <= 0:
            raise _fail("silence_ms", "must be > 0")
        if not 10 <= self.chunk_ms <= 1000:
            raise _fail("chunk_ms", "must be between 10 and 1000")
        for i, turn in enumerate(self.turns):
            if turn.reply is not None:
                self.resolve_reply(turn, where=f"turns[{i}].reply")

    def resolve_reply(self, turn: Turn | None, n: int = 0, *, where: str = "reply") -> Reply:
        """The audio and text of a reply; turns without ``reply`` cycle the bundled ones."""
        if turn is None or turn.reply is None:
            agents = speech.fixtures("agent")
            fx = agents[n % len(agents)]
            text = turn.reply_text if turn is not None and turn.reply_text else fx.text
            return Reply(fx.path, text)
        try:
            fx = speech.fixture(turn.reply)
        except KeyError:
            path = Path(turn.reply)
            if not path.is_absolute() and self.base_dir is not None:
                path = self.base_dir / path
            if not path.is_file():
                raise _fail(where, f"{turn.reply!r} is neither a bundled fixture "
                                   f"nor a file") from None
            try:
                _pcm, rate = speech.load_pcm_wav(path)
            except (ValueError, OSError) as exc:
                raise _fail(where, str(exc)) from None
            if rate != 24000:
                raise _fail(where, f"reply audio must be 24 kHz (got {rate} Hz)") from None
            return Reply(path, turn.reply_text or "")
        if fx.role != "agent":
            raise _fail(where, f"{turn.reply!r} is a caller recording, not an agent reply")
        return Reply(fx.path, turn.reply_text or fx.text)


# -- parsing plain data (from JSON/YAML) ---------------------------------------------------


def _typed(data: Mapping[str, Any], key: str, kinds: type | tuple[type, ...], where: str,
           default: Any = None) -> Any:
    value = data.get(key, default)
    if value is None or value is default:
        return value
    if isinstance(value, bool) and bool not in (kinds if isinstance(kinds, tuple) else (kinds,)):
        raise _fail(f"{where}{key}", f"expected {_kind_name(kinds)}, got a boolean")
    if not isinstance(value, kinds):
        raise _fail(f"{where}{key}", f"expected {_kind_name(kinds)}, got {value!r}")
    return value


def _kind_name(kinds: type | tuple[type, ...]) -> str:
    ks = kinds if isinstance(kinds, tuple) else (kinds,)
    return " or ".join(k.__name__ for k in ks)


def _unknown(data: Mapping[str, Any], allowed: set[str] | tuple[str, ...], where: str) -> None:
    for key in data:
        if key not in allowed:
            raise _fail(f"{where}{key}", f"unknown field (allowed: {', '.join(sorted(allowed))})")


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if value is None or value is True:
        return {}
    if not isinstance(value, Mapping):
        raise _fail(where, f"expected a mapping, got {value!r}")
    return value


def _turn(data: Any, where: str) -> Turn:
    if not isinstance(data, Mapping):
        raise _fail(where, f"expected a mapping, got {data!r}")
    _unknown(data, {"caller_text", "reply", "reply_text", "tool_calls", "cancel", "stall"},
             f"{where}.")
    calls: list[ToolCallSpec] = []
    raw_calls = _typed(data, "tool_calls", list, f"{where}.") or []
    for j, c in enumerate(raw_calls):
        cw = f"{where}.tool_calls[{j}]"
        if not isinstance(c, Mapping):
            raise _fail(cw, f"expected a mapping, got {c!r}")
        _unknown(c, {"name", "args", "id"}, f"{cw}.")
        name = _typed(c, "name", str, f"{cw}.")
        if not name:
            raise _fail(f"{cw}.name", "required")
        args = _typed(c, "args", dict, f"{cw}.") or {}
        cid = _typed(c, "id", (str, int), f"{cw}.")
        calls.append(ToolCallSpec(name, args, None if cid is None else str(cid)))
    cancel = data.get("cancel", False)
    if isinstance(cancel, list) and all(isinstance(x, str | int) for x in cancel):
        cancel = tuple(str(x) for x in cancel)
    elif not isinstance(cancel, bool):
        raise _fail(f"{where}.cancel", f"expected true/false or a list of ids, got {cancel!r}")
    stall = _typed(data, "stall", str, f"{where}.")
    try:
        until = None if stall is None else StallUntil(stall)
    except ValueError:
        raise _fail(f"{where}.stall", f"expected one of "
                    f"{', '.join(u.value for u in StallUntil)}, got {stall!r}") from None
    return Turn(caller_text=_typed(data, "caller_text", str, f"{where}."),
                reply=_typed(data, "reply", str, f"{where}."),
                reply_text=_typed(data, "reply_text", str, f"{where}."),
                tool_calls=tuple(calls), cancel=cancel, stall=until)


def _injection(data: Any, where: str) -> Injection:
    if not isinstance(data, Mapping):
        raise _fail(where, f"expected a mapping, got {data!r}")
    _unknown(data, {*_TRIGGERS, *_ACTIONS, "offset_ms"}, f"{where}.")
    triggers = [t for t in _TRIGGERS if t in data]
    actions = [a for a in _ACTIONS if a in data]
    if len(triggers) != 1:
        raise _fail(where, f"needs exactly one of {', '.join(_TRIGGERS)}")
    if len(actions) != 1:
        raise _fail(where, f"needs exactly one of {', '.join(_ACTIONS)}")
    trigger, action = triggers[0], actions[0]
    kw: dict[str, Any] = {}
    if trigger in ("after_turn", "during_turn"):
        turn = _typed(data, trigger, int, f"{where}.")
        if turn is None or turn < 1:
            raise _fail(f"{where}.{trigger}", "expected a turn number >= 1")
        kw["turn"] = turn
    elif data[trigger] is not True:
        raise _fail(f"{where}.{trigger}", "expected true")
    if "offset_ms" in data:
        if trigger != "during_turn":
            raise _fail(f"{where}.offset_ms", "only valid with during_turn")
        off = _typed(data, "offset_ms", int, f"{where}.")
        if off is None or off < 0:
            raise _fail(f"{where}.offset_ms", "expected an integer >= 0")
        kw["offset_ms"] = off
    body = _mapping(data[action], f"{where}.{action}")
    aw = f"{where}.{action}."
    if action == "go_away":
        _unknown(body, {"time_left", "close"}, aw)
        tl = _typed(body, "time_left", (str, int, float), aw, "10s")
        tl = tl if isinstance(tl, str) else f"{tl}s"
        if parse_duration(tl) is None:
            raise _fail(f"{aw}time_left", f"expected a duration like '10s', got {tl!r}")
        kw["time_left"] = tl
        kw["close_after"] = bool(_typed(body, "close", bool, aw, True))
    elif action == "close":
        _unknown(body, {"code", "reason"}, aw)
        code = _typed(body, "code", int, aw, 1011)
        if not (1000 <= code <= 1014 or 3000 <= code <= 4999) or code in (1004, 1005, 1006):
            raise _fail(f"{aw}code", f"not a close code a server can send: {code}")
        reason = _typed(body, "reason", str, aw)
        kw["code"] = code
        kw["reason"] = DEFAULT_CLOSE_REASONS.get(code, "") if reason is None else reason
        if len(kw["reason"].encode()) > 123:
            raise _fail(f"{aw}reason", "longer than 123 bytes")
    elif action == "resumption_update":
        _unknown(body, {"resumable"}, aw)
        kw["resumable"] = bool(_typed(body, "resumable", bool, aw, True))
    elif data[action] is not True:
        raise _fail(f"{where}.drop", "expected true")
    return Injection(trigger=trigger, action=action, **kw)


def scenario_from_dict(data: Any, *, base_dir: Path | None = None) -> Scenario:
    """Build and validate a :class:`Scenario` from parsed JSON/YAML."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ScenarioError(f"scenario must be a mapping at the top level, got {data!r}")
    simple = {f.name for f in fields(Scenario)} - {"turns", "injections", "base_dir"}
    _unknown(data, simple | {"turns", "injections", "name", "description"}, "")
    kw: dict[str, Any] = {}
    numeric: dict[str, type | tuple[type, ...]] = {
        "speed": (int, float), "vad_threshold": (int, float), "response_delay_ms": int,
        "silence_ms": int, "onset_ms": int, "chunk_ms": int, "tool_timeout_ms": int,
        "connection_lifetime_s": (int, float), "go_away_before_s": (int, float),
        "keep_audio_s": (int, float), "vad_noise_margin_db": (int, float)}
    for key, kinds in numeric.items():
        if data.get(key) is not None:
            kw[key] = _typed(data, key, kinds, "")
    if data.get("required_key") is not None:
        kw["required_key"] = str(_typed(data, "required_key", (str, int), ""))
    models = _typed(data, "known_models", list, "") or []
    if not all(isinstance(m, str) and m for m in models):
        raise _fail("known_models", "expected a list of model names")
    kw["known_models"] = tuple(models)
    turns = _typed(data, "turns", list, "") or []
    injections = _typed(data, "injections", list, "") or []
    return Scenario(turns=tuple(_turn(t, f"turns[{i}]") for i, t in enumerate(turns)),
                    injections=tuple(_injection(x, f"injections[{i}]")
                                     for i, x in enumerate(injections)),
                    base_dir=base_dir, **kw)


def load_scenario(path: str | Path) -> Scenario:
    """Read a JSON (``.json``) or YAML (anything else) scenario file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(f"cannot read scenario {p}: {exc}") from exc
    if p.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ScenarioError(f"scenario {p} is not valid JSON: {exc}") from exc
    else:
        data = _yaml(text, p)
    try:
        return scenario_from_dict(data, base_dir=p.parent)
    except ScenarioError as exc:
        raise ScenarioError(f"{p}: {exc}") from exc


def _yaml(text: str, path: Path) -> Any:
    # PyYAML is the simulator's extra (pip install 'voice-gateway[simulator]'): only YAML
    # scenario files need it, and the gateway itself never does.
    try:
        import yaml  # noqa: PLC0415
    except ImportError:
        raise ScenarioError(f"scenario {path} is YAML, which needs PyYAML: pip install "
                            "'voice-gateway[simulator]', or write it as JSON") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ScenarioError(f"scenario {path} is not valid YAML: {exc}") from exc


def bundled_scenario(name: str = "demo") -> Path:
    """Path of a scenario shipped in ``gateway/assets/scenarios`` (``"demo"`` -> demo.yaml)."""
    return speech.speech_dir().parent / "scenarios" / f"{name}.yaml"
