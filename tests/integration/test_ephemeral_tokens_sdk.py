"""Ephemeral tokens, with Google's official SDK as the oracle: it mints a token from the
simulated Live server (``client.aio.auth_tokens.create``) and holds a turn with it on
``BidiGenerateContentConstrained``; expired, used-up and forged tokens are refused, and the
fields a token locks stay locked. Loopback TLS (``trustme``); the tokens' clock is moved by
the test, never waited for.
"""

from __future__ import annotations

import datetime as dt
import json
import ssl

import pytest
import trustme
from google import genai
from google.genai import errors, types
from websockets.asyncio.client import connect

from gateway.rig.simulator import SimulatorServer, scenario_from_dict
from gateway.rig.simulator.auth_tokens import Refusal
from tests.integration.test_simulator_sdk import MODEL, Tls, collect, say

KEY = "sim-api-key-for-tokens"
SCENARIO = scenario_from_dict({"speed": 6.0, "response_delay_ms": 200,
                               "required_key": KEY})
CONSTRAINED = ("/ws/google.ai.generativelanguage.v1alpha.GenerativeService"
               ".BidiGenerateContentConstrained")


@pytest.fixture(scope="module")
def tls() -> Tls:
    ca = trustme.CA()
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1").configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return Tls(server, client)


class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime.now(dt.UTC).timestamp()

    def __call__(self) -> float:
        return self.now


# The SDK marks tokens experimental, and its REST client subclasses aiohttp's session.
pytestmark = [pytest.mark.filterwarnings("ignore::google.genai.errors.ExperimentalWarning"),
              pytest.mark.filterwarnings("ignore:Inheritance class AiohttpClientSession"
                                         ":DeprecationWarning")]


def minting_client(sim: SimulatorServer, tls: Tls, key: str = KEY) -> genai.Client:
    return genai.Client(api_key=key, http_options=types.HttpOptions(
        base_url=sim.rest_base_url, api_version="v1alpha",
        async_client_args={"ssl": tls.client}))


def token_client(sim: SimulatorServer, tls: Tls, token: str) -> genai.Client:
    return genai.Client(api_key=token, http_options=types.HttpOptions(
        base_url=sim.base_url, api_version="v1alpha", async_client_args={"ssl": tls.client}))


def at(clock: Clock, seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(clock.now + seconds, dt.UTC)


LOCKED = types.LiveConnectConstraints(model=MODEL, config=types.LiveConnectConfig(
    response_modalities=[types.Modality.AUDIO],
    system_instruction="You are the bakery's order line.",
    speech_config=types.SpeechConfig(voice_config=types.VoiceConfig(
        prebuilt_voice_config=types.PrebuiltVoiceConfig(voice_name="Puck"))),
    input_audio_transcription=types.AudioTranscriptionConfig(),
))


async def mint(sim: SimulatorServer, tls: Tls, clock: Clock, **config: object) -> str:
    settings: dict[str, object] = {"uses": 1, "expire_time": at(clock, 1800),
                                   "new_session_expire_time": at(clock, 60),
                                   "live_connect_constraints": LOCKED}
    settings.update(config)
    token = await minting_client(sim, tls).aio.auth_tokens.create(
        config=types.CreateAuthTokenConfig(**settings))  # type: ignore[arg-type]
    name = token.name
    assert isinstance(name, str) and name.startswith("auth_tokens/")
    return name


async def refused(sim: SimulatorServer, tls: Tls, token: str) -> errors.APIError:
    with pytest.raises(errors.APIError) as caught:
        async with token_client(sim, tls, token).aio.live.connect(
                model=MODEL, config=types.LiveConnectConfig(
                    response_modalities=[types.Modality.AUDIO])) as session:
            await collect(session.receive())
    return caught.value


async def test_sdk_mints_a_token_and_holds_a_turn_with_it(tls: Tls) -> None:
    clock = Clock()
    async with SimulatorServer(SCENARIO, ssl_context=tls.server, token_clock=clock) as sim:
        token = await mint(sim, tls, clock)
        # The client asks for another voice and no instructions: the token's lock wins.
        config = types.LiveConnectConfig(
            response_modalities=[types.Modality.AUDIO], system_instruction="Be a pirate.",
            speech_config=types.SpeechConfig(voice_config=types.VoiceConfig(
                prebuilt_voice_config=types.PrebuiltVoiceConfig(voice_name="Kore"))),
            output_audio_transcription=types.AudioTranscriptionConfig())
        async with token_client(sim, tls, token).aio.live.connect(
                model="gemini-some-other-model", config=config) as session:
            await say(session, "caller_book_table")
            turn = await collect(session.receive())
        await sim.wait_until(lambda: sim.sessions[0].closed is not None)
    assert turn.turn_complete and len(turn.audio) > 24000  # over half a second of reply
    assert turn.input_text  # the token turned input transcription on
    rec = sim.sessions[0]
    assert rec.path == CONSTRAINED
    assert rec.model == f"models/{MODEL}"
    setup = json.dumps(rec.setup)
    assert "Puck" in setup and "bakery" in setup
    assert "Kore" not in setup and "pirate" not in setup
    # No field mask: the whole setup is locked, so a field the token left out stays out.
    assert "outputAudioTranscription" not in setup and "output_audio_transcription" not in setup
    sent = sim.auth_tokens.requests[0]
    assert sent["uses"] == 1 and "fieldMask" not in sent  # the SDK's "lock everything"


async def test_a_field_mask_locks_only_the_fields_it_names(tls: Tls) -> None:
    clock = Clock()
    async with SimulatorServer(SCENARIO, ssl_context=tls.server, token_clock=clock) as sim:
        token = await mint(sim, tls, clock, lock_additional_fields=["temperature"])
        url = f"wss://127.0.0.1:{sim.port}{CONSTRAINED}"
        async with connect(url, ssl=tls.client,
                           additional_headers={"Authorization": f"Token {token}"}) as ws:
            await ws.send(json.dumps({"setup": {
                "model": "models/other", "output_audio_transcription": {},
                "generation_config": {"temperature": 1.5, "speech_config": {
                    "voice_config": {"prebuilt_voice_config": {"voice_name": "Kore"}}}},
                "system_instruction": {"parts": [{"text": "Be a pirate."}]}}}))
            assert "setupComplete" in json.loads(await ws.recv())
    mask = sim.auth_tokens.requests[0]["fieldMask"]
    assert "generationConfig.temperature" in mask and "systemInstruction.parts" in mask
    rec = sim.sessions[0]
    assert rec.setup is not None and rec.model == f"models/{MODEL}"
    gen = rec.setup["generationConfig"]
    assert "temperature" not in gen  # locked, and the token set none: the client's goes
    assert "Puck" in json.dumps(gen) and "Kore" not in json.dumps(gen)
    assert "bakery" in json.dumps(rec.setup["systemInstruction"])
    assert "output_audio_transcription" in rec.setup  # not locked: the client's stands


async def test_expired_used_up_and_forged_tokens_are_refused(tls: Tls) -> None:
    clock = Clock()
    async with SimulatorServer(SCENARIO, ssl_context=tls.server, token_clock=clock) as sim:
        once = await mint(sim, tls, clock)
        async with token_client(sim, tls, once).aio.live.connect(model=MODEL) as session:
            await say(session, "caller_book_table")
            await collect(session.receive())
        used = await refused(sim, tls, once)
        assert (used.code, used.details) == (1007, Refusal.USED_UP.value)

        late = await mint(sim, tls, clock, uses=0)
        short = await mint(sim, tls, clock, expire_time=at(clock, 120))
        clock.now += 90  # past every newSessionExpireTime, before the second expireTime
        window = await refused(sim, tls, late)
        assert (window.code, window.details) == (1007, Refusal.NO_NEW_SESSIONS.value)
        clock.now += 60
        expired = await refused(sim, tls, short)
        assert (expired.code, expired.details) == (1007, Refusal.EXPIRED.value)

        forged = await refused(sim, tls, "auth_tokens/" + "A" * 43)
        assert (forged.code, forged.details) == (1007, Refusal.MALFORMED.value)
        # The API key itself does not open a constrained session either.
        url = f"wss://127.0.0.1:{sim.port}{CONSTRAINED}"
        async with connect(url, ssl=tls.client, additional_headers={"x-goog-api-key": KEY}
                           ) as ws:
            await ws.send(json.dumps({"setup": {"model": f"models/{MODEL}"}}))
            await ws.wait_closed()
        assert (ws.close_code, ws.close_reason) == (1007, Refusal.MALFORMED.value)


async def test_wrong_key_cannot_mint_and_limits_hold(tls: Tls) -> None:
    clock = Clock()
    async with SimulatorServer(SCENARIO, ssl_context=tls.server, token_clock=clock) as sim:
        with pytest.raises(errors.ClientError) as bad_key:
            await minting_client(sim, tls, key="not-the-key").aio.auth_tokens.create(
                config={"uses": 1})
        assert bad_key.value.code == 400
        with pytest.raises(errors.ClientError) as too_far:
            await minting_client(sim, tls).aio.auth_tokens.create(
                config={"expire_time": at(clock, 21 * 3600)})
        assert too_far.value.code == 400
        assert len(sim.auth_tokens) == 0


async def test_a_token_in_the_query_string_opens_a_session_as_a_browser_would(
        tls: Tls) -> None:
    clock = Clock()
    async with SimulatorServer(SCENARIO, ssl_context=tls.server, token_clock=clock) as sim:
        token = await mint(sim, tls, clock)
        url = f"wss://127.0.0.1:{sim.port}{CONSTRAINED}?access_token={token}"
        async with connect(url, ssl=tls.client) as ws:
            await ws.send(json.dumps({"setup": {"model": "models/x"}}))
            first = json.loads(await ws.recv())
        assert "setupComplete" in first
    assert sim.sessions[0].model == f"models/{MODEL}"
