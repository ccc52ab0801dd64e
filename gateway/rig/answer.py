"""The carrier's webhook before a simulated call's stream (test/demo tool): the answer
document that says where to stream, or a registration that only has to succeed."""

from __future__ import annotations

import urllib.parse

import aiohttp

from gateway.rig.peers import PhonePeer


async def fetch_answer(session: aiohttp.ClientSession, peer: PhonePeer, answer_url: str,
                       secret: str | None) -> tuple[str, str]:
    """POST (or GET) the carrier's answer webhook. Returns the media URL as the document
    gives it (what a carrier signs) and the same path on the webhook's host (where the rig
    connects: it reaches the gateway directly, not through its public name)."""
    request = peer.webhook(answer_url, secret)
    async with session.request(request.method, request.url, headers=dict(request.headers),
                               data=request.body or None) as resp:
        document = await resp.text()
        if resp.status != 200:
            raise aiohttp.ClientResponseError(resp.request_info, resp.history,
                                              status=resp.status, message=document[:200])
    target = peer.stream_target(document)
    given, here = urllib.parse.urlsplit(target.url), urllib.parse.urlsplit(answer_url)
    scheme = "wss" if here.scheme == "https" else "ws"
    return target.url, urllib.parse.urlunsplit((scheme, here.netloc, given.path, given.query,
                                                ""))


async def register(session: aiohttp.ClientSession, peer: PhonePeer, url: str,
                   secret: str | None) -> None:
    """The webhook of a carrier whose answer is not a document (an AudioSocket call
    registered from the dialplan): it must succeed, that is all."""
    request = peer.webhook(url, secret)
    async with session.request(request.method, request.url, headers=dict(request.headers),
                               data=request.body or None) as resp:
        text = await resp.text()
        if resp.status >= 300:
            raise aiohttp.ClientResponseError(resp.request_info, resp.history,
                                              status=resp.status, message=text[:200])
