"""A campaign in the gateway's own words. Pure: no I/O.

A campaign is a list of contacts called through the gateway's ``/v1/calls`` API. Each contact
moves through :class:`ContactState`; the move table says which moves are legal, and the store
applies a move only from the state the runner last saw (compare and set), so two runners, or
a runner and its own crashed predecessor, can never both dial one contact.

A contact's attempt is written down (``dialing``, with its idempotency key) *before* the
gateway is asked to place it. A runner that dies between the two, or before the answer arrives,
asks again with the same key on resume, and the gateway answers with the call it already
placed: that is what keeps "nobody is called twice" true across a crash.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final

from gateway.dialing.model import AnsweredBy, DialStatus, MachineDetection


class ContactState(enum.StrEnum):
    PENDING = "pending"  # waiting for its first attempt, or its next one (``next_at``)
    DIALING = "dialing"  # an attempt is written down; the call may be placed or ringing
    DONE = "done"  # called: ``result`` says how it ended
    SKIPPED = "skipped"  # never to be called: do-not-call, a bad number, no window...

    @property
    def final(self) -> bool:
        return self in (ContactState.DONE, ContactState.SKIPPED)


_MOVES: Final[Mapping[ContactState, frozenset[ContactState]]] = {
    ContactState.PENDING: frozenset({ContactState.DIALING, ContactState.SKIPPED}),
    # Back to pending: a retry after busy / no answer / failed.
    ContactState.DIALING: frozenset({ContactState.PENDING, ContactState.DONE,
                                     ContactState.SKIPPED}),
    ContactState.DONE: frozenset(),
    ContactState.SKIPPED: frozenset(),
}


def can_move(current: ContactState, new: ContactState) -> bool:
    return new in _MOVES[current]


class IllegalMove(ValueError):
    pass


class Result(enum.StrEnum):
    """How a contact ended, as the results CSV says it."""

    ANSWERED = "answered"  # a person (or nobody could tell: treated as a person)
    MACHINE = "machine"  # voicemail or another machine
    BUSY = "busy"  # busy / no answer / failed: on the last attempt allowed
    NO_ANSWER = "no_answer"
    FAILED = "failed"
    CANCELED = "canceled"  # hung up through the API before it was answered
    DO_NOT_CALL = "do_not_call"  # on the do-not-call list when its turn came
    INVALID = "invalid"  # its row could not be used (number, time zone, parameters)
    DUPLICATE = "duplicate"  # the same number earlier in the list: called once, there
    NO_WINDOW = "no_window"  # its time zones never share a moment inside the window
    REJECTED = "rejected"  # the gateway refused the request (4xx other than do-not-call)


RETRYABLE: Final = frozenset({DialStatus.BUSY, DialStatus.NO_ANSWER, DialStatus.FAILED})
_ENDED: Final[Mapping[DialStatus, Result]] = {
    DialStatus.BUSY: Result.BUSY, DialStatus.NO_ANSWER: Result.NO_ANSWER,
    DialStatus.FAILED: Result.FAILED, DialStatus.CANCELED: Result.CANCELED,
}


@dataclass(frozen=True, slots=True)
class CallSettings:
    """What every call of a campaign asks for; fixed when the campaign is created, because a
    resumed attempt must send the very body its key was first sent with."""

    agent: str
    carrier: str | None = None
    from_: str | None = None
    machine_detection: MachineDetection = MachineDetection.CONTINUE
    voicemail_message: str | None = None
    timeout_s: int | None = None

    def body(self, to: str, parameters: Mapping[str, str]) -> dict[str, Any]:
        """The ``POST /v1/calls`` body for one contact."""
        out: dict[str, Any] = {"to": to, "agent": self.agent, "parameters": dict(parameters),
                               "machine_detection": self.machine_detection.value}
        optional = {"carrier": self.carrier, "from": self.from_,
                    "voicemail_message": self.voicemail_message, "timeout_s": self.timeout_s}
        out.update({k: v for k, v in optional.items() if v is not None})
        return out

    def as_json(self) -> dict[str, Any]:
        return {"agent": self.agent, "carrier": self.carrier, "from": self.from_,
                "machine_detection": self.machine_detection.value,
                "voicemail_message": self.voicemail_message, "timeout_s": self.timeout_s}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CallSettings:
        timeout = data.get("timeout_s")
        return cls(str(data["agent"]), data.get("carrier"), data.get("from"),
                   MachineDetection(data.get("machine_detection", "continue")),
                   data.get("voicemail_message"), None if timeout is None else int(timeout))


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 3
    delay_s: float = 600.0


@dataclass(frozen=True, slots=True)
class Campaign:
    id: str  # in every idempotency key: campaign:<id>:<seq>:<attempt>
    name: str
    source: str  # the CSV it was made from, as given
    digest: str  # sha256 of that CSV: resuming from another file is refused
    call: CallSettings
    created_at: float  # Unix time
    finished_at: float | None = None


@dataclass(frozen=True, slots=True)
class Contact:
    campaign_id: str
    seq: int  # its row in the CSV, from 1 (the header is row 0)
    number: str  # E.164; a bad row keeps the text as given
    zones: tuple[str, ...]  # IANA time zones the window is checked in
    parameters: Mapping[str, str] = field(default_factory=dict)
    state: ContactState = ContactState.PENDING
    attempts: int = 0  # attempts written down (keys issued)
    next_at: float | None = None  # not before this (a retry's delay)
    dial_id: str | None = None  # the gateway's id of the current / last attempt's call
    last_status: DialStatus | None = None
    answered_by: AnsweredBy | None = None
    dial_ids: tuple[str, ...] = ()
    dial_times: tuple[float, ...] = ()  # when each attempt started
    result: Result | None = None
    error: str | None = None  # why it was skipped or refused, in a few words
    first_dial_at: float | None = None
    last_dial_at: float | None = None
    ended_at: float | None = None

    def key(self) -> str:
        """The idempotency key of the current attempt."""
        return f"campaign:{self.campaign_id}:{self.seq}:{self.attempts}"

    def move(self, state: ContactState, **changes: Any) -> Contact:
        if not can_move(self.state, state):
            raise IllegalMove(f"contact {self.seq}: {self.state} -> {state}")
        return replace(self, state=state, **changes)

    def attempt(self, now: float) -> Contact:
        """The next attempt written down: a new key, not yet posted."""
        return self.move(ContactState.DIALING, attempts=self.attempts + 1, dial_id=None,
                         last_status=None, answered_by=None, next_at=None,
                         first_dial_at=self.first_dial_at if self.first_dial_at else now,
                         last_dial_at=now, dial_times=(*self.dial_times, now))

    def placed(self, dial_id: str, status: DialStatus) -> Contact:
        """The gateway's answer to the attempt: its call id (same state)."""
        ids = self.dial_ids if dial_id in self.dial_ids else (*self.dial_ids, dial_id)
        return replace(self, dial_id=dial_id, dial_ids=ids, last_status=status)

    def skip(self, result: Result, error: str, now: float) -> Contact:
        return self.move(ContactState.SKIPPED, result=result, error=error, ended_at=now,
                         next_at=None)


def ended(contact: Contact, status: DialStatus, answered_by: AnsweredBy | None,
          policy: RetryPolicy, now: float, *, error: str | None = None) -> Contact:
    """The contact after its call ended with ``status``: done, or pending a retry."""
    base = replace(contact, last_status=status, answered_by=answered_by, error=error)
    if status in RETRYABLE and contact.attempts < policy.max_attempts:
        return base.move(ContactState.PENDING, next_at=now + policy.delay_s)
    if status is DialStatus.COMPLETED or status is DialStatus.ANSWERED:
        result = Result.MACHINE if answered_by is AnsweredBy.MACHINE else Result.ANSWERED
    else:
        result = _ENDED.get(status, Result.FAILED)
    return base.move(ContactState.DONE, result=result, ended_at=now)
