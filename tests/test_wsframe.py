"""Our masked text frames, read back by websockets' own frame parser."""

from __future__ import annotations

import itertools

import pytest
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from gateway.wsframe import POOL_BYTES, MaskedTextFramer, server_frame


def _parse(data: bytes, *, mask: bool = True) -> Frame:
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    # mask=True as a server reads a client's frame; False as a client reads a server's.
    parser = Frame.parse(reader.read_exact, mask=mask)
    try:
        next(parser)
    except StopIteration as done:
        frame: Frame = done.value
        return frame
    raise AssertionError("the frame was incomplete")


@pytest.mark.parametrize("size", [0, 1, 125, 126, 900, 65535, 65536, 200_000])
def test_frames_parse_back_to_the_payload_at_every_length_encoding(size: int) -> None:
    payload = bytes(itertools.islice(itertools.cycle(b"0123456789abcdef"), size))
    frame = _parse(MaskedTextFramer().frame(payload))
    assert (frame.opcode, frame.fin, frame.data) == (Opcode.TEXT, True, payload)
    frame = _parse(server_frame(payload.decode()), mask=False)
    assert (frame.opcode, frame.fin, frame.data) == (Opcode.TEXT, True, payload)
    frame = _parse(server_frame(payload), mask=False)
    assert (frame.opcode, frame.fin, frame.data) == (Opcode.BINARY, True, payload)


def test_each_frame_has_its_own_mask_and_the_pool_refills() -> None:
    draws: list[int] = []

    def entropy(n: int) -> bytes:
        draws.append(n)
        return bytes((len(draws) * 7 + i) % 251 for i in range(n))

    framer = MaskedTextFramer(entropy)
    frames = [framer.frame(b"hello") for _ in range(POOL_BYTES // 4 + 1)]
    masks = [f[2:6] for f in frames]
    assert len(set(masks[: POOL_BYTES // 4])) > 1
    assert draws == [POOL_BYTES, POOL_BYTES]  # one draw per 1,024 frames
    assert all(_parse(f).data == b"hello" for f in frames)
