"""The audio core: G.711 against an independent reference, codecs and formats, and the
streaming resampler's mechanics (chunking, reset, the compiled kernel). Its filter quality
and real-speech scores are in ``test_audio_quality.py``."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway import audio
from gateway.audio import (
    ULAW_RATE,
    AudioFormat,
    Codec,
    Resampler,
    alaw_to_pcm16,
    decoder,
    encoder,
    frame_bytes,
    pcm16_to_alaw,
    pcm16_to_ulaw,
    swap_bytes,
    ulaw_to_pcm16,
)
from gateway.errors import AudioFormatError
from tests.audio_measure import i16, noise, pcm, stream, tone

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

PAIRS = [(8000, 16000), (16000, 8000), (24000, 8000), (8000, 24000), (24000, 16000),
         (16000, 24000)]

# G.711 -------------------------------------------------------------------------------

def ref_ulaw_decode(codes: np.ndarray) -> np.ndarray:
    """ITU-T G.711 mu-law expansion, written out independently of audioop."""
    u = ~codes.astype(np.int64) & 0xFF
    t = (((u & 0x0F) << 3) + 0x84) << ((u >> 4) & 7)
    return np.where(u & 0x80, 0x84 - t, t - 0x84)


def ref_ulaw_encode(x: np.ndarray) -> np.ndarray:
    """G.711 mu-law compression of 16-bit samples (the 14-bit Sun/CCITT reference)."""
    v = x.astype(np.int64) >> 2
    mask = np.where(v < 0, 0x7F, 0xFF)
    mag = np.minimum(np.abs(v), 8159) + 33
    seg = np.searchsorted(np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF]), mag)
    code = np.where(seg >= 8, 0x7F, (seg << 4) | ((mag >> (seg + 1)) & 0xF))
    return code ^ mask


def test_ulaw_decode_all_codes_matches_reference_and_audioop() -> None:
    codes = bytes(range(256))
    got = np.frombuffer(ulaw_to_pcm16(codes), dtype="<i2")
    assert got.tolist() == ref_ulaw_decode(np.arange(256)).tolist()
    assert ulaw_to_pcm16(codes) == audioop.ulaw2lin(codes, 2)
    assert got.min() == -32124 and got.max() == 32124


def test_ulaw_encode_every_pcm16_value_matches_reference_and_audioop() -> None:
    every = np.arange(-32768, 32768, dtype=np.int64)
    data = every.astype("<i2").tobytes()
    assert list(pcm16_to_ulaw(data)) == ref_ulaw_encode(every).tolist()
    assert pcm16_to_ulaw(data) == audioop.lin2ulaw(data, 2)


def test_ulaw_random_pcm_matches_audioop() -> None:
    for seed in range(5):
        data = noise(seed, 4001)
        assert pcm16_to_ulaw(data) == audioop.lin2ulaw(data, 2)
        assert ulaw_to_pcm16(data) == audioop.ulaw2lin(data, 2)


def test_ulaw_round_trip() -> None:
    codes = bytes(range(256))
    decoded = ulaw_to_pcm16(codes)
    assert ulaw_to_pcm16(pcm16_to_ulaw(decoded)) == decoded
    # 0x7F is mu-law's "negative zero"; every other code is its own round trip.
    assert pcm16_to_ulaw(decoded) == codes.replace(b"\x7f", b"\xff")
    x = i16(tone(1013, 8000))  # not a divisor of the rate, so it visits many codes
    err = i16(ulaw_to_pcm16(pcm16_to_ulaw(pcm(x)))) - x
    assert 10 * math.log10(np.sum(x**2) / np.sum(err**2)) > 35


def test_ulaw_empty_and_odd_length() -> None:
    assert ulaw_to_pcm16(b"") == b"" and pcm16_to_ulaw(b"") == b""
    assert len(ulaw_to_pcm16(b"\xff" * 161)) == 322
    with pytest.raises(AudioFormatError):
        pcm16_to_ulaw(b"\x00" * 321)


def ref_alaw_decode(codes: np.ndarray) -> np.ndarray:
    """ITU-T G.711 A-law expansion (even bits inverted, sign in the top bit), written out
    independently of audioop."""
    a = codes.astype(np.int64) ^ 0x55
    seg = (a & 0x70) >> 4
    t = ((a & 0x0F) << 4) + np.where(seg == 0, 8, 0x108)
    t = np.where(seg > 1, t << np.maximum(seg - 1, 0), t)
    return np.where(a & 0x80, t, -t)


def ref_alaw_encode(x: np.ndarray) -> np.ndarray:
    """G.711 A-law compression of 16-bit samples (13-bit segments, as the ITU reference)."""
    v = x.astype(np.int64) >> 3
    mask = np.where(v >= 0, 0xD5, 0x55)
    mag = np.where(v >= 0, v, -v - 1)
    seg = np.searchsorted(np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF]), mag)
    step = np.where(seg < 2, 1, seg)
    code = np.where(seg >= 8, 0x7F, (np.minimum(seg, 7) << 4) | ((mag >> step) & 0xF))
    return code ^ mask


def test_alaw_decode_all_codes_matches_reference_and_audioop() -> None:
    codes = bytes(range(256))
    got = np.frombuffer(alaw_to_pcm16(codes), dtype="<i2")
    assert got.tolist() == ref_alaw_decode(np.arange(256)).tolist()
    assert alaw_to_pcm16(codes) == audioop.alaw2lin(codes, 2)
    assert got.min() == -32256 and got.max() == 32256
    assert got[0xD5] == 8 and got[0x55] == -8  # the smallest steps either side of zero


def test_alaw_encode_every_pcm16_value_matches_reference_and_audioop() -> None:
    every = np.arange(-32768, 32768, dtype=np.int64)
    data = every.astype("<i2").tobytes()
    assert list(pcm16_to_alaw(data)) == ref_alaw_encode(every).tolist()
    assert pcm16_to_alaw(data) == audioop.lin2alaw(data, 2)


def test_alaw_round_trip_is_exact_for_every_code_and_good_for_a_tone() -> None:
    codes = bytes(range(256))
    assert pcm16_to_alaw(alaw_to_pcm16(codes)) == codes  # A-law has no negative zero
    x = i16(tone(1013, 8000))
    err = i16(alaw_to_pcm16(pcm16_to_alaw(pcm(x)))) - x
    assert 10 * math.log10(np.sum(x**2) / np.sum(err**2)) > 35
    with pytest.raises(AudioFormatError):
        pcm16_to_alaw(b"\x00" * 3)


@pytest.mark.parametrize("codec", list(Codec))
def test_every_codec_round_trips_through_its_decoder_and_encoder(codec: Codec) -> None:
    data = noise(7, 800)
    encoded = encoder(codec)(data)
    assert len(encoded) == len(data) // 2 * codec.sample_bytes
    back = decoder(codec)(encoded)
    if codec in (Codec.L16, Codec.L16_BE):
        assert back == data  # linear: lossless
    else:
        assert encoder(codec)(back) == encoded  # companded: stable after one pass
    # Silence: zero, but for A-law, whose smallest codes are +-8 (it has no zero).
    assert np.abs(i16(decoder(codec)(codec.silence * 4))).max() <= 8


def test_big_endian_l16_is_the_bytes_swapped() -> None:
    assert encoder(Codec.L16_BE)(b"\x01\x02\x03\x04") == b"\x02\x01\x04\x03"
    assert decoder(Codec.L16_BE)(b"\x02\x01") == b"\x01\x02"
    with pytest.raises(AudioFormatError):
        swap_bytes(b"\x00")


def test_a_format_knows_its_frames_and_refuses_what_no_carrier_sends() -> None:
    wide = AudioFormat(Codec.L16, 16000)
    assert (wide.frame_bytes, wide.bytes_per_second, str(wide)) == (640, 32000, "L16/16000")
    assert AudioFormat(Codec.PCMU, 8000, frame_ms=100).frame_bytes == 800
    assert wide.ms(3200) == 100.0
    assert AudioFormat(Codec.PCMA, 8000).silence(20) == b"\xd5" * 160
    with pytest.raises(AudioFormatError, match="rate"):
        AudioFormat(Codec.L16, 44100)
    with pytest.raises(AudioFormatError, match="whole samples"):
        AudioFormat(Codec.PCMU, 8000, frame_ms=0)


def test_frame_bytes() -> None:
    assert ULAW_RATE == 8000
    assert [frame_bytes(r) for r in (8000, 16000, 24000)] == [320, 640, 960]
    assert frame_bytes(8000, 10) == 160
    assert frame_bytes(22050) == 882
    with pytest.raises(ValueError, match="whole"):
        frame_bytes(11025, 10)


# Resampler mechanics --------------------------------------------------------------------

@settings(max_examples=80, deadline=None)
@given(pair=st.sampled_from(PAIRS), seed=st.integers(0, 2**32 - 1),
       chunks=st.lists(st.integers(0, 1200), max_size=30), compiled=st.booleans())
def test_streaming_in_any_chunks_is_bit_identical_to_one_shot(
    pair: tuple[int, int], seed: int, chunks: list[int], compiled: bool
) -> None:
    data = noise(seed, sum(chunks))
    one_shot = Resampler(*pair, compiled=compiled).process(data)
    r, parts, at = Resampler(*pair, compiled=compiled), [], 0
    for n in chunks:
        parts.append(r.process(data[2 * at : 2 * (at + n)]))
        at += n
    assert b"".join(parts) == one_shot
    src, dst = pair
    assert len(one_shot) == 2 * -(-sum(chunks) * dst // src)  # every output the input allows


@pytest.mark.parametrize(("src", "dst"), PAIRS)
def test_20ms_frames_and_single_samples_match_one_shot(src: int, dst: int) -> None:
    data = noise(src + dst, src // 2)
    one_shot = Resampler(src, dst).process(data)
    assert stream(Resampler(src, dst), data, frame_bytes(src)) == one_shot
    allowed = -(-500 * dst // src)  # outputs whose inputs are all within the first 500
    assert stream(Resampler(src, dst), data[:1000], 2) == one_shot[: 2 * allowed]
    assert len(Resampler(src, dst).process(data[: frame_bytes(src)])) == frame_bytes(dst)


def test_long_one_shot_matches_frames() -> None:
    data = noise(5, 200_000)  # more than one internal slice
    assert Resampler(24000, 8000).process(data) == stream(Resampler(24000, 8000), data, 960)


@pytest.mark.parametrize("compiled", [True, False])
@pytest.mark.parametrize(("src", "dst"), PAIRS)
def test_reset_forgets_everything(src: int, dst: int, compiled: bool) -> None:
    data = noise(7, src // 5)
    r = Resampler(src, dst, compiled=compiled)
    r.process(noise(8, 1001))  # leaves history and a partial block behind
    r.reset()
    assert stream(r, data, 226) == Resampler(src, dst).process(data)


def test_identity_is_passthrough() -> None:
    r = Resampler(16000, 16000)
    data = noise(1, 333)
    assert r.process(data) == data
    assert r.delay_ms == 0.0
    r.reset()
    assert r.process(b"") == b""


@pytest.mark.parametrize("compiled", [True, False])
@pytest.mark.parametrize(("src", "dst"), [*PAIRS, (8000, 8000)])
def test_odd_byte_count_raises_and_leaves_state_alone(src: int, dst: int, compiled: bool) -> None:
    data = noise(3, 500)
    r = Resampler(src, dst, compiled=compiled)
    first = r.process(data[:300])
    with pytest.raises(AudioFormatError):
        r.process(b"\x00" * 321)
    assert first + r.process(data[300:]) == Resampler(src, dst).process(data)


# The compiled kernel -------------------------------------------------------------------

def test_the_compiled_kernel_was_built_and_is_the_default() -> None:
    # The extension is optional at install time, so a missing compiler would otherwise
    # pass every other test on the numpy path and leave the gateway slower unnoticed.
    assert audio.COMPILED, "gateway._fir was not built: is a C compiler installed?"
    assert Resampler(8000, 16000).compiled
    assert not Resampler(8000, 16000, compiled=False).compiled
    assert not Resampler(8000, 8000).compiled


@settings(max_examples=60, deadline=None)
@given(pair=st.sampled_from([*PAIRS, (44100, 8000), (8000, 44100), (22050, 16000)]),
       seed=st.integers(0, 2**32 - 1), chunks=st.lists(st.integers(0, 1500), max_size=25),
       reset_at=st.integers(0, 25))
def test_compiled_kernel_gives_the_numpy_path_s_bytes(
    pair: tuple[int, int], seed: int, chunks: list[int], reset_at: int
) -> None:
    # Full-scale noise, so clipping is exercised too; a reset part way through.
    data = np.random.default_rng(seed).integers(-32768, 32768, sum(chunks)).astype("<i2")
    fast, slow = Resampler(*pair), Resampler(*pair, compiled=False)
    at = 0
    for i, n in enumerate(chunks):
        if i == reset_at:
            fast.reset()
            slow.reset()
        piece = data[at : at + n].tobytes()
        assert fast.process(piece) == slow.process(piece)
        at += n


def test_compiled_kernel_rejects_a_malformed_filter() -> None:
    from gateway import _fir

    with pytest.raises(ValueError, match="up \\* taps"):
        _fir.Fir(b"", 1, 1)
    with pytest.raises(ValueError, match="up \\* taps"):
        _fir.Fir(np.zeros(5).tobytes(), 2, 1)
    with pytest.raises(ValueError, match="up \\* taps"):
        _fir.Fir(np.zeros(4).tobytes(), 0, 1)


def test_compiled_kernel_refuses_to_run_uninitialised() -> None:
    from gateway import _fir

    bare = _fir.Fir.__new__(_fir.Fir)
    with pytest.raises(RuntimeError, match="not initialised"):
        bare.process(b"\x00\x00")
    with pytest.raises(RuntimeError, match="not initialised"):
        bare.reset()


def test_without_the_kernel_the_numpy_path_serves(monkeypatch: pytest.MonkeyPatch) -> None:
    data = noise(11, 4000)
    want = Resampler(8000, 16000).process(data)
    monkeypatch.setattr(audio, "_fir", None)
    with pytest.raises(ValueError, match="not built"):
        Resampler(8000, 16000, compiled=True)
    assert Resampler(8000, 16000, compiled=False).process(data) == want


def test_bad_rates_raise() -> None:
    with pytest.raises(ValueError, match="positive"):
        Resampler(0, 8000)
    with pytest.raises(ValueError, match="impractical"):
        Resampler(8000, 8001)


def test_full_scale_overshoot_saturates_instead_of_wrapping() -> None:
    for src, dst in [(8000, 16000), (24000, 8000)]:
        n = np.arange(src)
        square = np.where(np.sin(2 * np.pi * 500 * n / src + 0.1) >= 0, 32767, -32768)
        out = i16(Resampler(src, dst).process(square.astype("<i2").tobytes())).astype(np.int64)
        assert out.max() == 32767 and out.min() == -32768  # the Gibbs overshoot was clipped
        assert np.abs(np.diff(out)).max() < 50000  # no jump of ~65536 from a wraparound
