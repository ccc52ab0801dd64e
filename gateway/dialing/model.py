"""Outbound calls in the gateway's own words. Pure: no I/O.

A call the gateway places (:class:`DialRequest`, from ``POST /v1/calls``, ``voicegw dial`` or a
campaign) moves through :class:`DialStatus` as the carrier's status callbacks arrive. Carriers
send those over HTTP, with retries, so they can arrive late, twice or out of order: a move the
table does not allow (``ringing`` after ``answered``, anything after a final status) is
ignored and counted, never applied. Who or what picked up (:class:`AnsweredBy`) is decided by
the gateway's own detector on the answered audio, or by the carrier's where it has one,
whichever is sure first; the decision, its timing and the voicemail beep go on the record.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import phonenumbers

from gateway.carriers.core import Carrier
from gateway.errors import GatewayError

MAX_PARAMETERS: Final = 32
MAX_PARAMETER_CHARS: Final = 500
MAX_MESSAGE_CHARS: Final = 1000
MIN_TIMEOUT_S: Final = 5
MAX_TIMEOUT_S: Final = 120
DEFAULT_TIMEOUT_S: Final = 30
_PARAMETER_NAME: Final = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")
# Stream parameters the gateway itself uses: a caller may not set them.
RESERVED_PARAMETERS: Final = frozenset({"agent", "voicegw_token", "voicegw_dial"})
#: The stream parameter naming the outbound call a media stream belongs to.
DIAL_PARAMETER: Final = "voicegw_dial"


class MachineDetection(enum.StrEnum):
    """What to do when a machine answers."""

    CONTINUE = "continue"  # talk anyway (detection still runs, for the record)
    HANGUP = "hangup"
    LEAVE_MESSAGE = "leave_message"  # speak ``voicemail_message`` after the beep, hang up


class DialStatus(enum.StrEnum):
    QUEUED = "queued"  # accepted by the gateway, being placed with the carrier
    RINGING = "ringing"
    ANSWERED = "answered"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    FAILED = "failed"  # the carrier refused it, or it could not be placed at all
    CANCELED = "canceled"  # hung up (DELETE) before it was answered
    COMPLETED = "completed"  # answered, then ended

    @property
    def final(self) -> bool:
        return self in FINAL


FINAL: Final = frozenset({DialStatus.BUSY, DialStatus.NO_ANSWER, DialStatus.FAILED,
                          DialStatus.CANCELED, DialStatus.COMPLETED})
_ENDINGS: Final = frozenset({DialStatus.BUSY, DialStatus.NO_ANSWER, DialStatus.FAILED,
                             DialStatus.CANCELED})
# A lost callback must not strand a call: "completed" may follow "queued" or "ringing"
# directly (the "answered" in between never came), and "ringing" may be skipped.
_MOVES: Final[Mapping[DialStatus, frozenset[DialStatus]]] = {
    DialStatus.QUEUED: frozenset({DialStatus.RINGING, DialStatus.ANSWERED,
                                  DialStatus.COMPLETED} | _ENDINGS),
    DialStatus.RINGING: frozenset({DialStatus.ANSWERED, DialStatus.COMPLETED} | _ENDINGS),
    DialStatus.ANSWERED: frozenset({DialStatus.COMPLETED, DialStatus.FAILED}),
    **{status: frozenset() for status in FINAL},
}


def can_move(current: DialStatus, new: DialStatus) -> bool:
    """Whether ``new`` may follow ``current`` (a repeat or a step back may not)."""
    return new in _MOVES[current]


class AnsweredBy(enum.StrEnum):
    HUMAN = "human"
    MACHINE = "machine"
    UNKNOWN = "unknown"  # nobody could tell in time: treated as a person


class AmdSource(enum.StrEnum):
    GATEWAY = "gateway"  # our detector, on the answered audio
    CARRIER = "carrier"  # the carrier's own detection (Twilio AsyncAmd, Telnyx...)


@dataclass(frozen=True, slots=True)
class AmdResult:
    """What answered, as the record keeps it. Times are ms from when the stream started."""

    answered_by: AnsweredBy
    source: AmdSource
    decided_ms: float
    beep_ms: float | None = None  # end of the voicemail beep, where one was heard
    message_ms: float | None = None  # when the voicemail message started playing
    detail: str = ""  # a few words: "long greeting", "carrier: machine_end_beep"

    def as_json(self) -> dict[str, Any]:
        return {"answered_by": self.answered_by.value, "source": self.source.value,
                "decided_ms": self.decided_ms, "beep_ms": self.beep_ms,
                "message_ms": self.message_ms, "detail": self.detail}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AmdResult:
        return cls(AnsweredBy(data["answered_by"]), AmdSource(data["source"]),
                   float(data["decided_ms"]), _opt_float(data.get("beep_ms")),
                   _opt_float(data.get("message_ms")), str(data.get("detail", "")))


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


class DialInputError(GatewayError):
    """A request to place a call that cannot be honoured as given: HTTP 4xx naming ``field``."""

    def __init__(self, field: str, message: str, status: int = 422) -> None:
        self.field = field
        self.status = status
        super().__init__(f"{field}: {message}")

    def as_json(self) -> dict[str, str]:
        return {"error": str(self), "field": self.field}


@dataclass(frozen=True, slots=True)
class DialRequest:
    to: str  # E.164
    from_: str  # E.164: the carrier number the call comes from ("from" on the wire)
    agent: str
    carrier: Carrier
    parameters: Mapping[str, str] = field(default_factory=dict)
    machine_detection: MachineDetection = MachineDetection.CONTINUE
    voicemail_message: str | None = None
    timeout_s: int = DEFAULT_TIMEOUT_S  # how long it may ring

    def as_json(self) -> dict[str, Any]:
        return {"to": self.to, "from": self.from_, "agent": self.agent,
                "carrier": self.carrier.value, "parameters": dict(self.parameters),
                "machine_detection": self.machine_detection.value,
                "voicemail_message": self.voicemail_message, "timeout_s": self.timeout_s}


def e164(number: object, field_name: str) -> str:
    """``number`` written E.164; :class:`DialInputError` if it is not a possible number."""
    if not isinstance(number, str) or not number.strip():
        raise DialInputError(field_name, "a phone number in E.164 form is required, "
                                         "e.g. +15550100100")
    text = number.strip()
    if not text.startswith("+"):
        raise DialInputError(field_name, "give the number in E.164 form, with + and the "
                                         "country code")
    try:
        parsed = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        raise DialInputError(field_name, f"{text[:32]!r} is not a phone number") from None
    if not phonenumbers.is_possible_number(parsed):
        raise DialInputError(field_name, f"{text[:32]!r} is not a possible phone number")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def parse_dial_request(body: object, *, agents: Collection[str],
                       carriers: Collection[Carrier], default_carrier: Carrier | None = None,
                       default_from: Mapping[Carrier, str] | None = None) -> DialRequest:
    """The request in a ``POST /v1/calls`` body; :class:`DialInputError` naming the first field
    at fault. ``carriers`` are those this gateway can dial on now (served, with REST
    credentials); ``default_from`` the number each dials from when ``from`` is not given."""
    if not isinstance(body, Mapping):
        raise DialInputError("body", "expected a JSON object", 400)
    known = {"to", "from", "agent", "carrier", "parameters", "machine_detection",
             "voicemail_message", "timeout_s"}
    unknown = sorted(k for k in body if k not in known)
    if unknown:
        raise DialInputError(str(unknown[0])[:64], "unknown field")
    carrier = _carrier(body.get("carrier"), carriers, default_carrier)
    to = e164(body.get("to"), "to")
    sender = body.get("from")
    if sender is None and default_from and carrier in default_from:
        sender = default_from[carrier]
    from_ = e164(sender, "from")
    agent = body.get("agent")
    if not isinstance(agent, str) or not agent.strip():
        raise DialInputError("agent", "the name of the agent that talks is required")
    if agent not in agents:
        raise DialInputError("agent", f"no agent named {agent[:64]!r}; known: "
                                      f"{', '.join(sorted(agents))}")
    detection = _detection(body.get("machine_detection"))
    message = body.get("voicemail_message")
    if message is not None and (not isinstance(message, str) or not message.strip()):
        raise DialInputError("voicemail_message", "expected the message's text")
    if isinstance(message, str) and len(message) > MAX_MESSAGE_CHARS:
        raise DialInputError("voicemail_message", f"longer than {MAX_MESSAGE_CHARS} characters")
    if detection is MachineDetection.LEAVE_MESSAGE and not message:
        raise DialInputError("voicemail_message", "required with machine_detection "
                                                  "leave_message")
    return DialRequest(to=to, from_=from_, agent=agent, carrier=carrier,
                       parameters=parse_parameters(body.get("parameters")),
                       machine_detection=detection,
                       voicemail_message=message.strip() if isinstance(message, str) else None,
                       timeout_s=_timeout(body.get("timeout_s")))


def _carrier(value: object, carriers: Collection[Carrier], default: Carrier | None) -> Carrier:
    if value is None:
        if default is None:
            raise DialInputError("carrier", "required: more than one carrier can dial here "
                                            f"({', '.join(sorted(c.value for c in carriers))})")
        return default
    try:
        carrier = Carrier(str(value))
    except ValueError:
        raise DialInputError("carrier", f"unknown carrier {str(value)[:32]!r}") from None
    if carrier not in carriers:
        raise DialInputError("carrier", f"{carrier.value} cannot place calls on this gateway "
                                        "(not served, no REST credentials, or no outbound "
                                        "API)")
    return carrier


def _detection(value: object) -> MachineDetection:
    if value is None:
        return MachineDetection.CONTINUE
    try:
        return MachineDetection(str(value))
    except ValueError:
        raise DialInputError("machine_detection", "one of continue, hangup, leave_message") \
            from None


def _timeout(value: object) -> int:
    if value is None:
        return DEFAULT_TIMEOUT_S
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not MIN_TIMEOUT_S <= value <= MAX_TIMEOUT_S:
        raise DialInputError("timeout_s", f"seconds to ring, {MIN_TIMEOUT_S} to "
                                          f"{MAX_TIMEOUT_S}")
    return int(value)


def parse_parameters(value: object) -> dict[str, str]:
    """Custom parameters for the agent: a flat object of short strings."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise DialInputError("parameters", "expected an object of names to strings")
    if len(value) > MAX_PARAMETERS:
        raise DialInputError("parameters", f"at most {MAX_PARAMETERS}")
    out: dict[str, str] = {}
    for name, text in value.items():
        where = f"parameters.{str(name)[:64]}"
        if not isinstance(name, str) or not _PARAMETER_NAME.match(name):
            raise DialInputError(where, "names are letters, digits, _ . -, from a letter")
        if name in RESERVED_PARAMETERS:
            raise DialInputError(where, "reserved for the gateway")
        if isinstance(text, bool) or not isinstance(text, str | int | float):
            raise DialInputError(where, "expected a string")
        if len(str(text)) > MAX_PARAMETER_CHARS:
            raise DialInputError(where, f"longer than {MAX_PARAMETER_CHARS} characters")
        out[name] = str(text)
    return out


@dataclass(frozen=True, slots=True)
class StatusChange:
    status: DialStatus
    at: float  # Unix time
    detail: str = ""  # the carrier's own word ("no-answer", SIP 486...)


@dataclass(frozen=True, slots=True)
class DialRecord:
    """One outbound call as the store and the API keep it."""

    id: str
    request: DialRequest
    status: DialStatus
    created_at: float
    updated_at: float
    key: str | None = None  # the Idempotency-Key it was placed with
    carrier_call_id: str | None = None
    control_id: str | None = None  # see CallProgress.control_id
    history: tuple[StatusChange, ...] = ()
    amd: AmdResult | None = None
    error: str | None = None  # why it could not be placed

    def as_json(self) -> dict[str, Any]:
        """``GET /v1/calls/{id}``."""
        return {"id": self.id, "status": self.status.value, **self.request.as_json(),
                "carrier_call_id": self.carrier_call_id, "created_at": self.created_at,
                "updated_at": self.updated_at,
                "history": [{"status": c.status.value, "at": c.at, "detail": c.detail}
                            for c in self.history],
                "answered_by": self.amd.answered_by.value if self.amd else None,
                "amd": self.amd.as_json() if self.amd else None, "error": self.error}


@dataclass(frozen=True, slots=True)
class CallProgress:
    """One status callback from a carrier, in neutral words (each carrier's hooks module
    reads its own). ``status`` is None for a callback that carries only the carrier's
    detection result."""

    carrier_call_id: str
    status: DialStatus | None
    detail: str = ""  # the carrier's own status word
    answered_by: AnsweredBy | None = None  # the carrier's detection, when this carries it
    beep: bool = False  # the carrier says its detection ended on a beep
    # The id the carrier controls the call by once it is up, where that differs from the one
    # placing it answered with (Plivo: the CallUUID, after the request_uuid).
    control_id: str = ""


@dataclass(frozen=True, slots=True)
class PlaceCall:
    """What a carrier's REST client is asked to do to place one call."""

    dial_id: str
    to: str
    from_: str
    answer_url: str  # the gateway's answer webhook for this call (its agent and dial id)
    status_url: str  # where the carrier posts status (and detection) callbacks
    timeout_s: int
    carrier_amd: bool  # ask for the carrier's own answering-machine detection, if it has one
