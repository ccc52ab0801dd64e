"""The phone's connection to a gateway: a WebSocket for most carriers, plain TCP for Asterisk
AudioSocket. Both carry whole messages (a WebSocket frame; an AudioSocket message, cut from
the byte stream by the gateway's own :class:`gateway.carriers.audiosocket.FrameReader`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Final, Protocol
from urllib.parse import urlsplit

import aiohttp

from gateway.carriers.audiosocket import FrameReader

TCP_SCHEME: Final = "tcp"
_READ: Final = 64 * 1024


class Link(Protocol):
    def messages(self) -> AsyncIterator[str | bytes]:
        """What the gateway sends, until the connection ends."""
    async def send(self, message: str | bytes) -> None: ...
    async def close(self) -> None: ...
    @property
    def closed(self) -> bool: ...
    @property
    def close_code(self) -> int | None: ...


class WsLink:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    async def messages(self) -> AsyncIterator[str | bytes]:
        async for msg in self.ws:
            if msg.type is not aiohttp.WSMsgType.TEXT and msg.type is not aiohttp.WSMsgType.BINARY:
                break
            yield msg.data

    async def send(self, message: str | bytes) -> None:
        if isinstance(message, str):
            await self.ws.send_str(message)
        else:
            await self.ws.send_bytes(message)

    async def close(self) -> None:
        await self.ws.close()

    @property
    def closed(self) -> bool:
        return self.ws.closed

    @property
    def close_code(self) -> int | None:
        return self.ws.close_code


class TcpLink:
    """An AudioSocket connection, as Asterisk opens one."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self._frames = FrameReader()
        self._closed = False

    async def messages(self) -> AsyncIterator[str | bytes]:
        while True:
            try:
                data = await self.reader.read(_READ)
            except ConnectionError:
                data = b""
            if not data:
                self._closed = True
                return
            for message in self._frames.feed(data):
                yield message

    async def send(self, message: str | bytes) -> None:
        self.writer.write(message.encode() if isinstance(message, str) else message)
        await self.writer.drain()

    async def close(self) -> None:
        self._closed = True
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()

    @property
    def closed(self) -> bool:
        return self._closed or self.writer.transport.is_closing()

    @property
    def close_code(self) -> int | None:
        return None  # TCP has none


def is_tcp(url: str) -> bool:
    return urlsplit(url).scheme == TCP_SCHEME


@contextlib.asynccontextmanager
async def connect(session: aiohttp.ClientSession, url: str, *,
                  headers: Mapping[str, str], protocols: tuple[str, ...]
                  ) -> AsyncIterator[Link]:
    """``ws(s)://`` opens a WebSocket; ``tcp://HOST:PORT`` an AudioSocket connection."""
    if is_tcp(url):
        parts = urlsplit(url)
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        link = TcpLink(reader, writer)
        try:
            yield link
        finally:
            await link.close()
        return
    async with session.ws_connect(url, headers=dict(headers), protocols=protocols,
                                  max_msg_size=4 * 1024 * 1024) as ws:
        yield WsLink(ws)
