"""Fuzzing the Telnyx stream core: whatever a peer sends, out come neutral events or a
:class:`CarrierProtocolError`, never another exception.

Inputs are arbitrary text and bytes, and, closer to what a buggy or hostile peer sends, the
documented messages mutated: values replaced by JSON of any type, fields removed, fields
added, several times over. The invariants the bridge relies on are checked too: a rejected
frame leaves the stream exactly as it was (its state, its ids, its reorder window); every
event is well formed (audio of whole samples, within bounds); fields Telnyx may add change
nothing; and however Telnyx reorders frames within the window, audio comes out in sequence
order, each frame once.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from gateway.carriers.core import (
    Audio,
    CarrierEvent,
    CarrierProtocolError,
    Dtmf,
    Played,
    Started,
    Stopped,
    StreamState,
)
from gateway.carriers.telnyx import REORDER_WINDOW, TelnyxStream
from tests.fuzzing import Path, mutated, with_unknown_fields
from tests.test_carrier_telnyx import (
    connected,
    dtmf,
    error,
    mark,
    media,
    seq_payload,
    start,
    stop,
)

MAX_PAYLOAD = 4000
CORPUS: list[dict[str, Any]] = [json.loads(f) for f in (
    connected(), start(), media("2"), dtmf("3", "7"), mark("4"), stop("5"), error())]
BY_EVENT = {m["event"]: m for m in CORPUS}

states = st.sampled_from(["new", "connected", "started", "holding", "stopped"])
# Well-formed media frames whose audio is any bytes (odd lengths, too long, empty).
any_media = st.builds(lambda seq, data: media(str(seq), data), st.integers(0, 12),
                      st.binary(max_size=MAX_PAYLOAD + 8))

def stream_in(state: str) -> TelnyxStream:
    s = TelnyxStream(max_payload=MAX_PAYLOAD)
    if state != "new":
        s.receive(connected())
    if state in ("started", "holding", "stopped"):
        s.receive(start())
    if state == "holding":
        s.receive(media("4", seq_payload(4)))  # 2 and 3 are due first
    if state == "stopped":
        s.receive(stop("9"))
    return s


def snapshot(s: TelnyxStream) -> tuple[Any, ...]:
    return (s.state, s.stream_id, s.call_id, s.control_id, s.inbound, s._next,
            dict(s._held), s._stop_seq, s.gaps, s.dropped)


def receive_checked(s: TelnyxStream, frame: str | bytes) -> list[CarrierEvent] | None:
    """Events, or None for a rejected frame; asserts the invariants either way."""
    before = snapshot(s)
    try:
        events = list(s.receive(frame))
    except CarrierProtocolError:
        assert snapshot(s) == before  # a rejected frame changes nothing
        return None
    for event in events:
        assert isinstance(event, Audio | Started | Dtmf | Played | Stopped)
        if isinstance(event, Audio):
            assert s.inbound is not None
            assert 0 < len(event.payload) <= MAX_PAYLOAD
            assert len(event.payload) % s.inbound.codec.sample_bytes == 0
        if isinstance(event, Started):
            assert s.state is StreamState.STARTED and s.call_id == event.call_id
    assert len(s._held) <= s.window
    return events


@given(states, st.binary(max_size=300) | st.text(max_size=300) | any_media)
def test_arbitrary_frames_in_any_state(state: str, frame: bytes | str) -> None:
    receive_checked(stream_in(state), frame)


@given(states, mutated(CORPUS))
def test_mutated_messages_in_any_state(state: str, msg: Any) -> None:
    receive_checked(stream_in(state), json.dumps(msg))


@given(st.lists(mutated(CORPUS).map(json.dumps) | any_media | st.sampled_from(
    [json.dumps(m) for m in CORPUS]), max_size=12))
def test_sequences_follow_the_state_machine(frames: list[str]) -> None:
    s = TelnyxStream(max_payload=MAX_PAYLOAD)
    seen_stop = False
    for frame in frames:
        events = receive_checked(s, frame)
        if events is not None and seen_stop:
            assert events == []  # nothing after a stop but dropped late frames
        seen_stop = seen_stop or s.state is StreamState.STOPPED


def _free_form(path: Path) -> bool:
    # Custom parameters are the answer's own; extra keys there are data, not unknown fields.
    return "custom_parameters" in path


@given(st.sampled_from(["start", "media", "dtmf", "mark", "stop"]), st.data())
def test_fields_telnyx_may_add_change_nothing(event: str, data: st.DataObject) -> None:
    msg = BY_EVENT[event]
    extended = data.draw(with_unknown_fields(msg, _free_form))
    state = "connected" if event == "start" else "started"
    plain, extra = stream_in(state), stream_in(state)
    assert receive_checked(plain, json.dumps(msg)) == \
        receive_checked(extra, json.dumps(extended))
    assert snapshot(plain) == snapshot(extra)


@st.composite
def reordered(draw: st.DrawFn) -> list[int]:
    """Sequence numbers 2..n as Telnyx might deliver them: each within the window of its
    place, with some sent twice."""
    n = draw(st.integers(2, 40))
    keys = [i + draw(st.integers(0, REORDER_WINDOW - 1)) for i in range(n)]
    order = [seq for _, seq in sorted(zip(keys, range(2, n + 2), strict=True))]
    dupes = draw(st.lists(st.sampled_from(order), max_size=4))
    for seq in dupes:
        order.insert(draw(st.integers(order.index(seq) + 1, len(order))), seq)
    return order


@given(reordered())
def test_reordered_audio_comes_out_in_order_each_frame_once(order: list[int]) -> None:
    s = stream_in("started")
    out: list[bytes] = []
    for seq in order:
        events = receive_checked(s, media(str(seq), seq_payload(seq)))
        assert events is not None
        out += [e.payload for e in events if isinstance(e, Audio)]
    last = max(order)
    events = receive_checked(s, stop(str(last + 1)))
    assert events is not None
    out += [e.payload for e in events if isinstance(e, Audio)]
    assert out == [seq_payload(n) for n in range(2, last + 1)]
    assert s.gaps == 0


@given(st.lists(st.integers(2, 60), max_size=40))
def test_any_arrival_order_gives_increasing_audio(order: list[int]) -> None:
    # However wild the order (frames lost, far ahead, repeated): never out of order, never
    # twice, and never more held than the window.
    s = stream_in("started")
    out: list[int] = []
    for seq in order:
        events = receive_checked(s, media(str(seq), seq_payload(seq)))
        assert events is not None
        out += [int.from_bytes(e.payload[:2], "big") for e in events if isinstance(e, Audio)]
    assert out == sorted(set(out))
