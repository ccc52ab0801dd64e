"""The Live API's WebSocket transport: a thin ``websockets`` adapter over :mod:`gateway.live`.

It opens the socket with the endpoint's headers (the key travels in ``x-goog-api-key``, never in
the URL), sends ``setup``, waits for ``setupComplete`` and then hands out frames. Every
close is turned into :class:`LiveClosedError` carrying the peer's code and reason, so the bridge
can tell a normal end from a fault without knowing anything about ``websockets``.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from typing import Final

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.protocol import State

from gateway.config import LiveEndpoint
from gateway.errors import LiveClosedError, LiveConnectError, LiveSetupTimeoutError
from gateway.live import SetupComplete, parse_server_message
from gateway.wsframe import MaskedTextFramer

# Audio replies are small (a few KiB each); 4 MiB leaves room for large tool calls while
# bounding what one message can make us allocate.
MAX_MESSAGE_BYTES: Final = 4 * 1024 * 1024


class LiveSession:
    """One open, set-up Live session."""

    def __init__(self, ws: ClientConnection, session_id: str | None) -> None:
        self._ws = ws
        self.session_id = session_id
        self._framer = MaskedTextFramer()
        self._closing = False  # we closed it: its end is planned, not a fault

    async def send(self, text: str | bytes) -> None:
        """One text message (bytes: already UTF-8); waits while the socket is backed up."""
        try:
            await self._ws.send(text, text=True)
        except ConnectionClosed as exc:
            raise _closed_error(exc) from exc

    def send_nowait(self, text: bytes) -> bool:
        """Write one UTF-8 text message now, if nothing says to wait; else False: use send().

        ``send()`` costs a context manager, a drain and a task switch on every message; with
        a message every 20 ms per call that was a fifth of the gateway's CPU. When the
        connection is open, no fragmented send is under way and the transport has not asked
        us to pause, ``send()`` would not wait either, so the frame is serialised and
        written in place. In every other case the caller awaits ``send()``, which waits for
        the drain or reports the close as usual. Message order holds either way: frames are
        serialised in call order.
        """
        ws = self._ws
        protocol = ws.protocol
        if (protocol.state is not State.OPEN or ws.paused or ws.send_in_progress is not None
                or ws.transport.is_closing()):
            return False
        if protocol.extensions or protocol.writes:
            # An extension would transform the frame, and bytes the protocol has queued must
            # go first: let websockets serialise it.
            protocol.send_text(text)
            ws.send_data()
        else:
            ws.transport.write(self._framer.frame(text))
        return True

    async def frames(self) -> AsyncIterator[str | bytes]:
        """Raw frames until the socket closes. A close we asked for (:meth:`close`) ends the
        iteration; any other raises LiveClosedError with the peer's code and reason.

        Parsing is left to the caller (``gateway.live.parse_server_message``) so that one
        malformed message is reported and skipped instead of ending the session.
        """
        try:
            async for frame in self._ws:
                yield frame
        except ConnectionClosed as exc:
            if self._closing:
                return
            raise _closed_error(exc) from exc
        if self._closing:
            return
        # The peer's clean close ends the iterator without an exception; report it.
        raise _closed_error_from(self._ws)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self._closing = True
        await self._ws.close(code, reason)


def _closed_error(exc: ConnectionClosed) -> LiveClosedError:
    frame = exc.rcvd or exc.sent
    if frame is None:
        return LiveClosedError(1006, "connection lost without a close frame")
    return LiveClosedError(frame.code, frame.reason)


def _closed_error_from(ws: ClientConnection) -> LiveClosedError:
    code = ws.close_code if ws.close_code is not None else 1006
    return LiveClosedError(code, ws.close_reason or "")


async def open_session(endpoint: LiveEndpoint, setup: str, *, setup_timeout: float = 10.0,
                       ssl_context: ssl.SSLContext | None = None) -> LiveSession:
    """Connect, send ``setup``, wait for ``setupComplete``; all within ``setup_timeout`` s."""
    headers = {name: secret.reveal() for name, secret in endpoint.headers.items()}
    ws: ClientConnection | None = None
    # websockets wants ssl=True (default context) for wss:// and nothing for ws://.
    tls: ssl.SSLContext | bool | None = ssl_context or (True if endpoint.url.startswith("wss:")
                                                       else None)
    try:
        async with asyncio.timeout(setup_timeout):
            # No permessage-deflate: base64 audio barely compresses and deflate costs CPU on
            # every frame of every call.
            ws = await connect(endpoint.url, additional_headers=headers, compression=None,
                               max_size=MAX_MESSAGE_BYTES, open_timeout=None,
                               user_agent_header="voice-gateway", ssl=tls)
            await ws.send(setup)
            first = await ws.recv()
    except ConnectionClosed as exc:
        raise _closed_error(exc) from exc
    except TimeoutError as exc:
        if ws is not None:
            await ws.close(1000, "setup timeout")
        raise LiveSetupTimeoutError(f"no setupComplete within {setup_timeout:g} s "
                               f"from {endpoint.safe_url()}") from exc
    except (OSError, InvalidHandshake, InvalidURI) as exc:
        # The exception text can echo request details; the URL we print has no query string.
        raise LiveConnectError(f"cannot connect to {endpoint.safe_url()}: "
                               f"{type(exc).__name__}") from exc
    complete = next((e for e in parse_server_message(first) if isinstance(e, SetupComplete)),
                    None)
    if complete is None:
        await ws.close(1002, "expected setupComplete")
        raise LiveConnectError("the Live service did not answer setup with setupComplete")
    return LiveSession(ws, complete.session_id)
