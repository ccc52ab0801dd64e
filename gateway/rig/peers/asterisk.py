"""Asterisk's side of a ``chan_websocket`` call, sans-I/O.

:class:`AsteriskPeer` plays what Asterisk does when its dialplan runs
``Dial(WebSocket/<connection>/c(<codec>)v(...))``: there is no answer document, so it dials the
gateway's media URL itself (the dial string's ``v()`` parameters in the query; the
connection's user and password as HTTP Basic credentials) and, once the socket is open, sends
``MEDIA_START`` in its control dialect (plain text, or JSON with the channel's variables),
then the caller's audio in binary frames of ``optimal_frame_size``. It confirms a
``MARK_MEDIA`` with ``MEDIA_MARK_PROCESSED`` once playback reaches it; ``FLUSH_MEDIA`` drops
what is queued (marks behind it included, never confirmed) and is not answered. Flow control
is the test's to drive (:meth:`AsteriskPeer.xoff`, :meth:`AsteriskPeer.xon`). A hang-up is
the socket's normal close; the gateway's ``HANGUP`` is counted.

What the gateway sends is held to Asterisk's rules: audio in binary frames of whole optimal
frames within 65500 bytes, commands as text in the stream's own dialect and within 128 bytes,
and only commands Asterisk knows; anything else raises.
"""

from __future__ import annotations

import base64
import itertools
import json
import secrets
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any, Final

from gateway.audio import AudioFormat
from gateway.carriers.asterisk import (
    DTMF_END,
    FLUSH_MEDIA,
    FORMATS,
    HANGUP,
    MARK_MEDIA,
    MARK_PROCESSED,
    MAX_COMMAND_BYTES,
    MAX_MESSAGE_BYTES,
    MEDIA_START,
    XOFF,
    XON,
    Dialect,
)
from gateway.carriers.core import Carrier, CarrierProtocolError, Outgoing, WrongFrameType
from gateway.rig.peers import (
    HttpRequest,
    OutboundEvent,
    OutClear,
    OutIgnored,
    OutMark,
    OutMedia,
    StreamTarget,
)

DEFAULT_USER: Final = "asterisk"
CONNECTION: Final = "media_connection1"  # the websocket_client.conf section's name
# Commands Asterisk takes that change nothing the phone plays.
_QUIET: Final = frozenset({"ANSWER", "START_MEDIA_BUFFERING", "STOP_MEDIA_BUFFERING",
                           "PAUSE_MEDIA", "CONTINUE_MEDIA", "GET_STATUS",
                           "REPORT_QUEUE_DRAINED"})
_channels = itertools.count(1)


def basic_credentials(secret: str) -> str:
    """The ``Authorization`` value for ``secret`` (``user:password``, or a bare password for
    the default user)."""
    pair = secret if ":" in secret else f"{DEFAULT_USER}:{secret}"
    return "Basic " + base64.b64encode(pair.encode()).decode("ascii")


class AsteriskPeer:
    """One Asterisk channel dialling the gateway: its socket's frames, the checks on replies."""

    carrier = Carrier.ASTERISK
    subprotocols: tuple[str, ...] = ()
    echo_marks_on_clear = False
    send_ms = 20

    def __init__(self, custom_parameters: Mapping[str, str] | None = None, *,
                 format_name: str = "ulaw", dialect: Dialect = Dialect.PLAIN,
                 channel_variables: Mapping[str, str] | None = None,
                 channel_id: str | None = None) -> None:
        if format_name not in FORMATS:
            raise ValueError(f"unknown Asterisk format {format_name!r}")
        self.custom_parameters = dict(custom_parameters or {})  # the dial string's v()
        self.format_name = format_name
        self.fmt = FORMATS[format_name]
        self.dialect = dialect
        self.channel_variables = dict(channel_variables or {})
        self.channel_id = channel_id or f"pbx1-{secrets.randbelow(10**10)}.{next(_channels)}"
        self.channel = f"WebSocket/{CONNECTION}/0x{secrets.token_hex(6)}"
        self.hangups = 0  # HANGUP commands received

    @property
    def call_id(self) -> str:
        return self.channel_id

    @property
    def inbound(self) -> AudioFormat:
        return self.fmt

    @property
    def outbound(self) -> AudioFormat:
        return self.fmt

    @property
    def frame_bytes(self) -> int:
        return self.fmt.frame_bytes  # 20 ms: Asterisk's ptime for these codecs

    # -- no answer document: the dialplan dials the socket -------------------------------

    def webhook(self, url: str, secret: str | None) -> HttpRequest:
        raise CarrierProtocolError("Asterisk fetches no answer document: it dials the socket")

    def stream_target(self, document: str) -> StreamTarget:
        raise CarrierProtocolError("Asterisk reads no answer document")

    def media_url(self, url: str) -> str:
        """``url`` with the dial string's ``v()`` parameters added to its query."""
        if not self.custom_parameters:
            return url
        parts = urllib.parse.urlsplit(url)
        query = "&".join(q for q in (parts.query, urllib.parse.urlencode(
            self.custom_parameters)) if q)
        return urllib.parse.urlunsplit(parts._replace(query=query))

    def upgrade_headers(self, url: str, secret: str | None) -> dict[str, str]:
        return {"Authorization": basic_credentials(secret)} if secret else {}

    # -- the stream ----------------------------------------------------------------------

    def _event(self, name: str, **fields: Any) -> str:
        if self.dialect is Dialect.JSON:
            return json.dumps({"event": name, "channel_id": self.channel_id, **fields})
        if name == MARK_PROCESSED:
            return f"{name} {fields['correlation_id']}".rstrip()
        words = " ".join(f"{k}:{v}" for k, v in fields.items())
        return f"{name} {words}".rstrip()

    def opening(self) -> Sequence[Outgoing]:
        start: dict[str, Any] = {"connection_id": CONNECTION, "channel": self.channel,
                                 "channel_id": self.channel_id, "format": self.format_name,
                                 "optimal_frame_size": self.frame_bytes, "ptime": 20}
        if self.dialect is Dialect.JSON:
            variables = {"MEDIA_WEBSOCKET_OPTIMAL_FRAME_SIZE": str(self.frame_bytes),
                         "MEDIA_WEBSOCKET_CONNECTION_ID": CONNECTION, **self.channel_variables}
            return [json.dumps({"event": MEDIA_START, **start,
                                "channel_variables": variables})]
        return [f"{MEDIA_START} " + " ".join(f"{k}:{v}" for k, v in start.items())]

    def media(self, audio: bytes) -> bytes:
        return bytes(audio)

    def dtmf(self, digit: str) -> Sequence[Outgoing]:
        if self.dialect is Dialect.JSON:
            return [self._event(DTMF_END, digit=digit)]
        return [f"{DTMF_END} digit:{digit} channel_id:{self.channel_id}"]

    def played(self, name: str) -> Sequence[Outgoing]:
        return [self._event(MARK_PROCESSED, correlation_id=name)]

    def cleared(self) -> Sequence[Outgoing]:
        return []  # FLUSH_MEDIA is not confirmed

    def hang_up(self) -> Sequence[Outgoing]:
        return []  # the socket's normal close is the hang-up

    def xoff(self) -> Outgoing:
        """Asterisk's queue of the gateway's audio reached its high-water mark."""
        return self._event(XOFF)

    def xon(self) -> Outgoing:
        return self._event(XON)

    def receive(self, frame: str | bytes) -> OutboundEvent:
        """Parse what the gateway sent; anything Asterisk would not take raises."""
        if isinstance(frame, bytes):
            if not frame or len(frame) % self.frame_bytes or len(frame) > MAX_MESSAGE_BYTES:
                raise CarrierProtocolError(
                    f"audio message of {len(frame)} bytes; Asterisk takes whole "
                    f"{self.frame_bytes}-byte frames (and drops the rest)", field="audio",
                    call_sid=self.call_id)
            return OutMedia(frame)
        if len(frame.encode()) > MAX_COMMAND_BYTES:
            raise CarrierProtocolError("command over 128 bytes: Asterisk ignores it",
                                       call_sid=self.call_id)
        command, argument = self._command(frame)
        if command == MARK_MEDIA:
            if not argument:
                raise CarrierProtocolError("a mark without an id", call_sid=self.call_id)
            return OutMark(argument)
        if command == FLUSH_MEDIA:
            return OutClear()
        if command == HANGUP:
            self.hangups += 1
            return OutIgnored()
        if command in _QUIET:
            return OutIgnored()
        raise CarrierProtocolError(f"command {command[:40]!r} is not one Asterisk knows",
                                   call_sid=self.call_id)

    def _command(self, frame: str) -> tuple[str, str]:
        """A command and its argument, read as Asterisk reads the stream's dialect."""
        if self.dialect is Dialect.PLAIN:
            if frame.lstrip().startswith("{"):
                raise WrongFrameType(False, call_sid=self.call_id)  # JSON on a plain stream
            command, _, argument = frame.strip().partition(" ")
            return command, argument.strip()
        try:
            msg = json.loads(frame)
        except (ValueError, RecursionError):
            raise CarrierProtocolError("not a JSON command on a JSON stream",
                                       call_sid=self.call_id) from None
        if not isinstance(msg, dict) or not isinstance(msg.get("command"), str):
            raise CarrierProtocolError("a JSON command names its command",
                                       call_sid=self.call_id)
        argument = msg.get("correlation_id", "")
        return msg["command"], argument if isinstance(argument, str) else ""
