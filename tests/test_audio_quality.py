"""The resampler's filter quality on tones (images, aliases, passband, delay) and real speech
scored with PESQ against an ideal resampler, for every path a carrier's audio takes: G.711
at 8 kHz (mu-law and A-law), and L16 at 16 kHz, whose way in needs no resampling and whose
way out is 24 -> 16 kHz."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gateway import live
from gateway.audio import Codec, Resampler, decoder, encoder, frame_bytes
from tests.audio_measure import (
    MIN_REJECTION_DB,
    agent_speech,
    alias_of,
    as_i16,
    i16,
    ideal_resample,
    level_db,
    noise,
    pcm,
    pesq_of,
    pesq_scores,
    ratecv_stream,
    stream,
    through,
)

PAIRS = [(8000, 16000), (16000, 8000), (24000, 8000), (8000, 24000), (24000, 16000),
         (16000, 24000)]
PASSBAND = list(range(300, 3401, 100))  # the telephone band (ITU-T G.712)
WIDE_PASSBAND = [50, *range(100, 7001, 100)]  # the wideband one (G.722, AMR-WB: 50-7000 Hz)


def band_top(src: int, dst: int) -> int:
    """Where the passband of a conversion ends: 3.4 kHz through 8 kHz, 7 kHz through 16."""
    return 7000 if min(src, dst) >= 16000 else 3400


# Tones: 8 kHz ------------------------------------------------------------------------------

@pytest.mark.parametrize("freq", PASSBAND)
def test_8k_to_16k_images_rejected_and_passband_flat(freq: int) -> None:
    out = through(8000, 16000, freq)
    assert abs(level_db(out, 16000, freq)) <= 0.5
    assert level_db(out, 16000, 8000 - freq) <= -MIN_REJECTION_DB


@pytest.mark.parametrize("freq", [4600, 5000, 7000, 7700, 8300, 10000, 11400, 11500,
                                  *range(4700, 11301, 300)])
def test_24k_to_8k_aliases_rejected(freq: int) -> None:
    assert level_db(through(24000, 8000, freq), 8000, alias_of(freq, 8000)) \
        <= -MIN_REJECTION_DB


@pytest.mark.parametrize(("src", "dst"), [(24000, 8000), (16000, 8000), (8000, 24000)])
def test_passband_flat_within_half_a_db(src: int, dst: int) -> None:
    gains = [level_db(through(src, dst, f), dst, f) for f in PASSBAND]
    assert max(abs(g) for g in gains) <= 0.5
    assert max(gains) - min(gains) <= 0.5


# Tones: 16 kHz (what an L16 16 kHz carrier's caller hears) --------------------------------

@pytest.mark.parametrize("freq", [9000, 9050, 9100, 9200, 9500, 10000, 11000, 11500, 11900,
                                  *range(9300, 11801, 300)])
def test_24k_to_16k_aliases_rejected(freq: int) -> None:
    """Every reply tone above 9 kHz folds into the wideband passband (at most 7 kHz), so it
    must be gone by the same margin as the 8 kHz path's aliases."""
    alias = alias_of(freq, 16000)
    assert alias <= 7000
    assert level_db(through(24000, 16000, freq), 16000, alias) <= -MIN_REJECTION_DB


def test_24k_to_16k_passband_flat_to_7_khz() -> None:
    gains = [level_db(through(24000, 16000, f), 16000, f) for f in WIDE_PASSBAND]
    assert max(abs(g) for g in gains) <= 0.5
    assert max(gains) - min(gains) <= 0.5


@pytest.mark.parametrize("codec", [Codec.L16, Codec.L16_BE])
def test_16k_inbound_is_the_identity(codec: Codec) -> None:
    """The caller's L16 16 kHz reaches the model bit for bit, as the bridge builds the path:
    the carrier's decoder, then a resampler to the Live API's input rate."""
    assert live.INPUT_RATE == 16000
    speech = agent_speech("agent_goodbye", 16000) + noise(3, 1001)  # and full-scale noise
    wire = encoder(codec)(speech)
    to_live, decode = Resampler(16000, live.INPUT_RATE), decoder(codec)
    assert to_live.delay_ms == 0.0
    assert stream(to_live, decode(wire), frame_bytes(16000)) == speech


# Delay --------------------------------------------------------------------------------

@pytest.mark.parametrize(("src", "dst"), PAIRS)
def test_delay_is_small_and_matches_an_impulse(src: int, dst: int) -> None:
    r = Resampler(src, dst)
    assert 0 < r.delay_ms <= 4.0
    impulse = np.zeros(src // 10)
    at = 200
    impulse[at] = 30000
    out = i16(r.process(pcm(impulse)))
    measured_ms = 1000 * (int(np.argmax(np.abs(out))) / dst - at / src)
    assert abs(measured_ms - r.delay_ms) <= 1000 / dst


@pytest.mark.parametrize(("src", "dst"), PAIRS)
def test_output_is_the_input_delayed_by_delay_ms(src: int, dst: int) -> None:
    """Multi-tone signal across the passband vs its exact value at the output rate, shifted
    by delay_ms: a delay off by a tenth of a sample would cost >10 dB here."""
    rng = np.random.default_rng(src * dst)
    freqs = rng.uniform(300, band_top(src, dst), 6)
    phases = rng.uniform(0, 2 * np.pi, 6)

    def signal(t: np.ndarray) -> np.ndarray:
        return np.asarray(3000 * np.sin(2 * np.pi * np.outer(t, freqs) + phases).sum(axis=1))

    r = Resampler(src, dst)
    out = i16(stream(r, pcm(signal(np.arange(src) / src)), frame_bytes(src)))
    want = signal(np.arange(len(out)) / dst - r.delay_ms / 1000)
    steady = slice(dst // 50, len(out))  # after the filter has filled
    err = out[steady] - want[steady]
    assert 10 * math.log10(np.sum(want[steady] ** 2) / np.sum(err**2)) > 55


# Real speech -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def speech() -> dict[int, bytes]:
    """A bundled 24 kHz speech recording; ideal 8 kHz, 8 -> 16 kHz, and 16 kHz copies."""
    pcm24 = agent_speech("agent_options", 24000)
    ref8 = ideal_resample(i16(pcm24), 24000, 8000)
    ref16 = ideal_resample(ref8, 8000, 16000)
    return {24000: pcm24, 8000: as_i16(ref8), 16000: as_i16(ref16),
            -16000: agent_speech("agent_options", 16000)}


def test_speech_24k_to_8k_scores_like_an_ideal_resampler(speech: dict[int, bytes]) -> None:
    r = Resampler(24000, 8000)
    ours = stream(r, speech[24000], frame_bytes(24000))
    ratecv = ratecv_stream(speech[24000], 24000, 8000)
    ours_score, ratecv_score = pesq_scores(speech[8000], ours, ratecv, 8000, r.delay_ms)
    assert ours_score >= 4.3  # narrow-band PESQ tops out near 4.55
    assert ratecv_score < ours_score - 0.5  # unfiltered decimation: audible aliasing


def test_speech_8k_to_16k_scores_like_an_ideal_resampler(speech: dict[int, bytes]) -> None:
    r = Resampler(8000, 16000)
    ours = stream(r, speech[8000], frame_bytes(8000))
    ratecv = ratecv_stream(speech[8000], 8000, 16000)
    ours_score, ratecv_score = pesq_scores(speech[16000], ours, ratecv, 16000, r.delay_ms)
    assert ours_score >= 3.8  # the reference keeps 3.4-4 kHz, which our transition band rolls off
    assert ratecv_score < ours_score - 1.0  # linear interpolation leaves loud images


def test_speech_24k_to_16k_scores_like_an_ideal_resampler(speech: dict[int, bytes]) -> None:
    """What an L16 16 kHz caller hears of a reply, against a brick wall at 8 kHz: wide-band
    PESQ tops out near 4.64, and the reference keeps 7-8 kHz, which ours rolls off."""
    r = Resampler(24000, 16000)
    ours = stream(r, speech[24000], frame_bytes(24000))
    ratecv = ratecv_stream(speech[24000], 24000, 16000)
    ours_score, ratecv_score = pesq_scores(speech[-16000], ours, ratecv, 16000, r.delay_ms)
    assert ours_score >= 4.5
    assert ratecv_score < ours_score - 0.3  # interpolation without a filter: aliasing


def g711_path(codec: Codec, speech: dict[int, bytes]) -> tuple[float, float]:
    """PESQ of both directions of an 8 kHz G.711 carrier, each against the ideal resampler:
    the reply (24 -> 8 kHz, encoded, decoded by the phone; narrow-band) and the caller
    (encoded by the phone, decoded, 8 -> 16 kHz; wide-band)."""
    down, up = Resampler(24000, 8000), Resampler(8000, 16000)
    heard = decoder(codec)(encoder(codec)(stream(down, speech[24000], frame_bytes(24000))))
    to_model = stream(up, decoder(codec)(encoder(codec)(speech[8000])), frame_bytes(8000))
    out_shift, in_shift = (2 * round(r.delay_ms * r.dst_rate / 1000) for r in (down, up))
    return (pesq_of(speech[8000], heard[out_shift:], 8000),
            pesq_of(speech[16000], to_model[in_shift:], 16000))


def test_a_law_path_scores_like_the_mu_law_one(speech: dict[int, bytes]) -> None:
    mu_out, mu_in = g711_path(Codec.PCMU, speech)
    a_out, a_in = g711_path(Codec.PCMA, speech)
    # Companding costs the reply about half a point of narrow-band PESQ (4.3+ above, 4.08
    # here), and the caller next to nothing (3.8+ above): the same for both laws.
    assert min(mu_out, a_out) >= 4.0
    assert min(mu_in, a_in) >= 3.7
    assert abs(a_out - mu_out) <= 0.1
    assert abs(a_in - mu_in) <= 0.1
