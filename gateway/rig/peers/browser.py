"""The console's talk page as a caller, sans-I/O: what the page sends the gateway's browser
socket (:mod:`gateway.carriers.browser`) and how it plays what it gets.

:class:`BrowserPeer` has no answer document: it opens ``/browser/media/{agent}`` itself
(``?format=`` choosing the audio; the operator's bearer token on the upgrade, as a script
would sign in), sends ``{"event":"start"}``, then the microphone's audio in binary frames of
20 ms. It plays reply audio at its own rate, echoes each ``mark`` once playback reaches it,
and on ``clear`` drops everything queued (marks behind it too, never echoed), as the page's
player does. A hang-up is ``{"event":"stop"}`` and the socket's close.

What the gateway sends is held to the page's expectations: ``started`` first, with the
format asked for; audio only in binary frames of whole samples; control only as the JSON
events the page knows; nothing after ``ended``. Anything else raises. The ``started``,
``ended`` and monitor messages are kept for the tests to read.
"""

from __future__ import annotations

import hmac
import json
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any, Final

from aiohttp import web

from gateway.audio import AudioFormat
from gateway.carriers.browser import BrowserFormat
from gateway.carriers.core import Carrier, CarrierProtocolError, Outgoing, WrongFrameType
from gateway.console.auth import Authorize
from gateway.rig.peers import (
    HttpRequest,
    OutboundEvent,
    OutClear,
    OutIgnored,
    OutMark,
    OutMedia,
    StreamTarget,
)

MAX_MONITOR_EVENTS: Final = 10_000  # kept for reading; a gateway that floods is refused


class BrowserPeer:
    """One talk page calling an agent: its socket's frames, the checks on what it is sent."""

    carrier = Carrier.BROWSER
    subprotocols: tuple[str, ...] = ()
    echo_marks_on_clear = False
    send_ms = 20

    def __init__(self, custom_parameters: Mapping[str, str] | None = None, *,
                 fmt: BrowserFormat = BrowserFormat.PCM16, agent: str | None = None) -> None:
        self.custom_parameters = dict(custom_parameters or {})
        self.format = fmt
        self.agent = agent  # None: the URL's (the gateway's default agent where it names none)
        self.started: dict[str, Any] | None = None
        self.ended: dict[str, Any] | None = None
        self.monitor: list[dict[str, Any]] = []

    @property
    def call_id(self) -> str:
        """The gateway names the call: known once ``started`` has come."""
        return str(self.started["call_id"]) if self.started else ""

    @property
    def inbound(self) -> AudioFormat:
        return self.format.value.inbound

    @property
    def outbound(self) -> AudioFormat:
        return self.format.value.outbound

    # -- no answer document: the page opens the socket -----------------------------------

    def webhook(self, url: str, secret: str | None) -> HttpRequest:
        raise CarrierProtocolError("the talk page fetches no answer document")

    def stream_target(self, document: str) -> StreamTarget:
        raise CarrierProtocolError("the talk page reads no answer document")

    def media_url(self, url: str) -> str:
        """``url`` with the agent (where it names none) and the format."""
        parts = urllib.parse.urlsplit(url)
        path = parts.path.rstrip("/")
        if path.endswith("/media") and self.agent:
            path += f"/{urllib.parse.quote(self.agent, safe='')}"
        query = urllib.parse.parse_qsl(parts.query)
        query = [(k, v) for k, v in query if k != "format"]
        query.append(("format", self.format.value.wire))
        return urllib.parse.urlunsplit(parts._replace(path=path,
                                                      query=urllib.parse.urlencode(query)))

    def upgrade_headers(self, url: str, secret: str | None) -> dict[str, str]:
        """A script signs in with the console's bearer token."""
        return {"Authorization": f"Bearer {secret}"} if secret else {}

    # -- the stream ----------------------------------------------------------------------

    def opening(self) -> Sequence[Outgoing]:
        return ['{"event":"start"}']

    def media(self, audio: bytes) -> bytes:
        return bytes(audio)

    def dtmf(self, digit: str) -> Sequence[Outgoing]:
        return [json.dumps({"event": "dtmf", "digit": digit})]

    def played(self, name: str) -> Sequence[Outgoing]:
        return [json.dumps({"event": "mark", "name": name})]

    def cleared(self) -> Sequence[Outgoing]:
        return []  # the page drops its queue; it confirms nothing

    def hang_up(self) -> Sequence[Outgoing]:
        return ['{"event":"stop"}']

    def receive(self, frame: str | bytes) -> OutboundEvent:
        """Parse what the gateway sent; anything the page would not take raises."""
        if self.ended is not None:
            raise CarrierProtocolError("a message after ended", call_sid=self.call_id)
        if isinstance(frame, bytes):
            self._expect_started("audio")
            size = self.outbound.codec.sample_bytes
            if not frame or len(frame) % size:
                raise CarrierProtocolError(f"audio frame of {len(frame)} bytes is not whole "
                                           f"samples", field="audio", call_sid=self.call_id)
            return OutMedia(frame)
        msg = _json_object(frame)
        if msg is None:
            raise WrongFrameType(False, call_sid=self.call_id)  # JSON control only
        event = msg.get("event")
        if event == "started":
            return self._started(msg)
        self._expect_started(str(event)[:40])
        if event == "mark":
            name = msg.get("name")
            if not isinstance(name, str) or not name:
                raise CarrierProtocolError("a mark without a name", call_sid=self.call_id)
            return OutMark(name)
        if event == "clear":
            return OutClear()
        if event == "monitor":
            data = msg.get("data")
            if not isinstance(data, dict) or not isinstance(data.get("type"), str):
                raise CarrierProtocolError("monitor data without a type", call_sid=self.call_id)
            if len(self.monitor) >= MAX_MONITOR_EVENTS:
                raise CarrierProtocolError("too many monitor events", call_sid=self.call_id)
            self.monitor.append(data)
            return OutIgnored()
        if event == "ended":
            if not isinstance(msg.get("end_kind"), str):
                raise CarrierProtocolError("ended without its kind", call_sid=self.call_id)
            self.ended = msg
            return OutIgnored()
        raise CarrierProtocolError(f"event {str(event)[:40]!r} is not one the page knows",
                                   call_sid=self.call_id)

    def _started(self, msg: dict[str, Any]) -> OutboundEvent:
        if self.started is not None:
            raise CarrierProtocolError("a second started", call_sid=self.call_id)
        if not isinstance(msg.get("call_id"), str) or not msg["call_id"]:
            raise CarrierProtocolError("started without a call id")
        if msg.get("format") != self.format.value.describe():
            raise CarrierProtocolError(f"started with format {msg.get('format')!r}, not the "
                                       f"one asked for", call_sid=msg["call_id"])
        self.started = msg
        return OutIgnored()

    def _expect_started(self, what: str) -> None:
        if self.started is None:
            raise CarrierProtocolError(f"{what} before started")


def operator_check(token: str) -> Authorize:
    """For a gateway the rig starts itself (the demo, the tests): the console's operator check
    as far as a script's bearer token goes. 401 without the token; 403 for a cross-site
    upgrade (an Origin other than the gateway's own)."""

    async def check(request: web.Request, state_change: bool) -> None:
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            raise web.HTTPUnauthorized(text="sign in first\n")
        origin = request.headers.get("Origin")
        if state_change and origin is not None and origin != f"http://{request.host}":
            raise web.HTTPForbidden(text="wrong origin\n")

    return check


def _json_object(frame: str) -> dict[str, Any] | None:
    try:
        msg = json.loads(frame)
    except (ValueError, RecursionError):
        return None
    return msg if isinstance(msg, dict) else None
