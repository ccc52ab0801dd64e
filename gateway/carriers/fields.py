"""Reading the fields of a provider's JSON messages: one place for the checks every JSON
carrier needs (a string, a counter, an object, base64 audio), each failure a
:class:`CarrierProtocolError` that names the field and the call."""

from __future__ import annotations

from typing import Any

import pybase64

from gateway.carriers.core import CarrierProtocolError
from gateway.jsonio import JSONDecodeError, json_error, loads


def parse_object(frame: str | bytes, call_id: str | None) -> dict[str, Any]:
    """One frame as a JSON object."""
    try:
        msg = loads(frame)
    except JSONDecodeError as exc:
        raise CarrierProtocolError(json_error(exc), call_sid=call_id) from exc
    if not isinstance(msg, dict):
        raise CarrierProtocolError("frame is not a JSON object", call_sid=call_id)
    return msg


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
