"""What serving one carrier takes: its cores, its signature checks and its REST client."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from gateway.callctl import CallControlApi
from gateway.carriers.core import Carrier, CarrierStream
from gateway.carriers.hooks import AnswerDocument, CarrierHooks, Verifier, WebhookRequest
from gateway.dialing.carrier import Dialer, ReadProgress

# A webhook route a provider needs beside its answer (``/plivo/transfer``): request in,
# document out (an empty body answers 204).
ExtraHook = Callable[[WebhookRequest], AnswerDocument]


@dataclass(frozen=True, slots=True)
class CarrierSetup:
    carrier: Carrier
    new_stream: Callable[[], CarrierStream]
    # Its answer webhook; None where no answer document exists (a PBX dials the socket).
    hooks: CarrierHooks | None
    verify: Verifier | None = None  # its webhooks' signature; None: served unsigned
    verify_upgrade: Verifier | None = None  # the media socket's upgrade, where it signs one
    call_control: CallControlApi | None = None
    subprotocols: tuple[str, ...] = ()  # WebSocket subprotocols its media socket asks for
    extra_hooks: Mapping[str, ExtraHook] = field(default_factory=dict)
    # Its streams carry the per-call token the answer document minted. Off where there is no
    # answer document: there the upgrade's own check is all that guards the socket.
    stream_tokens: bool = True
    # Where the call's parameters ride on the media URL's query (a PBX's dial string adds
    # them, as Asterisk's v() does): a new stream given that query. Else ``new_stream``.
    new_stream_for_url: Callable[[Mapping[str, str]], CarrierStream] | None = None
    # Outbound calls: its REST client's ``place`` (None without REST credentials, or where
    # the provider has no API to place calls), and its status callbacks' reader.
    dialer: Dialer | None = None
    read_progress: ReadProgress | None = None
    # Its answer request cannot name the dial (the provider's own flow fetches a fixed answer
    # URL, as Exotel's Voicebot applet does): a placed call is found by the carrier's call id.
    dials_by_call_id: bool = False

    def open_stream(self, query: Mapping[str, str]) -> CarrierStream:
        """The stream core for one media socket whose URL had ``query``."""
        if self.new_stream_for_url is not None:
            return self.new_stream_for_url(query)
        return self.new_stream()

    @property
    def signed(self) -> bool:
        """Its requests are authenticated (webhooks, or the media socket's upgrade)."""
        return self.verify is not None or self.verify_upgrade is not None

    @property
    def needs_token(self) -> bool:
        return self.signed and self.stream_tokens


FromEnv = Callable[[Mapping[str, str]], CarrierSetup]
