"""The caller-bound queue: bounded audio, control messages never dropped, barge-in flush."""

from gateway.outbound import Kind, OutboundQueue, Queued


def _media(n: int) -> Queued:
    return Queued(Kind.MEDIA, f"m{n}", 0.0)


async def test_media_is_bounded_and_control_is_not() -> None:
    q = OutboundQueue(max_media=2)
    assert q.put(_media(1)) and q.put(_media(2))
    assert not q.put(_media(3))
    assert q.dropped_full == 1
    assert q.put(Queued(Kind.MARK, "mark", 0.0))
    assert [(await q.get()).wire for _ in range(3)] == ["m1", "m2", "mark"]


async def test_drop_audio_leaves_only_clears_in_order() -> None:
    q = OutboundQueue(max_media=10)
    q.put(_media(1))
    q.put(Queued(Kind.MARK, "mark", 0.0))
    q.put(Queued(Kind.CLEAR, "clear-1", 0.0))
    q.put(_media(2))
    assert q.drop_audio() == 2
    q.put(Queued(Kind.CLEAR, "clear-2", 0.0))
    q.put(_media(3))
    assert [(await q.get()).wire for _ in range(3)] == ["clear-1", "clear-2", "m3"]
    assert len(q) == 0
    assert q.dropped_barge_in == 2
    # Room is given back: the bound counts media still queued, not media ever queued.
    assert all(q.put(_media(i)) for i in range(10))
