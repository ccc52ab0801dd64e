"""Telnyx's answer webhook over a real socket: a replayed (stale) signed webhook is refused
before anything else, and a fresh one gets the TeXML that streams the call."""

from __future__ import annotations

import time
from pathlib import Path

import aiohttp

from gateway.rig.peers import HttpRequest
from gateway.rig.peers.telnyx import TelnyxPeer
from tests.cases.telnyx import CASE
from tests.integration.test_carrier_calls import CALL, CALLEE, CALLER, Line, line


async def _send(ln: Line, request: HttpRequest) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.request(
            request.method, request.url, headers=dict(request.headers),
            data=request.body) as resp:
        return resp.status, await resp.text()


async def test_a_replayed_signed_webhook_is_refused_as_stale(tmp_path: Path) -> None:
    async with line(CASE, CALL, tmp_path) as ln:
        params = {"From": CALLER, "To": CALLEE}
        # Signed by Telnyx, but ten minutes ago: a captured request sent again.
        old = TelnyxPeer(custom_parameters=params, clock=lambda: time.time() - 600)
        status, text = await _send(ln, old.webhook(ln.answer_url, ln.secret))
        assert (status, text) == (403, "stale telnyx-signature-ed25519\n")
        fresh = TelnyxPeer(custom_parameters=params)
        status, text = await _send(ln, fresh.webhook(ln.answer_url, ln.secret))
        assert status == 200 and 'bidirectionalMode="rtp"' in text
        target = fresh.stream_target(text)
        assert target.parameters["CallSid"] == fresh.call_id
    assert ln.sim.sessions == []
    assert ln.gateway.counters[("telnyx", "signature")] == 1
