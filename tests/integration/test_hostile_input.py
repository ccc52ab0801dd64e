"""Hostile and broken media-stream input, for every carrier, each beside a healthy call of the
same carrier on the same gateway.

One row of the README's "Hostile input" table per test, for each carrier whose wire protocol
the row applies to (:mod:`tests.integration.hostile_wire` builds each carrier's frames, valid
and broken). Every test runs one gateway in front of two simulated Live servers (the healthy
line's and the hostile line's, so each side's audio is counted apart) and places a healthy call
with :func:`gateway.rig.phone.place_call`; once that call is hearing its reply, a hand-made
client (:class:`RawCaller`) breaks the protocol on a second stream. The test then checks both
the defined outcome for the hostile stream (ignored and counted, or closed with the stated code
and reason, with its warning log line) and that the healthy call did not notice: every frame
it sent reached its Live session, its reply was heard in full, no ``clear`` it did not cause.

The connection-level rows (an abrupt close, a flood, a caller that stops reading) are in
``test_hostile_connection.py``. Calls run time-compressed (SPEED x real time) on the phone and
the healthy simulator. Synchronisation is by events (the simulators' ``wait_until``, socket
reads), never by sleeping.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import pytest
from _pytest.mark import ParameterSet

from gateway import bridge
from gateway.carriers.core import Carrier
from gateway.carriers.telnyx import REORDER_WINDOW
from gateway.server import MAX_FRAME_BYTES
from tests.integration.hostile_bench import (
    HUNG_UP,
    Bench,
    beside_a_healthy_call,
    check_warned,
    close_reason,
    ends_normally,
    tone_wav,
)
from tests.integration.hostile_wire import TelnyxWire, Wire
from tests.integration.hostile_wires import WIRES


def carriers(*which: Carrier) -> list[ParameterSet]:
    return [pytest.param(c, id=c.value) for c in which]


ALL = carriers(*WIRES)


def rows(kinds: Callable[[Wire], Iterable[str]]) -> list[ParameterSet]:
    """(carrier, kind) for every kind each carrier has."""
    return [pytest.param(c, kind, id=f"{c.value}-{kind}")
            for c, wire in WIRES.items() for kind in kinds(wire())]


@pytest.fixture(scope="module")
def long_reply(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tone_wav(tmp_path_factory.mktemp("hostile") / "long_reply.wav", 60.0)


# -- ignored and counted -------------------------------------------------------------------


@pytest.mark.parametrize(("carrier", "kind"), rows(lambda w: w.broken()))
async def test_a_broken_frame_is_dropped_counted_and_logged(
        long_reply: Path, carrier: Carrier, kind: str) -> None:
    call_id: list[str] = []

    async def hostile(b: Bench) -> None:
        async with b.caller() as c:
            call_id.append(c.wire.call_id)
            await c.send(*c.wire.opening(), c.wire.broken()[kind])
            await ends_normally(c, b)

    o = await beside_a_healthy_call(long_reply, carrier, hostile)
    # The carrier names its call; the browser's is named by the gateway, unknown till then.
    named = call_id[0] or o.hostile.call_sid
    assert named and o.hostile.call_sid == named
    assert o.hostile.stats.protocol_errors == 1
    assert o.hostile.stats.frames_forwarded == 1  # the valid frame after it
    assert o.hostile.end_reason == "caller hung up"
    check_warned(o, named, 1)


@pytest.mark.parametrize("carrier", ALL)
async def test_media_before_start_is_dropped_counted_and_logged(
        long_reply: Path, carrier: Carrier) -> None:
    async def hostile(b: Bench) -> None:
        async with b.caller() as c:
            await c.send(*c.wire.before_start(), c.wire.media(), c.wire.start())
            await ends_normally(c, b)

    o = await beside_a_healthy_call(long_reply, carrier, hostile)
    assert o.hostile.stats.protocol_errors == 1
    assert o.hostile.stats.frames_in == 1  # only the frame after start reached the bridge
    assert o.hostile.end_reason == "caller hung up"
    check_warned(o, None, 1)  # no call id before start


@pytest.mark.parametrize("carrier", ALL)
async def test_an_unknown_event_is_ignored_and_counted_apart(
        long_reply: Path, carrier: Carrier) -> None:
    names: list[str] = []

    async def hostile(b: Bench) -> None:
        async with b.caller() as c:
            unknown, name = c.wire.unknown_event()
            names.append(name)
            await c.send(*c.wire.opening(), unknown, unknown)
            await ends_normally(c, b)

    o = await beside_a_healthy_call(long_reply, carrier, hostile)
    assert o.hostile.stats.unknown_events == 2
    assert o.hostile.stats.protocol_errors == 0  # a carrier's next event must not end calls
    assert o.hostile.end_reason == "caller hung up"
    [warned] = o.warnings("unknown_event")  # the first, then every 100th
    assert warned["name"] == names[0]
    assert warned["call_sid"] == o.hostile.call_sid
    assert warned["carrier"] == carrier.value


# Telnyx alone numbers its frames and does not promise their order: the gateway puts them back
# in order within a window, drops duplicates and late frames (not errors: a network does
# this), and gives a lost frame up once the window is full rather than wait for it.
async def test_telnyx_frames_out_of_order_duplicated_or_lost_are_put_in_order(
        long_reply: Path) -> None:
    async def hostile(b: Bench) -> None:
        async with b.caller() as c:
            wire = c.wire
            assert isinstance(wire, TelnyxWire)
            await c.send(*wire.opening())  # the start is number 1
            # 3 before 2; 3 again; 1 (the start's number: stale); then 5 never comes.
            await c.send(*[wire.numbered(n) for n in (3, 2, 3, 1, 4)])
            await b.hostile_session(lambda s: s.audio_chunks == 3)
            after_gap = range(6, 6 + REORDER_WINDOW + 1)
            await c.send(*[wire.numbered(n) for n in after_gap])
            await b.hostile_session(lambda s: s.audio_chunks == 3 + len(after_gap))
            assert await c.hang_up() == HUNG_UP[True]

    o = await beside_a_healthy_call(long_reply, Carrier.TELNYX, hostile)
    assert o.hostile.stats.frames_in == 3 + REORDER_WINDOW + 1  # each once
    assert o.hostile.stats.protocol_errors == 0
    assert o.hostile.end_reason == "caller hung up"
    assert not o.warnings("protocol_error")


# -- the stream closed -------------------------------------------------------------------------


@pytest.mark.parametrize("carrier", ALL)
async def test_too_many_protocol_errors_close_the_stream_with_1008(
        long_reply: Path, carrier: Carrier) -> None:
    codes: list[tuple[int, str]] = []

    async def hostile(b: Bench) -> None:
        async with b.caller() as c:
            await c.send(*c.wire.opening(), *["garbage"] * (bridge.MAX_PROTOCOL_ERRORS + 1))
            codes.append(await c.closed())

    o = await beside_a_healthy_call(long_reply, carrier, hostile)
    limit = bridge.MAX_PROTOCOL_ERRORS + 1
    assert codes == [(1008, f"too many protocol errors ({limit})")]
    assert o.hostile.stats.protocol_errors == limit
    assert o.hostile.end_reason == f"too many protocol errors ({limit})"
    check_warned(o, o.hostile.call_sid, limit)
    [rejected] = o.warnings("caller_rejected")
    assert rejected["code"] == 1008
    assert rejected["call_sid"] == o.hostile.call_sid


@pytest.mark.parametrize("carrier", ALL)
async def test_a_second_start_closes_the_stream_with_1008(
        long_reply: Path, carrier: Carrier) -> None:
    codes: list[tuple[int, str]] = []

    async def hostile(b: Bench) -> None:
        async with b.caller() as c:
            await c.send(*c.wire.opening(), c.wire.media())
            await b.hostile_session(lambda s: s.audio_chunks == 1)
            await c.send(c.wire.start())  # Vonage's: a second websocket:connected
            codes.append(await c.closed())

    o = await beside_a_healthy_call(long_reply, carrier, hostile)
    assert codes == [(1008, "second start on one stream")]
    assert o.hostile.stats.protocol_errors == 1
    assert o.hostile.end_reason == "second start on one stream"
    check_warned(o, o.hostile.call_sid, 1)


@pytest.mark.parametrize(("carrier", "fmt"), rows(lambda w: w.bad_formats()))
async def test_a_media_format_the_gateway_does_not_take_closes_with_1003(
        long_reply: Path, carrier: Carrier, fmt: str) -> None:
    codes: list[tuple[int, str]] = []
    reasons: list[str] = []

    async def hostile(b: Bench) -> None:
        async with b.caller() as c:
            refused = c.wire.bad_formats()[fmt]
            reasons.append(refused.reason)
            await c.send(*c.wire.before_start(), refused.frame)
            codes.append(await c.closed())

    o = await beside_a_healthy_call(long_reply, carrier, hostile)
    assert codes == [(1003, close_reason(reasons[0]))]
    assert o.hostile.end_reason == reasons[0]
    assert o.hostile.stats.protocol_errors == 1
    assert o.hostile.agent is None  # no call was set up ...
    assert o.hostile.call_sid is None
    assert not o.hostile.stats.frames_in
    check_warned(o, None, 1)


@pytest.mark.parametrize("carrier", carriers(*(c for c, w in WIRES.items()
                                               if w.breakable_start)))
async def test_a_malformed_start_closes_with_1008(long_reply: Path, carrier: Carrier) -> None:
    codes: list[tuple[int, str]] = []
    reasons: list[str] = []

    async def hostile(b: Bench) -> None:
        async with b.caller() as c:
            refused = c.wire.malformed_start()
            reasons.append(refused.reason)
            await c.send(*c.wire.before_start(), refused.frame)
            codes.append(await c.closed())

    o = await beside_a_healthy_call(long_reply, carrier, hostile)
    assert codes == [(1008, close_reason(reasons[0]))]
    assert o.hostile.end_reason == reasons[0]
    assert o.hostile.stats.protocol_errors == 1
    assert o.hostile.agent is None
    check_warned(o, None, 1)


# Not Vonage: binary frames are its audio and text frames its events, so no frame type is
# foreign to it (a text frame that is not JSON is a broken frame, above).
@pytest.mark.parametrize(("carrier", "payload"), rows(lambda w: w.wrong_types()))
async def test_a_frame_of_a_type_the_carrier_never_sends_closes_with_1003(
        long_reply: Path, carrier: Carrier, payload: str) -> None:
    codes: list[tuple[int, str]] = []

    async def hostile(b: Bench) -> None:
        async with b.caller() as c:
            await c.send(*c.wire.opening(), c.wire.media())
            await b.hostile_session(lambda s: s.audio_chunks == 1)
            await c.send(c.wire.wrong_types()[payload])
            codes.append(await c.closed())

    o = await beside_a_healthy_call(long_reply, carrier, hostile)
    assert codes == [(1003, "binary frames are not accepted")]
    assert o.hostile.end_reason == "binary frames are not accepted"
    assert o.hostile.stats.frames_forwarded == 1
    check_warned(o, o.hostile.call_sid, 1)


@pytest.mark.parametrize("carrier", ALL)
async def test_a_frame_over_the_size_limit_closes_the_stream_with_1009(
        long_reply: Path, carrier: Carrier) -> None:
    codes: list[tuple[int, str]] = []

    async def hostile(b: Bench) -> None:
        async with b.caller() as c:
            await c.send(*c.wire.opening(), c.wire.over_limit(MAX_FRAME_BYTES))
            codes.append(await c.closed())

    o = await beside_a_healthy_call(long_reply, carrier, hostile)
    # aiohttp refuses it from the frame header (nothing of it is buffered) and closes 1009.
    assert codes[0][0] == 1009
    assert o.hostile.end_reason == f"frame larger than {MAX_FRAME_BYTES} bytes"
    assert o.hostile.stats.protocol_errors == 1
    check_warned(o, o.hostile.call_sid, 1)


# Not Vonage or jambonz: they have no stop event (the hang-up is the socket's close, the next
# row). Plivo's documented protocol has none either, but its stream SDK's stop is taken, so the
# row holds.
@pytest.mark.parametrize("carrier", carriers(Carrier.TWILIO, Carrier.SIGNALWIRE, Carrier.TELNYX,
                                              Carrier.PLIVO))
async def test_stop_without_start_ends_the_stream_at_once(
        long_reply: Path, carrier: Carrier) -> None:
    codes: list[tuple[int, str]] = []

    async def hostile(b: Bench) -> None:
        async with b.caller() as c:
            await c.send(*c.wire.before_start(), c.wire.stop())
            codes.append(await c.closed())

    o = await beside_a_healthy_call(long_reply, carrier, hostile)
    assert codes == [(1000, "stop before start")]  # not held until the 10 s start timeout
    assert o.hostile.end_reason == "stop before start"
    assert o.hostile.stats.protocol_errors == 1
    check_warned(o, None, 1)


# Only where a close is the hang-up (Plivo, Vonage, jambonz, Asterisk): elsewhere a close
# without a stop is a dropped connection (test_hostile_connection.py).
@pytest.mark.parametrize("carrier", carriers(Carrier.PLIVO, Carrier.VONAGE, Carrier.JAMBONZ,
                                             Carrier.ASTERISK))
async def test_a_close_before_start_ends_the_stream_at_once(
        long_reply: Path, carrier: Carrier) -> None:
    codes: list[tuple[int, str]] = []

    async def hostile(b: Bench) -> None:
        async with b.caller() as c:
            codes.append(await c.hang_up())

    o = await beside_a_healthy_call(long_reply, carrier, hostile)
    assert codes == [HUNG_UP[False]]
    assert o.hostile.end_reason == "caller hung up"
    assert o.hostile.agent is None
    assert o.hostile.stats.protocol_errors == 0
    assert not o.warnings("protocol_error")
