"""``POST /v1/tokens``: an operator gets an ephemeral Live API token for one agent.

Behind the console's operator check (:data:`Authorize`), which runs before anything else, so
an unauthorized request never reaches the Live API. The answer is a credential: it is sent
with ``Cache-Control: no-store`` and its token is never logged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime

import structlog
from aiohttp import web

from gateway import live
from gateway.console.auth import Authorize
from gateway.jsonio import JSONDecodeError, loads
from gateway.live_token_client import TokenMinter, TokenMintError
from gateway.live_tokens import TokenOrderError, grant, parse_order, token_request
from gateway.registry import AgentRegistry, UnknownAgentError

# A direct client has no carrier and its audio bypasses the gateway: nothing could carry out
# a transfer, or play keys into the call.
WITHHELD = frozenset({"transfer_call", "send_dtmf"})
MAX_BODY = 4096

log = structlog.get_logger("gateway.tokens")


def _refuse(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status,
                             headers={"Cache-Control": "no-store"})


class TokenRoute:
    def __init__(self, authorize: Authorize, minter: TokenMinter | None,
                 agents: AgentRegistry, session: live.SessionConfig, *, live_url: str,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.authorize = authorize
        self.minter = minter
        self.agents = agents
        self.session = session  # the server's base, as every call's bridge gets it
        self.live_url = live_url
        self.clock = clock

    async def aclose(self) -> None:
        if self.minter is not None:
            await self.minter.aclose()

    def add_to(self, app: web.Application) -> None:
        app.router.add_post("/v1/tokens", self.handle)

    async def handle(self, request: web.Request) -> web.Response:
        await self.authorize(request, True)
        if request.content_length is not None and request.content_length > MAX_BODY:
            return _refuse(413, "body too large")
        raw = await request.content.read(MAX_BODY + 1)
        if len(raw) > MAX_BODY:
            return _refuse(413, "body too large")
        try:
            order = parse_order(loads(raw or b"{}"))
            agent = self.agents.get(order.agent, "token request")
        except JSONDecodeError:
            return _refuse(400, "the body must be JSON")
        except TokenOrderError as exc:
            return _refuse(400, str(exc))
        except UnknownAgentError:
            return _refuse(404, f"no agent named {order.agent!r}")
        if self.minter is None:
            return _refuse(501, "ephemeral tokens need a Gemini API key (AI Studio); "
                           "Vertex AI does not issue them")
        config = dataclasses.replace(agent.session_config(self.session, withheld=WITHHELD),
                                     session_resumption=False)
        wanted = token_request(live.setup_object(config), order, self.clock())
        try:
            token = await self.minter.mint(wanted.body)
        except TokenMintError as exc:
            log.warning("live_token_refused", agent=agent.name, status=exc.status,
                        error=str(exc))
            return _refuse(502, str(exc))
        log.info("live_token_minted", agent=agent.name, uses=order.uses,
                 expire_s=order.expire_s, new_session_expire_s=order.new_session_expire_s)
        return web.json_response(grant(wanted, token, self.live_url),
                                 headers={"Cache-Control": "no-store"})
