"""The browser carrier's wire for the hostile-input tests (:mod:`tests.integration.hostile_wire`):
the talk page's messages, built by its rig peer, and the ways to break them.

Binary frames are its audio and text frames its JSON events, as Vonage's, so no frame type is
refused as such. Its format is the URL's (a wrong one is refused before the upgrade, with 400),
and its start names nothing (the call id is the gateway's), so it has no format or start to
break: those rows are not its. Its upgrade carries an operator's bearer token.
"""

from __future__ import annotations

import json
from typing import ClassVar

from gateway.carriers.browser import BrowserFormat, BrowserStream
from gateway.carriers.core import Carrier, Outgoing
from gateway.rig.peers.browser import BrowserPeer
from tests.cases.browser import TOKEN
from tests.integration.hostile_wire import ODD_LENGTH, Refused, Wire


class BrowserWire(Wire):
    carrier = Carrier.BROWSER
    fmt = BrowserFormat.PCM16.value.inbound
    max_payload = BrowserStream("BR0").max_payload
    upgrade_headers: ClassVar[dict[str, str]] = {"Authorization": f"Bearer {TOKEN}"}
    breakable_start = False

    def __init__(self) -> None:
        self.peer = BrowserPeer()

    def opening(self) -> list[Outgoing]:
        return list(self.peer.opening())

    def media(self, audio: bytes | None = None) -> Outgoing:
        return self.peer.media(self.silence if audio is None else audio)

    def stop(self) -> Outgoing:
        [stop] = self.peer.hang_up()
        return stop

    def broken(self) -> dict[str, Outgoing]:
        return {"non-JSON text": "this is not JSON {",
                "JSON that is not an object": '["event", "mark"]',
                "event name not a string": json.dumps({"event": 5}),
                "mark without its name": json.dumps({"event": "mark"}),
                "not a keypad digit": json.dumps({"event": "dtmf", "digit": "x"}),
                "empty audio frame": b"",
                "oversized audio frame": bytes(self.max_payload + 2),
                "odd-length audio frame": ODD_LENGTH}

    def wrong_types(self) -> dict[str, Outgoing]:
        return {}  # binary frames are its audio and text frames its events

    def unknown_event(self) -> tuple[Outgoing, str]:
        name = "x_typing"
        return json.dumps({"event": name}), name

    def bad_formats(self) -> dict[str, Refused]:
        return {}  # the URL's: refused before the upgrade

    def malformed_start(self) -> Refused:
        raise NotImplementedError("the page's start names nothing that could be malformed")

    def over_limit(self, limit: int) -> Outgoing:
        return bytes(limit + 4)
