"""The simulated phone line (:mod:`gateway.rig.line`): its spec, and that its echo, noise and
codec leg are exactly what the spec says, frame by frame and reproducibly."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.audio import AudioFormat, Codec, pcm16_to_ulaw, ulaw_to_pcm16
from gateway.carriers.twilio import FORMAT as ULAW_8K
from gateway.cli import main
from gateway.errors import ConfigError
from gateway.rig.line import LineModel, PhoneLine, active_level_dbov, level_dbov
from gateway.rig.line_noise import recordings
from gateway.rig.line_spec import (
    SPEECH_LEVEL_DBOV,
    EchoSpec,
    LineCodec,
    LineSpec,
    NoiseKind,
    NoiseSpec,
    parse_line,
)
from gateway.rig.loadtest.calls import build_plan
from gateway.rig.peers import PlaybackBuffer
from gateway.rig.simulator.scenario import ScenarioError, scenario_from_dict
from gateway.rig.simulator.speech import caller_pcm16, fixtures
from gateway.rig.simulator.vad import EnergyVad, SpeechStarted

TICK_MS = 20


def _pcm(x: np.ndarray) -> bytes:
    return bytes(np.clip(np.rint(x), -32768, 32767).astype("<i2").tobytes())


def _run(model: LineModel, said: bytes, heard: bytes, extra_ticks: int = 0) -> bytes:
    """Ticks as the phone runs them: send the caller's frame, then hear what played."""
    step = 2 * model.rate * TICK_MS // 1000
    n = max(len(said), len(heard))
    n = -(-n // step) * step + extra_ticks * step
    said, heard = said.ljust(n, b"\0"), heard.ljust(n, b"\0")
    out = []
    for at in range(0, n, step):
        out.append(model.send(said[at:at + step]))
        model.hear(heard[at:at + step])
    return b"".join(out)


# -- the spec ---------------------------------------------------------------------------


def test_a_full_spec_parses_and_prints_back_the_same() -> None:
    spec = parse_line("echo=12dB@120ms, noise=babble@15dB ,codec=ulaw,seed=7")
    assert spec == LineSpec(EchoSpec(12.0, 120), NoiseSpec(NoiseKind.BABBLE, snr_db=15.0),
                            LineCodec.ULAW, 7)
    assert str(spec) == "echo=12dB@120ms,noise=babble@15dB,codec=ulaw,seed=7"
    assert parse_line(str(spec)) == spec
    assert parse_line("NOISE=Car@-45.5dBov").noise == NoiseSpec(NoiseKind.CAR,
                                                                level_dbov=-45.5)
    assert parse_line("noise=pink@10dB").noise.dbov == SPEECH_LEVEL_DBOV - 10  # type: ignore[union-attr]
    assert parse_line("none") == parse_line("") == LineSpec() and LineSpec().clean
    assert str(LineSpec()) == "none"


@pytest.mark.parametrize("bad", [
    "echo=12@120ms", "echo=12dB", "echo=12dB@10ms", "echo=12dB@1500ms", "echo=70dB@120ms",
    "echo=12dB@120.5ms", "noise=traffic@10dB", "noise=white@100dB", "noise=white@10",
    "noise=white@-100dBov", "noise=white@5dBov", "codec=g729", "seed=-1", "seed=x", "volume=3",
    "echo", "echo=", "echo=12dB@120ms,echo=6dB@40ms", "echo=12dB@120ms;noise=white@10dB",
])
def test_a_bad_spec_is_refused_naming_the_fault(bad: str) -> None:
    with pytest.raises(ConfigError, match="line spec"):
        parse_line(bad)


def test_the_reference_speech_level_is_the_bundled_callers() -> None:
    callers = b"".join(caller_pcm16(f.name) for f in fixtures("caller"))
    assert active_level_dbov(callers, 8000) == pytest.approx(SPEECH_LEVEL_DBOV, abs=0.1)


# -- echo -------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [8000, 16000, 24000])
@pytest.mark.parametrize("delay_ms", [20, 120, 250])
def test_the_echo_starts_exactly_delay_samples_after_what_played(rate: int,
                                                                 delay_ms: int) -> None:
    model = LineModel(parse_line(f"echo=0dB@{delay_ms}ms"), rate)
    heard = np.zeros(rate)
    at = rate // 10 + 37  # mid-frame
    heard[at] = 30000.0
    out = np.frombuffer(_run(model, b"", _pcm(heard), extra_ticks=20), "<i2")
    first = int(np.flatnonzero(out)[0])
    assert model.delay_samples == rate * delay_ms // 1000
    assert first == at + model.delay_samples
    # The dispersive part is short: the echo is all within ECHO_PATH_MS of its start.
    assert not np.any(out[first + rate * 8 // 1000:])


@pytest.mark.parametrize("rate", [8000, 16000])
@pytest.mark.parametrize("loss_db", [6.0, 12.0, 20.0])
def test_each_reply_comes_back_return_loss_down_within_half_a_db(rate: int,
                                                                 loss_db: float) -> None:
    for reply in recordings(rate, "agent"):
        heard = _pcm(reply)
        model = LineModel(parse_line(f"echo={loss_db:g}dB@120ms"), rate)
        echo = _run(model, b"", heard, extra_ticks=10)
        assert level_dbov(heard) - level_dbov(echo) == pytest.approx(loss_db, abs=0.5)


def test_the_caller_passes_untouched_and_the_echo_adds_to_it() -> None:
    said = caller_pcm16("caller_book_table")
    reply = _pcm(recordings(8000, "agent")[0])
    quiet = _run(LineModel(parse_line("echo=12dB@40ms"), 8000), said, b"")
    assert quiet[:len(said)] == said
    echo = _run(LineModel(parse_line("echo=12dB@40ms"), 8000), b"", reply)
    both = _run(LineModel(parse_line("echo=12dB@40ms"), 8000), said, reply)
    mixed = np.frombuffer(said.ljust(len(echo), b"\0"), "<i2").astype(int) \
        + np.frombuffer(echo, "<i2")
    # Rounded once, clipped to PCM16: within one step of the sum, but where it clips.
    diff = np.abs(np.frombuffer(both, "<i2") - np.clip(mixed, -32768, 32767))
    assert diff.max() <= 1


def test_a_clear_cuts_the_echo_as_it_cuts_playback() -> None:
    """Through the phone's own buffer: the echo is what played, so a clear ends it."""
    reply = pcm16_to_ulaw(_pcm(recordings(8000, "agent")[1]))

    def call(clear_at: int | None) -> list[bytes]:
        line = PhoneLine(parse_line("echo=6dB@60ms"), ULAW_8K, ULAW_8K)
        playback = PlaybackBuffer(8000 * 60, b"\xff")
        playback.push_audio(reply)
        sent = []
        for tick in range(150):
            sent.append(line.send(b"\xff" * 160))
            if tick == clear_at:
                playback.clear()
            line.hear(playback.play(160).audio)
        return sent

    whole, cut = call(None), call(100)
    assert whole[:103] == cut[:103]  # the same until what played after the clear is due
    loud = [level_dbov(ulaw_to_pcm16(f)) > -50 for f in whole]
    assert sum(loud[103:]) > 30  # the reply went on, and so did its echo
    assert not any(level_dbov(ulaw_to_pcm16(f)) > -70 for f in cut[104:])
    assert all(f == b"\xff" * 160 for f in whole[:3])  # 60 ms: three ticks of nothing


# -- noise ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(NoiseKind), ids=lambda k: k.value)
@pytest.mark.parametrize("rate", [8000, 16000])
def test_noise_is_at_its_snr_below_the_reference_speech_level(kind: NoiseKind,
                                                              rate: int) -> None:
    for snr in (5.0, 20.0):
        model = LineModel(parse_line(f"noise={kind.value}@{snr:g}dB,seed=3"), rate)
        noise = _run(model, bytes(2 * rate * 10), b"")  # 10 s: one whole loop
        assert level_dbov(noise) == pytest.approx(SPEECH_LEVEL_DBOV - snr, abs=0.5)


def test_noise_at_an_absolute_level_and_the_kinds_differ_in_spectrum() -> None:
    def spectrum_low_share(kind: str) -> float:
        noise = _run(LineModel(parse_line(f"noise={kind}@-40dBov"), 8000), bytes(80000), b"")
        assert level_dbov(noise) == pytest.approx(-40, abs=0.5)
        power = np.abs(np.fft.rfft(np.frombuffer(noise, "<i2").astype(float))) ** 2
        f = np.fft.rfftfreq(40000, 1 / 8000)
        return float(power[f < 500].sum() / power.sum())

    shares = {k.value: spectrum_low_share(k.value) for k in NoiseKind}
    assert shares["white"] < 0.2 < shares["pink"] < shares["car"]
    assert shares["car"] > 0.8


def test_the_same_seed_gives_the_same_audio_and_another_seed_other_noise() -> None:
    said, reply = caller_pcm16("caller_goodbye"), _pcm(recordings(8000, "agent")[3])

    def run(spec: str) -> bytes:
        return _run(LineModel(parse_line(spec), 8000), said, reply)

    spec = "echo=12dB@120ms,noise=babble@10dB,codec=ulaw,seed=5"
    assert run(spec) == run(spec)
    assert run(spec) != run(spec.replace("seed=5", "seed=6"))


def test_the_codec_leg_is_the_last_step() -> None:
    said = caller_pcm16("caller_seven_thirty")
    plain = _run(LineModel(parse_line("noise=white@20dB"), 8000), said, b"")
    coded = _run(LineModel(parse_line("noise=white@20dB,codec=ulaw"), 8000), said, b"")
    assert coded == ulaw_to_pcm16(pcm16_to_ulaw(plain)) and coded != plain


def test_a_clean_line_changes_no_byte_at_the_phone() -> None:
    for fmt in (ULAW_8K, AudioFormat(Codec.L16, 16000)):
        line = PhoneLine(LineSpec(), fmt, fmt)
        frame = pcm16_to_ulaw(caller_pcm16("caller_goodbye")[:320]) if fmt is ULAW_8K \
            else caller_pcm16("caller_goodbye")[:640]
        line.hear(fmt.silence(20))
        assert line.send(frame) == frame


def test_a_load_test_gives_each_call_its_own_seed() -> None:
    plan = build_plan(line=parse_line("noise=pink@10dB,seed=4"))
    assert plan.line_for(0) == parse_line("noise=pink@10dB,seed=4")
    assert plan.line_for(3) == parse_line("noise=pink@10dB,seed=7")
    assert build_plan().line_for(3) is None


@pytest.mark.parametrize("argv", [
    ["loadtest", "--local", "--line", "echo=12dB"],
    ["call", "caller.wav", "--url", "http://127.0.0.1:9", "--line", "noise=fog@3dB"],
    ["demo", "--line", "codec=g729"],
])
def test_every_command_refuses_a_bad_line_before_it_starts(
        argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert "line spec" in capsys.readouterr().err


# -- what the simulated server's activity detection makes of the line ------------------------


def _vad(pcm: bytes, margin: float | None) -> list[tuple[str, float]]:
    vad = EnergyVad(noise_margin_db=margin)
    return [(type(e).__name__, round(e.audio_s if isinstance(e, SpeechStarted)
                                     else e.duration_s, 2))
            for e in vad.feed(pcm, 8000) + vad.flush()]


def test_steady_noise_is_speech_to_the_energy_detector_unless_it_tracks_the_floor() -> None:
    said = bytes(2 * 8000 * 2) + caller_pcm16("caller_book_table")  # words from 2.04 s
    [(_, start), (_, words)] = _vad(said, None)
    for kind in ("white", "pink", "car"):
        noisy = _run(LineModel(parse_line(f"noise={kind}@10dB"), 8000), said, b"",
                     extra_ticks=100)
        assert _vad(noisy, None)[0] == ("SpeechStarted", 0.0)  # the noise itself
        [(_, s), (_, d)] = _vad(noisy, 10.0)
        assert abs(s - start) <= 0.06 and abs(d - words) <= 0.1, kind


def test_echo_over_noise_is_still_speech_with_the_floor_tracked() -> None:
    """The echo is speech: a floor-tracking detector hears it as the caller, as it should."""
    reply = _pcm(recordings(8000, "agent")[1])
    echo = _run(LineModel(parse_line("echo=6dB@120ms,noise=pink@20dB"), 8000), b"", reply)
    heard = _vad(echo, 10.0)
    assert heard and heard[0][0] == "SpeechStarted" and heard[0][1] < 0.5


def test_a_scenario_sets_the_noise_margin() -> None:
    assert scenario_from_dict({"vad_noise_margin_db": 10}).vad_noise_margin_db == 10
    assert scenario_from_dict({}).vad_noise_margin_db is None
    for bad in (0, 50, "loud"):
        with pytest.raises(ScenarioError):
            scenario_from_dict({"vad_noise_margin_db": bad})
