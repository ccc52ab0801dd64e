"""Google's official google-genai SDK holds conversations with the simulated Live server.

Over TLS on loopback (the SDK insists on ``wss://`` for API-key clients), certificates from
``trustme``. Pacing runs at ``SPEED`` times real time; nothing sleeps to synchronise.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import pytest
import trustme
from google import genai
from google.genai import errors, types
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, ConnectionClosedError, InvalidStatus

from gateway.rig.simulator import Scenario, SimulatorServer, scenario_from_dict, speech

SPEED = 6.0
MODEL = "gemini-2.5-flash-native-audio-preview-12-2025"
RATE = 8000
CHUNK = 2 * RATE * 40 // 1000  # 40 ms of 8 kHz PCM16


@dataclass
class Tls:
    server: ssl.SSLContext
    client: ssl.SSLContext


@pytest.fixture(scope="module")
def tls() -> Tls:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert.configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return Tls(server, client)


def client_for(sim: SimulatorServer, tls: Tls) -> genai.Client:
    return genai.Client(api_key="test-api-key", http_options=types.HttpOptions(
        base_url=sim.base_url, api_version="v1beta", async_client_args={"ssl": tls.client}))


CONFIG = types.LiveConnectConfig(
    response_modalities=[types.Modality.AUDIO],
    input_audio_transcription=types.AudioTranscriptionConfig(),
    output_audio_transcription=types.AudioTranscriptionConfig(),
)


def chunks(pcm: bytes) -> Iterator[bytes]:
    for i in range(0, len(pcm), CHUNK):
        yield pcm[i:i + CHUNK]


async def say(session: genai.live.AsyncSession, name: str | None,
              silence_ms: int = 700) -> int:
    """Stream a caller line (8 kHz PCM16) then silence, faster than real time."""
    pcm = (speech.caller_pcm16(name) if name else b"") + speech.silence_pcm16(silence_ms)
    sent = 0
    for piece in chunks(pcm):
        await session.send_realtime_input(
            audio=types.Blob(data=piece, mime_type=f"audio/pcm;rate={RATE}"))
        sent += 1
    return sent


@dataclass
class Turn:
    audio: bytearray = field(default_factory=bytearray)
    audio_messages: int = 0
    input_text: str = ""
    output_text: str = ""
    interrupted: bool = False
    generation_complete: bool = False
    turn_complete: bool = False


async def collect(messages: AsyncIterator[types.LiveServerMessage]) -> Turn:
    turn = Turn()
    async for msg in messages:
        if msg.data:
            turn.audio += msg.data
            turn.audio_messages += 1
        sc = msg.server_content
        if sc is None:
            continue
        if sc.input_transcription and sc.input_transcription.text:
            turn.input_text += sc.input_transcription.text
        if sc.output_transcription and sc.output_transcription.text:
            turn.output_text += sc.output_transcription.text
        turn.interrupted |= bool(sc.interrupted)
        turn.generation_complete |= bool(sc.generation_complete)
        turn.turn_complete |= bool(sc.turn_complete)
    return turn


BOOKING = scenario_from_dict({"speed": SPEED, "response_delay_ms": 200, "turns": [
    {"caller_text": "Hi, I'd like to book a table for two tomorrow evening.",
     "reply": "agent_greeting"},
    {"caller_text": "Seven thirty would be great.", "reply": "agent_options"},
    {"caller_text": "Actually, wait, can we make it eight?", "reply": "agent_moved"},
]})


async def test_one_full_turn(tls: Tls) -> None:
    async with SimulatorServer(BOOKING, ssl_context=tls.server) as sim:
        client = client_for(sim, tls)
        async with client.aio.live.connect(model=MODEL, config=CONFIG) as session:
            sent = await say(session, "caller_book_table")
            turn = await collect(session.receive())
        await sim.wait_until(lambda: sim.sessions[0].closed is not None)
    rec = sim.sessions[0]
    assert rec.path.endswith("v1beta.GenerativeService.BidiGenerateContent")
    assert rec.api_key_seen and rec.model == f"models/{MODEL}"
    assert rec.audio_chunks == sent and rec.audio_rates == {RATE}
    assert rec.audio_bytes == len(speech.caller_pcm16("caller_book_table")) + 2 * RATE * 7 // 10
    reply = speech.fixture("agent_greeting")
    assert len(turn.audio) / 2 / 24000 == pytest.approx(reply.duration_s, abs=0.001)
    assert bytes(turn.audio) == speech.load_pcm_wav(reply.path)[0]
    assert turn.audio_messages == rec.reply_chunks[0] > 10
    assert turn.input_text == "Hi, I'd like to book a table for two tomorrow evening."
    assert turn.output_text == reply.text
    assert turn.generation_complete and turn.turn_complete and not turn.interrupted
    assert rec.turns_completed == 1 and rec.interruptions == 0
    assert rec.closed is not None and rec.closed[0] == 1000


async def test_barge_in(tls: Tls) -> None:
    async with SimulatorServer(BOOKING, ssl_context=tls.server) as sim:
        client = client_for(sim, tls)
        async with client.aio.live.connect(model=MODEL, config=CONFIG) as session:
            await say(session, "caller_book_table")
            assert (await collect(session.receive())).turn_complete
            await say(session, "caller_seven_thirty")
            # Barge in while the long reply streams: speak on the first audio chunk.
            long_turn = Turn()
            barged = False
            async for msg in session.receive():
                sc = msg.server_content
                if msg.data:
                    long_turn.audio += msg.data
                    if not barged:
                        barged = True
                        barge = speech.caller_pcm16("caller_barge_in")
                        for piece in chunks(barge):
                            await session.send_realtime_input(
                                audio=types.Blob(data=piece, mime_type=f"audio/pcm;rate={RATE}"))
                if sc is not None:
                    assert not sc.generation_complete
                    if sc.interrupted:
                        long_turn.interrupted = True
                        assert not long_turn.turn_complete
                    long_turn.turn_complete |= bool(sc.turn_complete)
            assert long_turn.interrupted and long_turn.turn_complete
            full = speech.load_pcm_wav(speech.fixture("agent_options").path)[0]
            assert 0 < len(long_turn.audio) < len(full) // 2
            # The barge-in speech is the next turn: it ends with the silence after it.
            await say(session, None)
            moved = await collect(session.receive())
        await sim.wait_until(lambda: sim.sessions[0].closed is not None)
    rec = sim.sessions[0]
    assert moved.input_text == "Actually, wait, can we make it eight?"
    assert moved.output_text == speech.fixture("agent_moved").text
    assert moved.generation_complete and not moved.interrupted
    assert rec.interruptions == 1 and len(rec.interrupted_at) == 1
    assert rec.turns_completed == 3 and len(rec.reply_chunks) == 3
    assert rec.sent.count("interrupted") == 1


async def test_server_close_1011_surfaces_as_api_error(tls: Tls) -> None:
    scenario = scenario_from_dict({"speed": SPEED, "injections": [
        {"after_turn": 1, "close": {"code": 1011, "reason": "Internal error occurred."}}]})
    async with SimulatorServer(scenario, ssl_context=tls.server) as sim:
        client = client_for(sim, tls)
        async with client.aio.live.connect(model=MODEL, config=CONFIG) as session:
            await session.send_realtime_input(text="Hello there")
            first = await collect(session.receive())
            assert first.turn_complete and first.audio
            with pytest.raises(errors.APIError) as info:
                await collect(session.receive())
    assert info.value.code == 1011
    assert "Internal error occurred." in str(info.value)
    assert sim.sessions[0].closed == (1011, "Internal error occurred.")


async def test_bad_key_and_unknown_model_fail_at_connect(tls: Tls) -> None:
    scenario = Scenario(speed=SPEED, required_key="the-right-key",
                        known_models=("gemini-live-x",))
    async with SimulatorServer(scenario, ssl_context=tls.server) as sim:
        client = client_for(sim, tls)
        with pytest.raises(errors.APIError) as info:
            async with client.aio.live.connect(model="gemini-live-x", config=CONFIG):
                pass
        assert info.value.code == 1007
        assert "API key not valid" in str(info.value)
        good = genai.Client(api_key="the-right-key", http_options=types.HttpOptions(
            base_url=sim.base_url, api_version="v1beta",
            async_client_args={"ssl": tls.client}))
        with pytest.raises(errors.APIError) as info:
            async with good.aio.live.connect(model="gemini-other", config=CONFIG):
                pass
        assert info.value.code == 1008
        assert "models/gemini-other is not found for API version v1beta" in str(info.value)
        async with good.aio.live.connect(model="gemini-live-x", config=CONFIG) as session:
            await session.send_client_content(
                turns=types.Content(role="user", parts=[types.Part(text="hi")]))
            assert (await collect(session.receive())).turn_complete


# -- the same server through a raw websockets client (no TLS) ----------------------------

RAW_SETUP = '{"setup": {"model": "models/m", "sessionResumption": {}}}'


async def drain(ws: ClientConnection) -> None:
    while True:
        await ws.recv()


async def test_raw_client_routes_frames_drop_and_resume() -> None:
    scenario = scenario_from_dict({
        "speed": 50, "required_key": "k-123456",
        "turns": [{"reply": "agent_goodbye"}, {"reply": "agent_moved"}],
        "injections": [{"during_turn": 2, "offset_ms": 400, "drop": True}]})
    async with SimulatorServer(scenario) as sim:
        assert sim.url.startswith("ws://127.0.0.1:")
        base = sim.url.rsplit("/", 1)[0]
        with pytest.raises(InvalidStatus) as status:
            async with connect(f"{base}/google.ai.generativelanguage.v1beta.Nope"):
                pass
        assert status.value.response.status_code == 404

        vertex = (f"{base}/google.cloud.aiplatform.v1beta1.LlmBidiService/BidiGenerateContent"
                  "?key=k-123456")
        async with connect(vertex) as ws:
            await ws.send(RAW_SETUP)
            assert await ws.recv() == b'{"setupComplete":{}}'  # a binary frame
            await ws.send(json.dumps({"realtimeInput": {"text": "hello"}}))
            while "turnComplete" not in json.loads(await ws.recv()).get("serverContent", {}):
                pass
            update = json.loads(await ws.recv())["sessionResumptionUpdate"]
            assert update["resumable"] is True
            await ws.send(json.dumps({"realtimeInput": {"text": "again"}}))
            with pytest.raises(ConnectionClosedError) as closed:
                await drain(ws)
            assert closed.value.rcvd is None  # no close frame: dropped
        await sim.wait_until(lambda: sim.sessions[0].closed is not None)
        first = sim.sessions[0]
        assert first.path.endswith("LlmBidiService/BidiGenerateContent")
        assert "key" not in first.path and first.api_key_seen
        assert first.closed == (1006, "dropped by scenario")
        # One handle right after setup, one after the turn.
        assert first.texts == ["hello", "again"] and len(first.handles) == 2
        assert first.handles[-1] == update["newHandle"]

        # Resuming continues at turn 2, whose drop has already happened once.
        async with connect(sim.url, additional_headers={"x-goog-api-key": "k-123456"}) as ws:
            await ws.send(RAW_SETUP.replace("{}", json.dumps({"handle": update["newHandle"]})))
            await ws.recv()
            await ws.send(json.dumps({"realtimeInput": {"text": "again"}}))
            while "turnComplete" not in json.loads(await ws.recv()).get("serverContent", {}):
                pass
        await sim.wait_until(lambda: len(sim.sessions) == 2 and sim.sessions[1].closed is not None)
        second = sim.sessions[1]
        assert second.resumed and second.turns_completed == 1
        assert second.reply_chunks == [-(-len(speech.load_pcm_wav(
            speech.fixture("agent_moved").path)[0]) // 3840)]

        async with connect(sim.url, additional_headers={"x-goog-api-key": "k-123456"}) as ws:
            await ws.send(RAW_SETUP.replace("{}", '{"handle": "unknown"}'))
            with pytest.raises(ConnectionClosedError) as closed:
                await ws.recv()
            assert closed.value.rcvd is not None
            assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (
                1008, "BidiGenerateContent session not found")


async def test_server_exit_closes_open_sessions() -> None:
    sim = SimulatorServer()
    async with sim:
        ws = await connect(sim.url)
        await ws.send(RAW_SETUP)
        await ws.recv()  # setupComplete
        await ws.recv()  # the first resumption handle
    with pytest.raises(ConnectionClosed):
        await ws.recv()
    assert sim.sessions[0].closed is not None
