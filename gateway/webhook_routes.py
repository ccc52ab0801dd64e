"""Carriers' HTTP webhooks: each answer (the document that points a call's audio at its media
socket), the extra routes a provider needs (``/plivo/transfer``...), and the status callbacks
of calls the gateway placed (``/NAME/status``). Every request is checked against the
carrier's signature first; adapter layer (aiohttp), kept apart from the server's lifecycle.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import structlog
from aiohttp import web

from gateway.carrier_setup import CarrierSetup
from gateway.carriers.core import TOKEN_PARAMETER
from gateway.carriers.hooks import (
    AnswerDocument,
    StreamPlan,
    Verdict,
    WebhookError,
    WebhookRequest,
    public_urls,
    ws_url,
)
from gateway.dialing.model import DIAL_PARAMETER, DialRecord

if TYPE_CHECKING:
    from gateway.server import Gateway

log = structlog.get_logger("gateway.server")
_MAX_DIAL_ID = 64


class WebhookRoutes:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def _base_urls(self, request: web.Request) -> list[str]:
        """Origins (plus path prefix) a carrier may have used to reach us."""
        if self.gateway.settings.public_url:
            return [self.gateway.settings.public_url]
        # Without VOICEGW_PUBLIC_URL, answers point carriers at wss://<Host>, so the webhook
        # was most likely https through a TLS-terminating proxy; also try the scheme we saw.
        # The Host header is the caller's to choose, but forging a signature needs the secret.
        return list(dict.fromkeys([f"https://{request.host}",
                                   f"{request.scheme}://{request.host}"]))

    async def read(self, request: web.Request, *, websocket: bool = False) -> WebhookRequest:
        body = b"" if websocket else await request.read()
        form: tuple[tuple[str, str], ...] = ()
        if request.method == "POST" and request.content_type == \
                "application/x-www-form-urlencoded":
            form = tuple((k, v) for k, v in (await request.post()).items()
                         if isinstance(v, str))
        urls = tuple(u for base in self._base_urls(request)
                     for u in public_urls(base, request.raw_path, websocket=websocket))
        return WebhookRequest(method=request.method, urls=urls, headers=request.headers,
                              body=body, form=form, query=tuple(request.query.items()),
                              now=time.time())

    def refuse_unsigned(self, setup: CarrierSetup, request: web.Request,
                        hook: WebhookRequest, *, upgrade: bool = False) -> web.Response | None:
        """A 403 if the carrier signs and this request is not its, else None."""
        verifier = setup.verify_upgrade if upgrade else setup.verify
        if verifier is None:
            return None
        verdict = verifier.verify(hook)
        if verdict is Verdict.VALID:
            return None
        self.gateway.count_refusal(setup.carrier, "signature")
        # Never the header's value: a valid signature for another URL is still a credential.
        log.warning("signature_rejected", carrier=setup.carrier.value, reason=verdict.value,
                    method=request.method, path=request.path, remote=request.remote)
        return web.Response(status=403, text=f"{verdict.value} {verifier.header}\n")

    async def answer(self, setup: CarrierSetup, request: web.Request, *,
                     legacy: bool = False) -> web.Response:
        hooks = setup.hooks
        assert hooks is not None  # routed only for carriers with an answer webhook
        hook = await self.read(request)
        if (rejected := self.refuse_unsigned(setup, request, hook)) is not None:
            return rejected
        if self.gateway.refuse_call(setup.carrier, "answer") is not None:
            return document(hooks.busy())
        try:
            call = hooks.call_info(hook)
        except WebhookError as exc:
            log.warning("webhook_refused", carrier=setup.carrier.value, error=str(exc))
            return web.Response(status=400, text=f"{exc}\n")
        params = dict(call.forwarded)
        if setup.needs_token:
            params[TOKEN_PARAMETER] = self.gateway.tokens.mint(setup.carrier.value,
                                                               call.call_id)
        # A call the gateway placed: its stream names the dial (for the call's screen, and
        # the request's custom parameters, read back from the dial's record).
        service = self.gateway.dialing
        record = await self._placed(setup, request, call.call_id)
        if record is not None and service is not None:
            params[DIAL_PARAMETER] = record.id
            await service.answering(record.id)
        agent = request.match_info.get("agent") or (record.request.agent if record else None)
        path = "/media" if legacy else f"/{setup.carrier.value}/media"
        path += f"/{agent}" if agent else ""
        base = self.gateway.settings.public_url or f"https://{request.host}"
        return document(hooks.answer(call, StreamPlan(ws_url(base, path), params)))

    async def _placed(self, setup: CarrierSetup, request: web.Request, call_id: str
                      ) -> DialRecord | None:
        """The dial an answer request is for: named in its query, or, where the carrier's
        flow fetches a fixed URL, found by the carrier's call id; None for other calls."""
        service = self.gateway.dialing
        if service is None:
            return None
        dial = request.query.get(DIAL_PARAMETER, "")
        record = None
        if dial and len(dial) <= _MAX_DIAL_ID:
            record = await service.get(dial)
        elif not dial and setup.dials_by_call_id:
            record = await service.by_carrier_call(setup.carrier, call_id)
        return record if record is not None and record.request.carrier is setup.carrier \
            else None

    async def extra_hook(self, setup: CarrierSetup, suffix: str,
                         request: web.Request) -> web.Response:
        hook = await self.read(request)
        if (rejected := self.refuse_unsigned(setup, request, hook)) is not None:
            return rejected
        try:
            return document(setup.extra_hooks[suffix](hook))
        except WebhookError as exc:
            return web.Response(status=400, text=f"{exc}\n")

    async def status(self, setup: CarrierSetup, request: web.Request) -> web.Response:
        """A status (or detection) callback of a call the gateway placed."""
        assert setup.read_progress is not None  # routed only for carriers that dial
        service = self.gateway.dialing
        hook = await self.read(request)
        if (rejected := self.refuse_unsigned(setup, request, hook)) is not None:
            return rejected
        dial = request.query.get(DIAL_PARAMETER, "")
        try:
            progress = setup.read_progress(hook)
        except WebhookError as exc:
            log.warning("webhook_refused", carrier=setup.carrier.value, error=str(exc))
            return web.Response(status=400, text=f"{exc}\n")
        if service is None or not dial or len(dial) > _MAX_DIAL_ID:
            return web.Response(status=404, text="no such call\n")
        found = await service.progress(setup.carrier, dial, progress)
        # 204 either way for a known route: a carrier retrying an unknown call gains nothing.
        return web.Response(status=204 if found is not None else 404)


def document(doc: AnswerDocument) -> web.Response:
    if not doc.body:
        return web.Response(status=204)
    return web.Response(text=doc.body, content_type=doc.content_type)
