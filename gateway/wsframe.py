"""WebSocket frames built in one step (RFC 6455, section 5.2). Sans-I/O.

A client's frames are masked (:class:`MaskedTextFramer`); a server's are not
(:func:`server_frame`).

The Live client sends a 20 ms audio message per call every 20 ms. ``websockets`` builds each
frame through a Frame object, a BytesIO and a fresh ``os.urandom(4)`` system call for the
mask; this builds the same bytes with one ``struct`` call and the C masking routine, drawing
masking keys from a pool filled by ``os.urandom`` (still the strong source the RFC asks for,
one system call per 1,024 frames).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from typing import Final

try:
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - the C extension ships in websockets' wheels
    from websockets.utils import apply_mask

FIN_TEXT: Final = 0x81
FIN_BINARY: Final = 0x82
MASKED: Final = 0x80
POOL_BYTES: Final = 4096
_LEN16: Final = struct.Struct("!BBH")
_LEN64: Final = struct.Struct("!BBQ")


def _header(size: int, mask_bit: int, first: int = FIN_TEXT) -> bytes:
    if size < 126:
        return bytes((first, mask_bit | size))
    if size < 65536:
        return _LEN16.pack(first, mask_bit | 126, size)
    return _LEN64.pack(first, mask_bit | 127, size)


def server_frame(message: str | bytes) -> bytes:
    """One whole, unmasked frame, as a server sends it: a text frame for ``str`` (UTF-8),
    a binary one for ``bytes``."""
    if isinstance(message, str):
        payload = message.encode()
        return _header(len(payload), 0) + payload
    return _header(len(message), 0, FIN_BINARY) + message


class MaskedTextFramer:
    """Serialises unfragmented, masked text frames, as a client must send them."""

    def __init__(self, entropy: Callable[[int], bytes] = os.urandom) -> None:
        self._entropy = entropy
        self._pool = b""
        self._at = 0

    def frame(self, payload: bytes) -> bytes:
        """One whole frame carrying ``payload`` (UTF-8 text)."""
        at = self._at
        if at + 4 > len(self._pool):
            self._pool, at = self._entropy(POOL_BYTES), 0
        mask = self._pool[at:at + 4]
        self._at = at + 4
        return _header(len(payload), MASKED) + mask + apply_mask(payload, mask)
