"""``POST /v1/tokens`` end to end: an operator's request mints an ephemeral token through the
simulated Live API, locked to the agent's own setup, and the official SDK (and a raw
WebSocket with ``?access_token=``, as a browser connects) then talks to the model with it.
An unauthorized request is refused before the Live API is asked; the API key never shows.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from aiohttp import web
from google import genai
from google.genai import types
from websockets.asyncio.client import connect

from gateway import live
from gateway.bridge_config import CallServices
from gateway.config import Secret, Settings, custom_endpoint
from gateway.live_token_client import TokenMinter
from gateway.log import configure
from gateway.registry import AgentRegistry, bundled_agents
from gateway.rig.simulator import SimulatorServer
from gateway.server import Gateway, default_agent, running
from tests.console_kit import TOKEN as CONSOLE_TOKEN
from tests.console_kit import console_settings
from tests.integration.test_ephemeral_tokens_sdk import KEY, SCENARIO, tls
from tests.integration.test_simulator_sdk import Tls, collect, say

__all__ = ["tls"]  # the fixture, shared with the SDK tests
OPERATOR = "operator-bearer-token-for-tests"
pytestmark = [pytest.mark.filterwarnings("ignore::google.genai.errors.ExperimentalWarning")]


async def bearer(request: web.Request, state_change: bool) -> None:
    """The test's stand-in for the console's operator check."""
    if request.headers.get("Authorization") != f"Bearer {OPERATOR}":
        raise web.HTTPUnauthorized()


@asynccontextmanager
async def gateway_on(sim: SimulatorServer, tls: Tls) -> AsyncIterator[int]:
    settings = Settings(endpoint=custom_endpoint(sim.url, "gemini-live-test", KEY))
    agents = {a.name: a for a in bundled_agents()} | {"assistant": default_agent(settings)}
    gateway = Gateway(
        settings, services=CallServices(agents=AgentRegistry(agents=agents)),
        token_auth=bearer,
        token_minter=TokenMinter(sim.rest_base_url, Secret(KEY), ssl_context=tls.client))
    async with running(gateway) as port:
        yield port


async def post(port: int, body: object, token: str | None = OPERATOR
               ) -> tuple[int, dict[str, Any], str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as http, http.post(
            f"http://127.0.0.1:{port}/v1/tokens", json=body, headers=headers) as resp:
        text = await resp.text()
        data = json.loads(text) if resp.content_type == "application/json" else {}
        return resp.status, data, resp.headers.get("Cache-Control", "")


async def test_operator_mints_a_token_and_the_sdk_talks_with_it(
        tls: Tls, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    logged = io.StringIO()
    configure("debug", stream=logged)  # the gateway's and the simulator's own log lines
    async with SimulatorServer(SCENARIO, ssl_context=tls.server) as sim, \
            gateway_on(sim, tls) as port:
        status, _, _ = await post(port, {"agent": "front_desk"}, token="wrong")
        assert status == 401
        status, _, _ = await post(port, {"agent": "front_desk"}, token=None)
        assert status == 401
        assert sim.auth_tokens.requests == []  # refused before the Live API was asked

        status, grant, cache = await post(port, {"agent": "front_desk", "uses": 1,
                                                 "expire_s": 600,
                                                 "new_session_expire_s": 30})
        assert status == 200 and cache == "no-store"
        assert grant["token"].startswith("auth_tokens/")
        assert grant["model"] == "models/gemini-live-test"
        assert grant["ws_url"] == (f"wss://127.0.0.1:{sim.port}/ws/google.ai."
                                   "generativelanguage.v1alpha.GenerativeService"
                                   ".BidiGenerateContentConstrained")
        sent = sim.auth_tokens.requests[0]
        assert sent["uses"] == 1 and sent["expireTime"] == grant["expire_time"]
        assert sent["newSessionExpireTime"] == grant["new_session_expire_time"]
        locked = sent["bidiGenerateContentSetup"]
        agent = {a.name: a for a in bundled_agents()}["front_desk"]
        assert locked["systemInstruction"]["parts"][0]["text"] == agent.instructions
        names = {d["name"] for d in locked["tools"][0]["functionDeclarations"]}
        assert names == set(agent.all_tools)  # the same tools its calls get
        assert "sessionResumption" not in locked and "model" in sent["fieldMask"]

        client = genai.Client(api_key=grant["token"], http_options=types.HttpOptions(
            base_url=sim.base_url, api_version="v1alpha",
            async_client_args={"ssl": tls.client}))
        config = types.LiveConnectConfig(
            response_modalities=[types.Modality.AUDIO], system_instruction="Be a pirate.")
        async with client.aio.live.connect(model="another-model", config=config) as session:
            await say(session, "caller_book_table")
            turn = await collect(session.receive())
        await sim.wait_until(lambda: sim.sessions[0].closed is not None)
    assert turn.turn_complete and len(turn.audio) > 24000
    rec = sim.sessions[0]
    assert rec.model == "models/gemini-live-test"
    assert rec.setup is not None and "pirate" not in json.dumps(rec.setup)
    assert rec.setup["systemInstruction"]["parts"][0]["text"] == agent.instructions
    assert KEY not in caplog.text + logged.getvalue()
    # Nor the token, in what the gateway and the simulator log (websockets' own debug lines
    # show the test client's handshake headers, which is the client's business).
    assert grant["token"] not in logged.getvalue()
    assert "live_token_minted" in logged.getvalue()
    assert KEY not in json.dumps(grant)


async def test_a_browser_connects_with_the_token_in_the_query_string(tls: Tls) -> None:
    async with SimulatorServer(SCENARIO, ssl_context=tls.server) as sim, \
            gateway_on(sim, tls) as port:
        _, grant, _ = await post(port, {"agent": "support"})
        url = f"{grant['ws_url']}?access_token={quote(grant['token'], safe='')}"
        async with connect(url, ssl=tls.client) as ws:
            await ws.send(json.dumps({"setup": {"model": grant["model"]}}))
            assert "setupComplete" in json.loads(await ws.recv())
            await ws.send(live.text_message("Where is my order?"))
            kinds: set[str] = set()
            while "turnComplete" not in kinds:
                message = json.loads(await ws.recv())
                kinds |= set(message.get("serverContent", {})) | set(message)
        assert "modelTurn" in kinds
        # The same token again: its one use is spent.
        async with connect(url, ssl=tls.client) as ws:
            await ws.send(json.dumps({"setup": {"model": grant["model"]}}))
            await ws.wait_closed()
        assert ws.close_code == 1007
    locked = sim.sessions[0].setup
    assert locked is not None
    names = {d["name"] for d in locked["tools"][0]["functionDeclarations"]}
    # No carrier to transfer, and no gateway in the audio to play keys.
    assert {"transfer_call", "send_dtmf"}.isdisjoint(names) and "lookup_order" in names


@pytest.mark.parametrize(("body", "status"), [
    ({"agent": "nobody"}, 404), ({"agent": "support", "uses": 0}, 400),
    ({"agent": "support", "expire_s": 72000}, 400), ("not an object", 400),
    ({"agent": "support", "expire_s": 60, "new_session_expire_s": 120}, 400),
])
async def test_bad_orders_are_refused_without_asking_the_api(
        tls: Tls, body: object, status: int) -> None:
    async with SimulatorServer(SCENARIO, ssl_context=tls.server) as sim, \
            gateway_on(sim, tls) as port:
        got, answer, _ = await post(port, body)
        assert got == status and answer["error"]
        assert sim.auth_tokens.requests == []


async def test_without_an_operator_check_the_route_is_not_served() -> None:
    gateway = Gateway(Settings(endpoint=custom_endpoint("ws://127.0.0.1:9", "m", KEY)))
    async with running(gateway) as port, aiohttp.ClientSession() as http, \
            http.post(f"http://127.0.0.1:{port}/v1/tokens", json={"agent": "x"}) as resp:
        assert resp.status == 404


async def test_a_refusal_from_the_api_is_reported_without_the_key(
        tls: Tls, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    logged = io.StringIO()
    configure("debug", stream=logged)
    async with SimulatorServer(SCENARIO, ssl_context=tls.server) as sim:
        gateway = Gateway(
            Settings(endpoint=custom_endpoint(sim.url, "m", KEY)), token_auth=bearer,
            token_minter=TokenMinter(sim.rest_base_url, Secret("a-wrong-api-key-value"),
                                     ssl_context=tls.client))
        async with running(gateway) as port:
            status, answer, _ = await post(port, {"agent": "assistant"})
    assert status == 502 and "HTTP 400" in answer["error"]
    assert "live_token_refused" in logged.getvalue()
    assert "a-wrong-api-key-value" not in answer["error"] + caplog.text + logged.getvalue()


async def test_with_the_console_it_is_served_where_the_console_is(tls: Tls) -> None:
    async with SimulatorServer(SCENARIO, ssl_context=tls.server) as sim:
        gateway = Gateway(
            Settings(endpoint=custom_endpoint(sim.url, "m", KEY)),
            console=console_settings(listen=("127.0.0.1", 0)),
            token_minter=TokenMinter(sim.rest_base_url, Secret(KEY), ssl_context=tls.client))
        async with running(gateway) as port:
            assert gateway.console is not None
            own = gateway.console.port
            assert own is not None
            assert (await post(port, {"agent": "assistant"}, CONSOLE_TOKEN))[0] == 404
            assert (await post(own, {"agent": "assistant"}, "wrong"))[0] == 401
            status, grant, _ = await post(own, {"agent": "assistant"}, CONSOLE_TOKEN)
    assert status == 200 and grant["token"].startswith("auth_tokens/")
