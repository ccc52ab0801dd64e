"""A client's WebSocket text frame, masked, built in one step (RFC 6455, section 5.2). Sans-I/O.

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
MASKED: Final = 0x80
POOL_BYTES: Final = 4096
_LEN16: Final = struct.Struct("!BBH")
_LEN64: Final = struct.Struct("!BBQ")


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
        size = len(payload)
        if size < 126:
            head = bytes((FIN_TEXT, MASKED | size))
        elif size < 65536:
            head = _LEN16.pack(FIN_TEXT, MASKED | 126, size)
        else:
            head = _LEN64.pack(FIN_TEXT, MASKED | 127, size)
        return head + mask + apply_mask(payload, mask)
