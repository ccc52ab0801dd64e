"""What crosses a whole call, scored: for each audio path a carrier can take, real speech said
by the caller against what the simulated Live server received, and the simulator's reply
against what reached the caller, over real loopback sockets.

Paths: mu-law 8 kHz (Twilio, the reference), A-law 8 kHz (Telnyx with
``VOICEGW_TELNYX_CODEC=PCMA``), L16 16 kHz (Telnyx's big-endian default, Plivo's
default, Vonage's and jambonz's binary frames, Exotel's default) and L16 8 kHz (jambonz and
Exotel asked for 8000); and Asterisk's WebSocket driver dialled with ``c(ulaw)``, ``c(alaw)``
and ``c(slin16)`` (the last in its JSON dialect). Each call is answered by the carrier's
signed webhook and streams with its per-call token, as in ``test_carrier_calls.py``
(Asterisk dials the socket with its Basic credentials).

References are computed with an ideal (brick-wall FFT) resampler from the bundled 24 kHz
speech, which is wideband: a 16 kHz caller says it at 16 kHz, an 8 kHz caller at 8 kHz.

- Caller -> model: the gateway decodes and resamples to 16 kHz. A 16 kHz line must arrive
  bit for bit (the whole stream, not just the speech); an 8 kHz line must arrive as exactly
  its decoder and the 8 -> 16 kHz resampler make it, and is scored with wide-band PESQ
  against its speech ideally resampled to 16 kHz, aligned by the resampler's declared delay.
- Model -> caller: the reply as the phone received it (every media message, in order, before
  its playback clock: pacing is not what is measured here) must be exactly the resampler and
  codec the unit tests measure on tones, and is scored against the reply ideally resampled
  to the line's rate: wide-band PESQ at 16 kHz, narrow-band at 8. Where it starts is found
  by cross-correlation, and must be exactly the resampler's declared delay.

PESQ-WB hears little of 7-8 kHz, so it cannot tell a good 24 -> 16 kHz filter from a
mediocre one; the tone tests in ``test_audio_quality.py`` do, and the exact-bytes checks here
tie the whole call to them.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import pytest

from gateway.audio import AudioFormat, Codec, Resampler, decoder, encoder, frame_bytes
from gateway.bridge_config import BridgeSettings
from gateway.caller_processing import LineProcessing
from gateway.carrier_setup import all_setups
from gateway.carriers.asterisk import Dialect
from gateway.carriers.telnyx import FORMATS as TELNYX_FORMATS
from gateway.config import Settings, custom_endpoint
from gateway.live import INPUT_RATE, OUTPUT_RATE
from gateway.rig.peers import OutboundEvent, OutMedia, PhonePeer
from gateway.rig.peers.asterisk import AsteriskPeer
from gateway.rig.peers.exotel import ExotelPeer
from gateway.rig.peers.jambonz import JambonzPeer
from gateway.rig.peers.telnyx import TelnyxPeer
from gateway.rig.phone import CallResult, Speech, Utterance, When, place_call
from gateway.rig.rest_fakes import serving
from gateway.rig.simulator import SimulatorServer, scenario_from_dict
from gateway.rig.simulator.record import SessionRecord
from gateway.server import Gateway, running
from tests.audio_measure import agent_speech, as_i16, i16, ideal_resample, pesq_of, stream
from tests.cases import CarrierCase, asterisk, exotel, jambonz, plivo, telnyx, twilio, vonage

SPEED = 8.0
SAID, REPLY = "agent_goodbye", "agent_moved"  # wideband speech, 2.8 s and 4.9 s
START_MS = 300  # the caller starts speaking this long into the call


class Listening:
    """A carrier's phone that also keeps every reply message's audio as it arrives."""

    def __init__(self, peer: PhonePeer) -> None:
        self._peer = peer
        self.replies = bytearray()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._peer, name)

    def receive(self, frame: str | bytes) -> OutboundEvent:
        event = self._peer.receive(frame)
        if isinstance(event, OutMedia):
            self.replies += event.payload
        return event


def _telnyx_alaw() -> CarrierCase:
    def credentials(url: str) -> tuple[dict[str, str], str]:
        env, secret = telnyx.CASE.credentials(url)
        return {**env, "VOICEGW_TELNYX_CODEC": "PCMA"}, secret

    def peer(params: Mapping[str, str]) -> PhonePeer:
        return TelnyxPeer(custom_parameters=params, fmt=TELNYX_FORMATS["PCMA"])

    return dataclasses.replace(telnyx.CASE, credentials=credentials, peer=peer)


def _jambonz_8k() -> CarrierCase:
    def credentials(url: str) -> tuple[dict[str, str], str]:
        env, secret = jambonz.CASE.credentials(url)
        return {**env, "VOICEGW_JAMBONZ_SAMPLE_RATE": "8000"}, secret

    def peer(params: Mapping[str, str]) -> PhonePeer:
        return JambonzPeer(params, rate=8000)

    return dataclasses.replace(jambonz.CASE, credentials=credentials, peer=peer)


def _exotel_8k() -> CarrierCase:
    def credentials(url: str) -> tuple[dict[str, str], str]:
        env, secret = exotel.CASE.credentials(url)
        return {**env, "VOICEGW_EXOTEL_SAMPLE_RATE": "8000"}, secret

    def peer(params: Mapping[str, str]) -> PhonePeer:
        return ExotelPeer(custom_parameters=params, rate=8000)

    return dataclasses.replace(exotel.CASE, credentials=credentials, peer=peer)


def _asterisk(format_name: str, dialect: Dialect = Dialect.PLAIN) -> CarrierCase:
    def peer(params: Mapping[str, str]) -> PhonePeer:
        return AsteriskPeer(params, format_name=format_name, dialect=dialect)

    return dataclasses.replace(asterisk.CASE, peer=peer)


@dataclass(frozen=True)
class AudioPath:
    name: str
    case: CarrierCase
    line: AudioFormat  # what the call carries, both ways

    def __str__(self) -> str:
        return self.name


MU_LAW = AudioPath("twilio-pcmu-8k", twilio.CASE, AudioFormat(Codec.PCMU, 8000))
A_LAW = AudioPath("telnyx-pcma-8k", _telnyx_alaw(), AudioFormat(Codec.PCMA, 8000))
L16_8K = [AudioPath("jambonz-l16-8k", _jambonz_8k(), AudioFormat(Codec.L16, 8000)),
          AudioPath("exotel-l16-8k", _exotel_8k(), AudioFormat(Codec.L16, 8000))]
WIDEBAND = [AudioPath("telnyx-l16be-16k", telnyx.CASE, AudioFormat(Codec.L16_BE, 16000)),
            AudioPath("plivo-l16-16k", plivo.CASE, AudioFormat(Codec.L16, 16000)),
            AudioPath("vonage-l16-16k", vonage.CASE, AudioFormat(Codec.L16, 16000)),
            AudioPath("jambonz-l16-16k", jambonz.CASE, AudioFormat(Codec.L16, 16000)),
            AudioPath("exotel-l16-16k", exotel.CASE, AudioFormat(Codec.L16, 16000)),
            AudioPath("asterisk-slin16-16k", _asterisk("slin16", Dialect.JSON),
                      AudioFormat(Codec.L16, 16000))]
ASTERISK_MU_LAW = AudioPath("asterisk-ulaw-8k", _asterisk("ulaw"), AudioFormat(Codec.PCMU, 8000))
ASTERISK_A_LAW = AudioPath("asterisk-alaw-8k", _asterisk("alaw"), AudioFormat(Codec.PCMA, 8000))


class _SendsAhead(Gateway):
    """Sends a reply as soon as it has it, also to a carrier the gateway paces itself
    (Vonage): the bytes are the same, and the call takes its sped-up time."""

    def bridge_settings(self) -> BridgeSettings:
        # The codec and resampler path alone, exact to the byte: the echo canceller and the
        # noise suppressor change what the model hears by design (tests/test_caller_processing).
        return dataclasses.replace(super().bridge_settings(), pacing_lead_ms=600_000,
                                   line_processing=LineProcessing(False, False))


@dataclass
class Heard:
    """One call: what the caller said and the model received; what the phone received."""

    result: CallResult
    source: bytes  # the caller's speech, PCM16 at the line's rate, as said
    model: bytes  # PCM16 at 16 kHz, everything the simulated Live server received
    replies: bytes  # PCM16 at the line's rate, every reply message's audio in order


@contextlib.asynccontextmanager
async def _gateway(case: CarrierCase) -> AsyncIterator[tuple[str, str, SimulatorServer]]:
    fake = case.fake()
    async with serving(fake.app()) as api_url:
        env, secret = case.credentials(api_url)
        setup = all_setups(env)[case.carrier]
        # One turn; a long silence_ms, so the speech's own pauses cannot end it early.
        scenario = scenario_from_dict({"speed": SPEED, "silence_ms": 1200,
                                       "keep_audio_s": 60, "turns": [{"reply": REPLY}]})
        async with SimulatorServer(scenario) as sim:
            gateway = _SendsAhead(Settings(endpoint=custom_endpoint(sim.url, "test-model")),
                                  carriers={case.carrier: setup})
            async with running(gateway) as port:
                yield f"http://127.0.0.1:{port}/{case.carrier.value}", secret, sim
                await sim.wait_until(lambda: all(s.closed is not None for s in sim.sessions))
        if setup.call_control is not None:
            await setup.call_control.aclose()


async def call(path: AudioPath) -> Heard:
    source = agent_speech(SAID, path.line.rate)
    said = Speech(source, AudioFormat(Codec.L16, path.line.rate))
    async with _gateway(path.case) as (base, secret, sim):
        phone = Listening(path.case.peer({}))
        peer = cast(PhonePeer, phone)
        assert (peer.inbound, peer.outbound) == (path.line, path.line)
        result = await place_call(f"{base.replace('http', 'ws')}/media",
                                  [Utterance(said, When.START, START_MS)], speed=SPEED,
                                  peer=peer, answer_url=f"{base}/answer", secret=secret,
                                  max_s=60.0)
    [session] = sim.sessions
    check_session(session, result)
    return Heard(result, source, bytes(session.audio),
                 decoder(path.line.codec)(bytes(phone.replies)))


def check_session(session: SessionRecord, result: CallResult) -> None:
    assert session.audio_rates == {INPUT_RATE}
    assert session.turns_completed == 1 and session.interruptions == 0  # one reply, whole
    assert len(session.audio) == round(session.audio_seconds * INPUT_RATE) * 2  # all kept
    assert result.clears == 0


def delay(src: int, dst: int) -> int:
    """The gateway's resampler's delay from ``src`` to ``dst``, in samples at ``dst``."""
    return 0 if src == dst else round(Resampler(src, dst).delay_ms * dst / 1000)


def spoken_at(heard: Heard, line: AudioFormat) -> int:
    """Where the caller's speech starts in what the phone sent, in samples at its rate."""
    at = bytes(heard.result.said).find(encoder(line.codec)(heard.source))
    assert at > 0 and at % line.codec.sample_bytes == 0
    return at // line.codec.sample_bytes


def reply_lag(replies: bytes, ref: bytes, rate: int) -> int:
    """Where ``ref`` best matches ``replies`` (cross-correlation), within 100 ms."""
    x, y = i16(replies), i16(ref)
    n = 1 << int(np.ceil(np.log2(len(x) + len(y))))
    corr = np.fft.irfft(np.fft.rfft(x, n) * np.conj(np.fft.rfft(y, n)), n)
    return int(np.argmax(corr[: rate // 10]))


def scores_out(heard: Heard, line: AudioFormat) -> tuple[float, float]:
    """PESQ of the reply as received, and of an ideal gateway's (the ideal resampler, then
    the line's codec), both against the ideal resampler's reply."""
    reply = agent_speech(REPLY, OUTPUT_RATE)
    # The reply went through exactly the resampler and codec the unit tests measure on
    # tones (and nothing else), whatever the messages it was cut into; a carrier that takes
    # some sizes only got its last message padded with silence.
    decode = decoder(line.codec)
    heard_as = decode(encoder(line.codec)(stream(Resampler(OUTPUT_RATE, line.rate), reply,
                                                 frame_bytes(OUTPUT_RATE))))
    assert heard.replies.startswith(heard_as)
    tail = heard.replies[len(heard_as) :]
    assert tail == decode(line.codec.silence * (len(tail) // 2))
    ref = as_i16(ideal_resample(i16(reply), OUTPUT_RATE, line.rate))
    lag = delay(OUTPUT_RATE, line.rate)
    assert reply_lag(heard.replies, ref, line.rate) == lag
    ideal = decoder(line.codec)(encoder(line.codec)(ref))
    return (pesq_of(ref, heard.replies[2 * lag :], line.rate),
            pesq_of(ref, ideal, line.rate))


def in_16k(heard: Heard, line: AudioFormat) -> tuple[bytes, bytes]:
    """The caller's speech ideally at 16 kHz, and what the model received over its time."""
    start = spoken_at(heard, line) * INPUT_RATE // line.rate + delay(line.rate, INPUT_RATE)
    ref = as_i16(ideal_resample(i16(heard.source), line.rate, INPUT_RATE))
    return ref, heard.model[2 * start : 2 * start + len(ref)]


@pytest.mark.parametrize("path", WIDEBAND, ids=str)
async def test_a_16k_line_reaches_the_model_bit_exact_and_hears_the_reply_wideband(
        path: AudioPath) -> None:
    heard = await call(path)
    # Caller -> model: every sample the gateway read, unchanged (it may not read the last
    # frame or two, sent as it hung up).
    said = decoder(path.line.codec)(bytes(heard.result.said))
    assert len(heard.model) >= len(said) - 5 * frame_bytes(16000)
    assert heard.model == said[: len(heard.model)]
    _, model = in_16k(heard, path.line)
    assert model == heard.source  # the speech itself, where the phone said it
    # Model -> caller: 24 -> 16 kHz scores within 0.1 of the ideal resampler (the reference
    # keeps 7-8 kHz, which the gateway's filter rolls off; PESQ-WB tops out near 4.64).
    ours, ideal = scores_out(heard, path.line)
    print(f"{path}: reply PESQ-WB {ours:.2f} (ideal gateway {ideal:.2f})")
    assert ideal > 4.6
    assert ours >= ideal - 0.1


@pytest.mark.parametrize("laws", [(MU_LAW, A_LAW), (ASTERISK_MU_LAW, ASTERISK_A_LAW)],
                         ids=["twilio-telnyx", "asterisk"])
async def test_a_law_and_mu_law_lines_score_alike_both_ways(
        laws: tuple[AudioPath, AudioPath]) -> None:
    """8 kHz G.711, both laws: the caller scored wide-band at 16 kHz, the reply narrow-band
    at 8, each beside an ideal gateway, and A-law beside mu-law."""
    scores: dict[str, tuple[float, float, float]] = {}
    for path in laws:
        heard = await call(path)
        # What the model heard is the phone's stream through this path's decoder and an
        # 8 -> 16 kHz resampler, nothing else.
        said = bytes(heard.result.said)
        want = stream(Resampler(8000, INPUT_RATE), decoder(path.line.codec)(said),
                      frame_bytes(8000))
        assert len(heard.model) >= len(want) - 5 * frame_bytes(16000)
        assert heard.model == want[: len(heard.model)]
        ref, model = in_16k(heard, path.line)
        inbound = pesq_of(ref, model, INPUT_RATE)
        outbound, ideal = scores_out(heard, path.line)
        assert outbound >= ideal - 0.1
        scores[path.name] = inbound, outbound, ideal
    (mu_in, mu_out, _), (a_in, a_out, _) = scores.values()
    assert min(mu_in, a_in) >= 3.7  # the 3.4-4 kHz the 8 -> 16 kHz filter rolls off
    assert min(mu_out, a_out) >= 4.0  # companding: half a point under the resampler alone
    assert abs(a_in - mu_in) <= 0.1 and abs(a_out - mu_out) <= 0.1



@pytest.mark.parametrize("path", L16_8K, ids=str)
async def test_an_8k_linear_line_scores_as_its_resamplers_alone(path: AudioPath) -> None:
    """8 kHz L16 (jambonz or Exotel asked for 8000): no codec, so what the model heard is
    exactly the 8 -> 16 kHz resampler's, and the reply exactly the 24 -> 8 kHz one's; each
    scores as well as G.711 or better, and the reply within 0.1 of an ideal gateway."""
    heard = await call(path)
    said = bytes(heard.result.said)
    want = stream(Resampler(8000, INPUT_RATE), said, frame_bytes(8000))
    assert len(heard.model) >= len(want) - 5 * frame_bytes(16000)
    assert heard.model == want[: len(heard.model)]
    ref, model = in_16k(heard, path.line)
    inbound = pesq_of(ref, model, INPUT_RATE)
    outbound, ideal = scores_out(heard, path.line)
    print(f"{path}: caller PESQ-WB {inbound:.2f}; reply PESQ-NB {outbound:.2f} "
          f"(ideal gateway {ideal:.2f})")
    assert inbound >= 3.7  # wide-band: the 3.4-4 kHz the 8 -> 16 kHz filter rolls off
    assert outbound >= ideal - 0.1
    assert outbound >= 4.0  # narrow-band
