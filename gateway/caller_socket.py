"""The carrier's media socket over aiohttp: :class:`gateway.bridge_config.CallerSocket`."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from typing import Final

from aiohttp import WebSocketError, WSCloseCode, WSMsgType, web

from gateway.carriers.core import FrameTooLarge, Outgoing
from gateway.wsframe import server_frame

# Carrier frames are a few hundred bytes (a few KiB for the ones that batch 100 ms); anything
# near this is not a media stream. aiohttp refuses a bigger frame from its header, before
# reading it, and closes with 1009.
MAX_FRAME_BYTES: Final = 64 * 1024
# The kernel's buffers for each caller socket, fixed rather than autotuned. Left to Linux, a
# caller that stops reading soaks up ~1.8 MB (minutes of reply audio) before a send even
# blocks, and one sending faster than real time parks megabytes in our receive buffer. 64 KiB
# each way (the kernel doubles it) still holds seconds of audio (a carrier sends ~15-35 KB/s,
# a reply bursts at a few times that), enough for any round trip.
CALLER_SOCKET_BUFFER: Final = 64 * 1024
# Our close frame out and the caller's back; past this the connection is cut.
CALLER_CLOSE_TIMEOUT_S: Final = 5.0


class AiohttpCaller:
    """A carrier's WebSocket. ``transport`` (the request's) lets a close cut a connection
    whose peer stopped reading: aiohttp's own close would wait for it forever, holding the
    bytes queued for it."""

    def __init__(self, ws: web.WebSocketResponse,
                 transport: asyncio.Transport | None = None) -> None:
        self.ws = ws
        self.transport = transport
        sock = transport.get_extra_info("socket") if transport is not None else None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, CALLER_SOCKET_BUFFER)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, CALLER_SOCKET_BUFFER)

    @property
    def close_code(self) -> int | None:
        return self.ws.close_code

    async def receive(self) -> str | bytes | None:
        # ws.receive() itself, not `async for`: two fewer layers of async iteration on
        # every 20 ms frame of every call.
        msg = await self.ws.receive()
        kind = msg.type
        if kind is WSMsgType.TEXT or kind is WSMsgType.BINARY:
            data: str | bytes = msg.data
            return data
        if (kind is WSMsgType.ERROR and isinstance(msg.data, WebSocketError)
                and msg.data.code == WSCloseCode.MESSAGE_TOO_BIG):
            # Already closed with 1009 by aiohttp; tell the bridge why, not "hung up".
            raise FrameTooLarge(MAX_FRAME_BYTES)
        return None  # closing, closed, or an error that ends the stream

    def send_nowait(self, frame: Outgoing) -> bool:
        # The frame goes straight to the transport when nothing is waiting in our buffer:
        # no task switch, no timer. Whole frames only, so it cannot split one of aiohttp's
        # (its close and pong frames are whole writes too). Not after a close has begun.
        transport = self.transport
        if (transport is None or self.ws.closed or transport.is_closing()
                or transport.get_write_buffer_size()):
            return False
        transport.write(server_frame(frame))
        return True

    async def send(self, frame: Outgoing) -> None:
        try:
            if isinstance(frame, str):
                await self.ws.send_str(frame)
            else:
                await self.ws.send_bytes(frame)
        except (ConnectionResetError, RuntimeError) as exc:
            raise ConnectionError(str(exc)) from exc

    async def close(self, code: int, reason: str) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing() and \
                transport.get_write_buffer_size() > transport.get_write_buffer_limits()[1]:
            # Writing is paused: the peer is not reading, and a close frame would only queue
            # behind the bytes it is not taking.
            self._abort()
            return
        # A close reason is at most 123 bytes; cut on a character boundary.
        message = reason.encode()[:120].decode("utf-8", "ignore").encode()
        try:
            async with asyncio.timeout(CALLER_CLOSE_TIMEOUT_S):
                await self.ws.close(code=code, message=message)
        except TimeoutError:
            self._abort()
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
            # aiohttp (3.14) re-awaits the drain future that a timed-out send left cancelled,
            # raising CancelledError in a task nobody cancelled: the peer is stuck; cut it.
            self._abort()

    def _abort(self) -> None:
        """Cut the connection and drop what is queued for it, in our buffers and the kernel's."""
        if self.transport is None:
            return
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            # Linger 0: close() resets the connection instead of the kernel going on trying
            # to deliver the send buffer to a peer that does not read it.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.transport.abort()
