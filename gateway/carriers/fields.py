"""Reading a provider's JSON messages: one place for the checks every JSON carrier needs (an
event name looked up in the carrier's table of legal moves; a string, a counter, an object,
base64 audio), each failure a :class:`CarrierProtocolError` that names the field and the call."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import pybase64

from gateway.carriers.core import (
    BadStart,
    CarrierEvent,
    CarrierProtocolError,
    EventRole,
    OutOfOrder,
    StreamState,
    UnknownEvent,
)
from gateway.jsonio import JSONDecodeError, json_error, loads

S = TypeVar("S")
Parser = Callable[[S, dict[str, Any]], Sequence[CarrierEvent]]


@dataclass(frozen=True, slots=True)
class EventTable(Generic[S]):
    """A JSON carrier's events: the parser of each (``S`` is the carrier's stream), the moves
    each state allows, and what each event does to a stream. Lookups only: the stream keeps
    its state, and moves to the next one only once the event has parsed, so a rejected frame
    leaves it as it was."""

    parsers: Mapping[str, Parser[S]]
    legal: Mapping[StreamState, Mapping[str, StreamState]]
    roles: Mapping[str, EventRole]
    key: str = "event"  # the field that names the event

    def read(self, frame: str | bytes, call_id: str | None) -> tuple[str, dict[str, Any]]:
        """The frame's event name and its object; a name not in the table is
        :class:`UnknownEvent` (tolerated: providers add events)."""
        msg = parse_object(frame, call_id)
        event = msg.get(self.key)
        if not isinstance(event, str):
            raise CarrierProtocolError("missing or not a string", field=self.key,
                                       call_sid=call_id)
        if event not in self.parsers:
            raise UnknownEvent(event, call_sid=call_id)
        return event, msg

    def move(self, state: StreamState, event: str, call_id: str | None) -> StreamState:
        """The state ``event`` leads to from ``state``, or :class:`OutOfOrder`."""
        next_state = self.legal[state].get(event)
        if next_state is None:
            raise OutOfOrder(event, state, call_sid=call_id,
                             role=self.roles.get(event, EventRole.OTHER))
        return next_state


def opens_stream(parse: Parser[S]) -> Parser[S]:
    """For the parser of the message that opens a stream: any fault in it leaves the stream
    unusable, so it is raised as the type that says so, :class:`BadStart`."""

    @functools.wraps(parse)
    def checked(stream: S, msg: dict[str, Any]) -> Sequence[CarrierEvent]:
        try:
            return parse(stream, msg)
        except BadStart:
            raise
        except CarrierProtocolError as exc:
            raise BadStart(exc.message, field=exc.field, call_sid=exc.call_sid) from exc

    return checked


def parse_object(frame: str | bytes, call_id: str | None) -> dict[str, Any]:
    """One frame as a JSON object."""
    try:
        msg = loads(frame)
    except JSONDecodeError as exc:
        raise CarrierProtocolError(json_error(exc), call_sid=call_id) from exc
    if not isinstance(msg, dict):
        raise CarrierProtocolError("frame is not a JSON object", call_sid=call_id)
    return msg


def check_stream(msg: dict[str, Any], key: str, stream_id: str | None,
                 call_id: str | None) -> None:
    """Carriers stamp each frame after the start with the stream's id in ``key``: another id
    means another stream's frames."""
    found = msg.get(key)
    if found is not None and found != stream_id:
        raise CarrierProtocolError(f"{key} does not match this stream", field=key,
                                   call_sid=call_id)


def str_field(obj: dict[str, Any], key: str, path: str, call_id: str | None) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise CarrierProtocolError("missing or not a string", field=f"{path}{key}",
                                   call_sid=call_id)
    return value


def int_field(obj: dict[str, Any], key: str, path: str, call_id: str | None) -> int:
    """A counter, sent as a JSON string by most providers; real integers are taken too."""
    value = obj.get(key)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    # ASCII only and bounded: str.isdigit() accepts "²" (int() rejects it) and int() refuses
    # strings over 4300 digits, either of which would escape as a bare ValueError.
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 18:
        return int(value)
    raise CarrierProtocolError("missing or not an integer", field=f"{path}{key}",
                               call_sid=call_id)


def obj_field(obj: dict[str, Any], key: str, path: str, call_id: str | None) -> dict[str, Any]:
    value = obj.get(key)
    if not isinstance(value, dict):
        raise CarrierProtocolError("missing or not an object", field=f"{path}{key}",
                                   call_sid=call_id)
    return value


def b64_audio(text: Any, where: str, max_bytes: int, call_id: str | None) -> bytes:
    """Base64 audio of at most ``max_bytes``, checked before it is decoded (so a huge frame
    costs nothing), not empty."""
    if not isinstance(text, str):
        raise CarrierProtocolError("missing or not a string", field=where, call_sid=call_id)
    # Base64 is 4/3 the size of its bytes.
    if len(text) > (max_bytes * 4) // 3 + 4:
        raise CarrierProtocolError(f"payload larger than {max_bytes} bytes", field=where,
                                   call_sid=call_id)
    try:
        payload = pybase64.b64decode(text, validate=True)
    except ValueError as exc:  # binascii.Error is one
        raise CarrierProtocolError("payload is not base64", field=where,
                                   call_sid=call_id) from exc
    if not payload:
        raise CarrierProtocolError("payload is empty", field=where, call_sid=call_id)
    if len(payload) > max_bytes:  # the length pre-check rounds up to whole quanta
        raise CarrierProtocolError(f"payload larger than {max_bytes} bytes", field=where,
                                   call_sid=call_id)
    return payload


def raw_audio(payload: bytes, max_bytes: int, call_id: str | None, *,
              sample_bytes: int = 2) -> bytes:
    """An audio frame that needs no decoding (binary L16 or G.711): not empty, within
    ``max_bytes``, whole samples. The checks keep the bridge's codecs and resampler on whole
    samples and bounded input."""
    if not payload:
        raise CarrierProtocolError("empty audio frame", field="audio", call_sid=call_id)
    if len(payload) > max_bytes:
        raise CarrierProtocolError(f"audio frame larger than {max_bytes} bytes", field="audio",
                                   call_sid=call_id)
    if len(payload) % sample_bytes:
        raise CarrierProtocolError(f"audio frame is not whole {8 * sample_bytes}-bit samples",
                                   field="audio", call_sid=call_id)
    return payload
