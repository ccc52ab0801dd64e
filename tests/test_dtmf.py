"""Keypad tones (gateway.dtmf) as a Q.24 receiver would measure them, and the rig's receiver
(gateway.rig.dtmf_receiver): every key through G.711 and line noise, never speech."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from gateway import dtmf
from gateway.audio import Codec, Resampler, decoder, encoder
from gateway.goertzel import ToneBank
from gateway.rig.dtmf_receiver import DtmfReceiver
from gateway.rig.line_noise import noise_loop
from gateway.rig.line_spec import NoiseKind
from gateway.rig.simulator.speech import speech_dir
from gateway.wav import read_wav

ALL = "0123456789*#ABCD"
RATES = [8000, 16000]
Floats = npt.NDArray[np.float64]


def samples(pcm: bytes) -> Floats:
    return np.frombuffer(pcm, dtype="<i2").astype(np.float64)


def segments(x: Floats) -> list[tuple[bool, int]]:
    """(tone?, length) runs: a gap is exact silence, a tone anything else (its first sample,
    a sine's zero crossing, read as tone)."""
    quiet = x == 0
    # A tone's own zeros are single samples; a gap is a run of them.
    runs: list[tuple[bool, int]] = []
    i = 0
    while i < len(x):
        j = i
        while j < len(x) and quiet[j] == quiet[i]:
            j += 1
        runs.append((not quiet[i] or j - i < 4, j - i))
        i = j
    merged: list[tuple[bool, int]] = []
    for tone, n in runs:
        if merged and merged[-1][0] == tone:
            merged[-1] = (tone, merged[-1][1] + n)
        else:
            merged.append((tone, n))
    return merged


def dbm0(power: float) -> float:
    """A bin's power (A**2 / 4) as the sine's level in dBm0."""
    return 20 * float(np.log10(2 * np.sqrt(power) / 32767)) + dtmf.FULL_SCALE_DBM0


# -- the generator -----------------------------------------------------------------------


@pytest.mark.parametrize("rate", RATES)
def test_each_key_is_its_q23_pair_at_the_set_levels_and_twist(rate: int) -> None:
    near = np.arange(-20.0, 21.0)
    for key in ALL:
        x = samples(dtmf.tones(key, rate))
        steady = x[rate * 10 // 1000: rate * 90 // 1000]  # inside the fades
        low, high = dtmf.FREQUENCIES[key]
        # The strongest of the eight keypad frequencies are this key's two...
        eight = ToneBank(rate, len(steady), dtmf.LOW + dtmf.HIGH).powers(steady)
        assert {dtmf.LOW[np.argmax(eight[:4])], dtmf.HIGH[np.argmax(eight[4:])]} == {low, high}
        # ...each peaking within 1 Hz of Q.23's (which allows 1.5 %).
        for f in (low, high):
            scan = ToneBank(rate, len(steady), list(f + near)).powers(steady)
            assert abs(near[np.argmax(scan)]) <= 1.0, (key, f)
        pl, ph = ToneBank(rate, len(steady), (low, high)).powers(steady)
        assert dbm0(pl) == pytest.approx(-9.0, abs=0.2)
        assert dbm0(ph) == pytest.approx(-7.0, abs=0.2)
        # Both tones between -10 and -7 dBm0; the high one 2 dB stronger (twist +2 dB).
        assert dbm0(ph) - dbm0(pl) == pytest.approx(2.0, abs=0.2)
        assert np.max(np.abs(x)) < 32767 * 0.7  # no clipping, with room


@pytest.mark.parametrize("rate", RATES)
def test_tones_and_gaps_last_what_the_spec_says(rate: int) -> None:
    x = samples(dtmf.tones("1#9", rate))
    ms = [(tone, round(n * 1000 / rate)) for tone, n in segments(x)]
    assert ms == [(True, 100), (False, 100)] * 3
    spec = dtmf.ToneSpec(tone_ms=60, gap_ms=40, pause_ms=300)
    x = samples(dtmf.tones("5,5", rate, spec))
    ms = [(tone, round(n * 1000 / rate)) for tone, n in segments(x)]
    assert ms == [(True, 60), (False, 40 + 300), (True, 60), (False, 40)]
    assert dtmf.duration_ms("5,5", spec) == len(x) * 1000 // rate == 500


def test_each_tone_fades_in_and_out_so_it_does_not_click() -> None:
    rate = 8000
    x = samples(dtmf.tones("0", rate))
    peak = np.max(np.abs(x))
    fade = rate * 5 // 1000
    assert np.max(np.abs(x[:fade // 4])) < 0.25 * peak
    assert np.max(np.abs(x[rate // 10 - fade // 4: rate // 10])) < 0.25 * peak
    # No step anywhere larger than a full-level tone's own steepest one.
    assert np.max(np.abs(np.diff(x))) <= 1.05 * np.max(np.abs(np.diff(x[fade:-fade - 800])))


def test_key_strings_are_checked_and_normalised() -> None:
    assert dtmf.parse("1 2-3a,w") == "123A,w"
    for bad, why in [("12x", "'x' (position 3)"), ("", "no keys"), (",,", "no keys"),
                     ("1" * 33, "at most 32")]:
        with pytest.raises(dtmf.DtmfError, match=re.escape(why)):
            dtmf.parse(bad)
    with pytest.raises(dtmf.DtmfError, match="receiver needs 40"):
        dtmf.ToneSpec(tone_ms=30)
    with pytest.raises(dtmf.DtmfError, match="must not clip"):
        dtmf.ToneSpec(high_dbm0=0.0)


def test_long_digit_runs_are_masked_to_their_last_two() -> None:
    assert dtmf.mask("2") == "2"
    assert dtmf.mask("*9") == "*9"
    assert dtmf.mask("123") == "123"
    assert dtmf.mask("12345678#") == "******78#"
    assert dtmf.mask("1,4111111111111111#") == "1,**************11#"


# -- the receiver ------------------------------------------------------------------------


def line(pcm: bytes, rate: int, codec: Codec, snr_db: float, seed: int = 7) -> bytes:
    """``pcm`` with pink line noise ``snr_db`` below the tones, through ``codec``."""
    x = samples(pcm)
    level = float(np.sqrt(np.mean(x[x != 0] ** 2)))
    loop = noise_loop(NoiseKind.PINK, rate, seed)
    noisy = x + np.resize(loop, len(x)) * level / 10 ** (snr_db / 20)
    out = np.clip(np.round(noisy), -32768, 32767).astype("<i2").tobytes()
    return decoder(codec)(encoder(codec)(out))


@pytest.mark.parametrize("codec", [Codec.PCMU, Codec.PCMA, Codec.L16])
@pytest.mark.parametrize("rate", RATES)
def test_every_key_is_heard_through_g711_and_line_noise(rate: int, codec: Codec) -> None:
    keys = ALL + "11" + "5,5"
    for snr in (30.0, 12.0):
        receiver = DtmfReceiver(rate)
        heard = receiver.push(line(dtmf.tones(keys, rate), rate, codec, snr))
        assert "".join(heard) == keys.replace(",", ""), (snr, heard)
    # Each taken 40-45 ms into its tone (every 200 ms), as Q.24's minimum asks.
    into = [k.at_ms - 200 * i for i, k in enumerate(receiver.keys[:len(ALL)])]
    assert all(40 <= t <= 50 for t in into), into


@pytest.mark.parametrize("rate", RATES)
def test_the_shortest_keys_q24_accepts_are_heard_and_blips_are_not(rate: int) -> None:
    short = dtmf.ToneSpec(tone_ms=40, gap_ms=40, fade_ms=2)
    assert DtmfReceiver(rate).push(dtmf.tones("147*", rate, short)) == list("147*")
    blips = samples(dtmf.tones("2", rate, short))
    blips[rate * 20 // 1000: rate * 40 // 1000] = 0  # 20 ms of tone
    assert DtmfReceiver(rate).push(blips.astype("<i2").tobytes()) == []


def test_one_long_press_is_one_key_and_pieces_of_any_size_make_no_difference() -> None:
    rate = 8000
    long_press = dtmf.ToneSpec(tone_ms=700, gap_ms=100)
    pcm = dtmf.tones("3", rate, long_press) + dtmf.tones("33", rate)
    assert DtmfReceiver(rate).push(pcm) == ["3", "3", "3"]
    receiver = DtmfReceiver(rate)
    heard = [k for i in range(0, len(pcm), 74) for k in receiver.push(pcm[i:i + 74])]
    assert heard == ["3", "3", "3"]


def test_a_twisted_pair_is_not_a_key() -> None:
    rate = 8000
    twisted = dtmf.ToneSpec(low_dbm0=-5.0, high_dbm0=-20.0)  # high 15 dB under the low
    assert DtmfReceiver(rate).push(dtmf.tones("8", rate, twisted)) == []


@pytest.mark.parametrize("path", sorted(speech_dir().glob("*.wav")), ids=lambda p: p.stem)
def test_speech_is_never_taken_for_keys(path: Path) -> None:
    pcm, rate = read_wav(path)
    for to in RATES:
        audio = pcm if rate == to else Resampler(rate, to).process(pcm)
        for codec in (Codec.PCMU, Codec.L16):
            assert DtmfReceiver(to).push(decoder(codec)(encoder(codec)(audio))) == []
