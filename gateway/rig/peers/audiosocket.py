"""Asterisk's side of an AudioSocket call, sans-I/O.

:class:`AudioSocketPeer` does what the dialplan and ``AudioSocket()`` would: it registers the
call with the gateway (``POST /audiosocket/calls``: the UUID, the agent and numbers, as the
dialplan's ``CURL()`` would, with the operator's Basic credentials given as ``user:password``),
then, over TCP, sends the UUID message, the caller's audio in 20 ms messages of 8 kHz signed
linear, keypad digits, and the hang-up. There are no marks and no clear: Asterisk writes what
it receives to the channel as it comes, and the phone plays it in real time.

What the gateway sends is held to what Asterisk takes: audio of whole samples in the call's
kind, or a hang-up; any other kind Asterisk treats as a fault, and so does this peer.
"""

from __future__ import annotations

import base64
import urllib.parse
import uuid
from collections.abc import Mapping, Sequence
from typing import Final

from gateway.audio import AudioFormat, Codec
from gateway.carriers.audiosocket import HANGUP_FRAME, HEADER, Kind, frame, uuid_frame
from gateway.carriers.core import Carrier, CarrierProtocolError, Outgoing, WrongFrameType
from gateway.rig.peers import (
    DEFAULT_CALLEE,
    DEFAULT_CALLER,
    HttpRequest,
    OutboundEvent,
    OutIgnored,
    OutMedia,
    StreamTarget,
)

FORMAT: Final = AudioFormat(Codec.L16, 8000)


class AudioSocketPeer:
    carrier = Carrier.AUDIOSOCKET
    subprotocols: tuple[str, ...] = ()
    send_ms = 20
    echo_marks_on_clear = False

    def __init__(self, custom_parameters: Mapping[str, str] | None = None, *,
                 call: uuid.UUID | None = None, fmt: AudioFormat = FORMAT) -> None:
        params = dict(custom_parameters or {})
        self.caller = params.pop("From", DEFAULT_CALLER)
        self.callee = params.pop("To", DEFAULT_CALLEE)
        self.custom_parameters = params
        self.uuid = call or uuid.uuid4()
        self.fmt = fmt
        self.kind = Kind.AUDIO if fmt.rate == 8000 else Kind.AUDIO_16K
        self.hung_up_by_gateway = False

    @property
    def call_id(self) -> str:
        return str(self.uuid)

    @property
    def inbound(self) -> AudioFormat:
        return self.fmt

    @property
    def outbound(self) -> AudioFormat:
        return self.fmt

    def webhook(self, url: str, secret: str | None) -> HttpRequest:
        """The dialplan's registration of this call, Basic credentials from ``secret``."""
        form = {"uuid": self.call_id, "from": self.caller, "to": self.callee,
                **self.custom_parameters}
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if secret:
            headers["Authorization"] = "Basic " + base64.b64encode(secret.encode()).decode()
        return HttpRequest("POST", url, headers, urllib.parse.urlencode(form).encode())

    def stream_target(self, document: str) -> StreamTarget:
        return StreamTarget("", {})  # no answer document: the dialplan names the socket

    def upgrade_headers(self, url: str, secret: str | None) -> dict[str, str]:
        return {}

    def opening(self) -> Sequence[Outgoing]:
        return [uuid_frame(self.uuid)]

    def media(self, audio: bytes) -> bytes:
        return frame(self.kind, audio)

    def dtmf(self, digit: str) -> Sequence[Outgoing]:
        return [frame(Kind.DTMF, digit.encode("ascii"))]

    def played(self, name: str) -> Sequence[Outgoing]:
        return []

    def cleared(self) -> Sequence[Outgoing]:
        return []

    def hang_up(self) -> Sequence[Outgoing]:
        return [HANGUP_FRAME]

    def receive(self, message: str | bytes) -> OutboundEvent:
        if isinstance(message, str):
            raise WrongFrameType(False, call_sid=self.call_id)
        kind, length = HEADER.unpack_from(message)
        payload = message[HEADER.size:]
        if len(payload) != length:
            raise CarrierProtocolError("gateway sent a message whose length is wrong")
        if kind == Kind.HANGUP:
            self.hung_up_by_gateway = True
            return OutIgnored()
        if kind != self.kind:
            raise CarrierProtocolError(f"Asterisk takes only audio (0x{self.kind:02x}) and "
                                       f"hang-up from the server, got kind 0x{kind:02x}")
        if not payload or len(payload) % 2:
            raise CarrierProtocolError("gateway sent audio that is not whole samples")
        return OutMedia(payload)


def audiosocket_peer(params: Mapping[str, str]) -> AudioSocketPeer:
    return AudioSocketPeer(params)
