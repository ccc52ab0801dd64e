"""Console sign-in and the operator check, over a real loopback socket: passwords, the
bearer token, cookie attributes, CSRF, Origin, brute-force slowing and its metric."""

from __future__ import annotations

import io
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from itsdangerous import TimestampSigner
from prometheus_client import CollectorRegistry, generate_latest

from gateway import log as gwlog
from gateway.console.auth import COOKIE, CSRF_HEADER, ConsoleAuth
from tests.console_kit import HASH, KEY, PASSWORD, TOKEN, Clock, make_auth, session_cookie

Served = tuple[str, aiohttp.ClientSession, ConsoleAuth, Clock]


def app_for(auth: ConsoleAuth) -> web.Application:
    async def act(request: web.Request) -> web.Response:
        await auth.check(request, state_change=True)
        return web.json_response({"done": True})

    async def read(request: web.Request) -> web.Response:
        await auth(request, False)  # used as an Authorize, as other handlers take it
        return web.json_response({"read": True})

    async def socket(request: web.Request) -> web.StreamResponse:
        await auth.check(request, state_change=True)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.close()
        return ws

    app = web.Application()
    app.router.add_get("/session", auth.get_session)
    app.router.add_post("/session", auth.sign_in)
    app.router.add_delete("/session", auth.sign_out)
    app.router.add_post("/act", act)
    app.router.add_get("/read", read)
    app.router.add_get("/ws", socket)
    return app


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    clock = Clock()
    auth = make_auth(clock)
    server = TestServer(app_for(auth), host="127.0.0.1")
    await server.start_server()
    # No cookie jar: each test sends the cookie it means to, as a browser would.
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        yield f"http://127.0.0.1:{server.port}", http, auth, clock
    await server.close()


async def sign_in(base: str, http: aiohttp.ClientSession) -> tuple[str, str]:
    """(cookie header value, csrf token) of a new session."""
    async with http.post(f"{base}/session", json={"password": PASSWORD}) as r:
        assert r.status == 200
        body = await r.json()
        value, _ = session_cookie(r.headers["Set-Cookie"])
    return f"{COOKIE}={value}", body["csrf"]


async def test_the_right_password_signs_in_with_a_strict_secure_cookie(served: Served) -> None:
    base, http, _, _ = served
    async with http.post(f"{base}/session", json={"password": PASSWORD}) as r:
        assert r.status == 200
        body = await r.json()
        value, attrs = session_cookie(r.headers["Set-Cookie"])
    assert body["signed_in"] is True and len(body["csrf"]) >= 32
    assert attrs["httponly"] is True and attrs["secure"] is True
    assert attrs["samesite"] == "Strict" and attrs["path"] == "/"
    assert int(str(attrs["max-age"])) == 12 * 3600
    assert PASSWORD not in value and value.count(".") == 2  # signed, not the password
    async with http.get(f"{base}/session", headers={"Cookie": f"{COOKIE}={value}"}) as r:
        assert await r.json() == {"signed_in": True, "csrf": body["csrf"]}
    async with http.get(f"{base}/read", headers={"Cookie": f"{COOKIE}={value}"}) as r:
        assert r.status == 200


async def test_a_wrong_password_or_a_forged_cookie_is_refused(served: Served) -> None:
    base, http, auth, _ = served
    async with http.post(f"{base}/session", json={"password": "wrong"}) as r:
        assert r.status == 401
        assert "Set-Cookie" not in r.headers
    async with http.post(f"{base}/session", data=b"password=x") as r:
        assert r.status == 400
    cookie, _ = await sign_in(base, http)
    forged = cookie[:-3] + ("AAA" if not cookie.endswith("AAA") else "BBB")
    for headers in ({}, {"Cookie": forged}):
        async with http.get(f"{base}/read", headers=headers) as r:
            assert r.status == 401
        async with http.get(f"{base}/session", headers=headers) as r:
            assert await r.json() == {"signed_in": False, "csrf": None}
    assert auth.counts.sign_ins == {"ok": 1, "wrong": 1, "slowed": 0}


async def test_an_expired_session_is_refused(served: Served,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    base, http, auth, _ = served
    # A cookie signed just over a session's length ago (the signature carries the time).
    signed_at = int(time.time() - auth.session_s - 5)
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda _self: signed_at)
    cookie, _ = await sign_in(base, http)
    monkeypatch.undo()
    async with http.get(f"{base}/read", headers={"Cookie": cookie}) as r:
        assert r.status == 401


async def test_a_state_change_with_a_cookie_needs_the_csrf_token_and_origin(
        served: Served) -> None:
    base, http, auth, _ = served
    cookie, csrf = await sign_in(base, http)
    origin = base
    cases = [
        ({"Cookie": cookie, "Origin": origin}, 403),  # no CSRF token
        ({"Cookie": cookie, "Origin": origin, CSRF_HEADER: "0" * len(csrf)}, 403),
        ({"Cookie": cookie, CSRF_HEADER: csrf}, 403),  # no Origin
        ({"Cookie": cookie, "Origin": "http://evil.example", CSRF_HEADER: csrf}, 403),
        ({"Cookie": cookie, "Origin": "null", CSRF_HEADER: csrf}, 403),
        ({CSRF_HEADER: csrf, "Origin": origin}, 401),  # the token alone is no session
        ({"Cookie": cookie, "Origin": origin, CSRF_HEADER: csrf}, 200),
    ]
    for headers, status in cases:
        async with http.post(f"{base}/act", headers=headers) as r:
            assert r.status == status, headers
    assert auth.counts.refused == {"unauthorized": 1, "csrf": 2, "origin": 3}


async def test_the_csrf_token_is_bound_to_its_session(served: Served) -> None:
    base, http, _, _ = served
    cookie_a, _ = await sign_in(base, http)
    _, csrf_b = await sign_in(base, http)
    async with http.post(f"{base}/act", headers={"Cookie": cookie_a, "Origin": base,
                                                 CSRF_HEADER: csrf_b}) as r:
        assert r.status == 403


async def test_a_websocket_upgrade_with_a_cookie_needs_a_same_origin_origin(
        served: Served) -> None:
    base, http, _, _ = served
    cookie, _ = await sign_in(base, http)
    ws_url = base.replace("http", "ws") + "/ws"
    for origin in ("http://evil.example", None):
        headers = {"Cookie": cookie, **({"Origin": origin} if origin else {})}
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(ws_url, headers=headers)
        assert refused.value.status == 403
    async with http.ws_connect(ws_url, headers={"Cookie": cookie, "Origin": base}) as ws:
        await ws.receive()


async def test_the_bearer_token_works_without_csrf_and_a_wrong_one_is_refused(
        served: Served) -> None:
    base, http, _, _ = served
    async with http.post(f"{base}/act", headers={"Authorization": f"Bearer {TOKEN}"}) as r:
        assert r.status == 200
    async with http.ws_connect(base.replace("http", "ws") + "/ws",
                               headers={"Authorization": f"Bearer {TOKEN}"}) as ws:
        await ws.receive()
    cookie, csrf = await sign_in(base, http)
    for header in (f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", f"Basic {TOKEN}", "Bearer"):
        # A wrong token is refused even beside a good cookie session.
        async with http.post(f"{base}/act", headers={
                "Authorization": header, "Cookie": cookie, "Origin": base,
                CSRF_HEADER: csrf}) as r:
            assert r.status == 401


async def test_signing_out_ends_the_session_even_if_its_cookie_is_replayed(
        served: Served) -> None:
    base, http, _, _ = served
    cookie, csrf = await sign_in(base, http)
    async with http.delete(f"{base}/session", headers={"Cookie": cookie}) as r:
        assert r.status == 403  # signing out is a state change too
    async with http.delete(f"{base}/session", headers={"Cookie": cookie, "Origin": base,
                                                       CSRF_HEADER: csrf}) as r:
        assert r.status == 200
        _, attrs = session_cookie(r.headers["Set-Cookie"])
        assert attrs["max-age"] == "0"
    async with http.get(f"{base}/read", headers={"Cookie": cookie}) as r:
        assert r.status == 401


async def test_repeated_failures_are_slowed_with_429_and_counted(served: Served) -> None:
    base, http, auth, clock = served
    registry = CollectorRegistry()
    registry.register(auth.counts)
    free = auth.throttle.per_client.free
    for _ in range(free + 1):
        async with http.post(f"{base}/session", json={"password": "guess"}) as r:
            assert r.status == 401
    # Past the free failures: even the right password waits.
    async with http.post(f"{base}/session", json={"password": PASSWORD}) as r:
        assert r.status == 429
        assert r.headers["Retry-After"] == "1"
    clock.now += 1.0
    async with http.post(f"{base}/session", json={"password": "guess"}) as r:
        assert r.status == 401
    async with http.post(f"{base}/session", json={"password": PASSWORD}) as r:
        assert r.status == 429
        assert r.headers["Retry-After"] == "2"  # the wait doubles
    clock.now += 2.0
    async with http.post(f"{base}/session", json={"password": PASSWORD}) as r:
        assert r.status == 200
    text = generate_latest(registry).decode()
    assert 'voicegw_console_sign_ins_total{outcome="slowed"} 2.0' in text
    assert f'voicegw_console_sign_ins_total{{outcome="wrong"}} {free + 2}.0' in text
    assert 'voicegw_console_sign_ins_total{outcome="ok"} 1.0' in text


async def test_no_secret_reaches_a_response_or_a_log_line(served: Served) -> None:
    base, http, _, _ = served
    stream = io.StringIO()
    gwlog.configure("debug", stream=stream)
    seen = []
    for password in ("wrong-password-123", PASSWORD):
        async with http.post(f"{base}/session", json={"password": password}) as r:
            seen.append(await r.text() + str(r.headers))
    cookie, _ = await sign_in(base, http)
    async with http.post(f"{base}/act", headers={"Cookie": cookie}) as r:
        seen.append(await r.text() + str(r.headers))
    async with http.post(f"{base}/act", headers={"Authorization": "Bearer nope-nope"}) as r:
        seen.append(await r.text() + str(r.headers))
    logged = stream.getvalue()
    assert "console_sign_in" in logged
    for secret in (PASSWORD, "wrong-password-123", TOKEN, HASH, KEY.decode(), "nope-nope",
                   cookie.partition("=")[2]):
        assert secret not in logged
        assert all(secret not in text for text in seen[:1] + seen[2:])
