"""Side-by-side figures for the audio core: gateway.audio.Resampler vs audioop.ratecv.

Run: .venv/bin/python benchmarks/audio_quality.py   (about ten seconds)

Every direction a call's audio takes: 8 -> 16 kHz and 24 -> 8 kHz for G.711 lines (mu-law,
A-law), and 24 -> 16 kHz for L16 16 kHz lines (Telnyx, Plivo, Vonage), whose caller needs no
resampling at all on the way in.

Tones at -6 dBFS are streamed in 20 ms frames through each resampler (ratecv with its state
carried, as a gateway would use it). Levels are read from an exact one-second DFT bin after
the start-up transient, so a tone cannot leak into its image's bin. Delay is measured from
the phase slope between 1.0 and 1.1 kHz (the group delay in the speech band). CPU is the
median over repeats of the mean CPU time (process_time) per 20 ms frame across many frames,
on varied frames, the contenders' repeats interleaved. Real speech (a bundled wideband
recording) is scored with PESQ against an ideal brick-wall resampler, per direction and per
line with its codec; if espeak-ng and sox are installed, one more utterance is scored
against sox's `rate -v` conversion.
"""

from __future__ import annotations

import gc
import math
import platform
import shutil
import statistics
import subprocess
import tempfile
import time
import warnings
import wave
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from pesq import pesq

from gateway.audio import (
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
from gateway.rig.simulator.speech import fixture
from gateway.wav import read_wav

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

AMPLITUDE = 16384.0
PASSBAND = range(300, 3401, 100)  # the telephone band (ITU-T G.712)
WIDE_PASSBAND = [50, *range(100, 7001, 100)]  # the wideband one (G.722, AMR-WB)
FRAMES = 5000
REPEATS = 21

Convert = Callable[[bytes], bytes]  # one stateful converter, fed frame by frame


def ours(src: int, dst: int) -> Convert:
    return Resampler(src, dst).process


def ratecv(src: int, dst: int) -> Convert:
    state = None

    def convert(frame: bytes) -> bytes:
        nonlocal state
        out, state = audioop.ratecv(frame, 2, 1, src, dst, state)
        return bytes(out)

    return convert


MAKERS: dict[str, Callable[[int, int], Convert]] = {
    "gateway Resampler": ours,
    "audioop.ratecv (stateful)": ratecv,
}


def tone(freq: float, rate: int, seconds: float = 1.2) -> bytes:
    x = AMPLITUDE * np.sin(2 * np.pi * freq * np.arange(int(rate * seconds)) / rate)
    return np.rint(x).astype("<i2").tobytes()


def streamed(convert: Convert, data: bytes, src: int) -> bytes:
    step = frame_bytes(src)
    return b"".join(convert(data[i : i + step]) for i in range(0, len(data), step))


def bin_at(out: bytes, rate: int, freq: float) -> complex:
    """Complex amplitude of ``freq`` over one second of output, relative to the input tone."""
    start = rate // 10
    y = np.frombuffer(out, dtype="<i2")[start : start + rate].astype(np.float64)
    t = (start + np.arange(rate)) / rate
    return complex(2 * np.dot(y, np.exp(-2j * np.pi * freq * t)) / rate / AMPLITUDE)


def db(x: complex) -> float:
    return 20 * math.log10(max(abs(x), 1e-9))


def shown(level_db: float) -> str:
    # Below about -100 dB the alias rounds away in int16 output; the figure is just a floor.
    return "< -100" if level_db < -100 else f"{level_db:.1f}"


def level(make: Callable[[int, int], Convert], src: int, dst: int, freq: float,
          at: float) -> float:
    return db(bin_at(streamed(make(src, dst), tone(freq, src), src), dst, at))


def measured_delay_ms(make: Callable[[int, int], Convert], src: int, dst: int) -> float:
    phase = [np.angle(bin_at(streamed(make(src, dst), tone(f, src), src), dst, f))
             for f in (1000.0, 1100.0)]
    slope = (phase[0] - phase[1]) % (2 * np.pi)  # delay up to 10 ms is unambiguous
    return 1000 * slope / (2 * np.pi * 100)


def cpu_us(*works: Callable[[], object]) -> list[float]:
    """Per work: median over REPEATS of the mean CPU time of one call across FRAMES calls,
    in µs. Repeats of the works are interleaved so that they share the machine's moods."""
    runs: list[list[float]] = [[] for _ in works]
    gc.disable()
    try:
        for _ in range(REPEATS):
            for work, times in zip(works, runs, strict=True):
                work()
                t0 = time.process_time()  # CPU time: other processes on the box do not count
                for _ in range(FRAMES):
                    work()
                times.append((time.process_time() - t0) / FRAMES * 1e6)
    finally:
        gc.enable()
    return [statistics.median(times) for times in runs]


def frame_work(make: Callable[[int, int], Convert], src: int, dst: int) -> Callable[[], bytes]:
    rng = np.random.default_rng(0)
    frames = [rng.integers(-8000, 8000, frame_bytes(src) // 2).astype("<i2").tobytes()
              for _ in range(50)]
    convert, i = make(src, dst), 0

    def one() -> bytes:
        nonlocal i
        i += 1
        return convert(frames[i % 50])

    return one


def alias_of(freq: int, dst: int) -> int:
    return abs(freq - dst * round(freq / dst))


def direction(title: str, src: int, dst: int, probes: list[int], sweep: list[int],
              passband: Sequence[int] = PASSBAND) -> None:
    word = "image" if dst > src else "alias"

    def lands(f: int) -> int:  # where a tone's image or alias falls at the output
        return alias_of(f, dst) if dst < src else src - f

    cols = [f"{f / 1000:g}k->{lands(f) / 1000:g}k" for f in probes]
    sweep_name = f"worst {word}, {len(sweep)} tones"
    print(f"\n{title}: {word} rejection (dB re. input), passband {passband[0]}-"
          f"{passband[-1]} Hz, delay, CPU")
    head = ["resampler", *cols, sweep_name, "ripple", f"gain {passband[-1] / 1000:g}k",
            "delay decl./meas.", "µs/frame"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    costs = cpu_us(*(frame_work(make, src, dst) for make in MAKERS.values()))
    for (name, make), cost in zip(MAKERS.items(), costs, strict=True):
        def rejection(f: int, make: Callable[[int, int], Convert] = make) -> float:
            return level(make, src, dst, f, lands(f))

        gains = [level(make, src, dst, f, f) for f in passband]
        declared = f"{Resampler(src, dst).delay_ms:.3f}" if make is ours else "n/a"
        row = [name, *(shown(rejection(f)) for f in probes),
               shown(max(rejection(f) for f in sweep)),
               f"{max(gains) - min(gains):.3f} dB", f"{gains[-1]:+.2f} dB",
               f"{declared} / {measured_delay_ms(make, src, dst):.3f} ms",
               f"{cost:.2f}"]
        print("| " + " | ".join(row) + " |")


def codecs() -> None:
    codes = bytes(np.random.default_rng(1).integers(0, 256, 160, dtype=np.uint8))
    pcm8 = ulaw_to_pcm16(codes)
    pcm16 = np.random.default_rng(3).integers(-8000, 8000, 320).astype("<i2").tobytes()
    frame24 = np.random.default_rng(2).integers(-8000, 8000, 480).astype("<i2").tobytes()
    up, down, down16 = Resampler(8000, 16000), Resampler(24000, 8000), Resampler(24000, 16000)
    same = Resampler(16000, 16000)
    works = {
        "ulaw_to_pcm16, 160 codes": lambda: ulaw_to_pcm16(codes),
        "pcm16_to_ulaw, 160 samples": lambda: pcm16_to_ulaw(pcm8),
        "alaw_to_pcm16, 160 codes": lambda: alaw_to_pcm16(codes),
        "pcm16_to_alaw, 160 samples": lambda: pcm16_to_alaw(pcm8),
        "inbound: ulaw -> 8 kHz -> 16 kHz": lambda: up.process(ulaw_to_pcm16(codes)),
        "outbound: 24 kHz -> 8 kHz -> ulaw": lambda: pcm16_to_ulaw(down.process(frame24)),
        "inbound: L16_BE 16 kHz -> 16 kHz (byte swap only)":
            lambda: same.process(swap_bytes(pcm16)),
        "outbound: 24 kHz -> 16 kHz -> L16_BE": lambda: swap_bytes(down16.process(frame24)),
    }
    print("\nCodecs and whole directions, µs of CPU per 20 ms frame")
    print("| work | µs/frame |")
    print("|---|---|")
    for name, cost in zip(works, cpu_us(*works.values()), strict=True):
        print(f"| {name} | {cost:.2f} |")


def ideal(pcm: bytes, src: int, dst: int) -> bytes:
    """A brick-wall reference: whole-signal FFT, cut (or zero-extended) at the new Nyquist."""
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    n_out = len(x) * dst // src
    spectrum = np.fft.rfft(x)[: n_out // 2 + 1]
    spectrum = np.concatenate([spectrum, np.zeros(n_out // 2 + 1 - len(spectrum))])
    y = np.fft.irfft(spectrum, n_out) * (dst / src)
    return np.clip(np.rint(y), -32768, 32767).astype("<i2").tobytes()


def score(ref: bytes, deg: bytes, rate: int, shift: int = 0) -> float:
    """PESQ of ``deg`` (its first ``shift`` samples dropped) against ``ref``."""
    a = np.frombuffer(ref, dtype="<i2").astype(np.float64)
    b = np.frombuffer(deg, dtype="<i2").astype(np.float64)[shift:]
    n = min(len(a), len(b))
    return float(pesq(rate, a[:n], b[:n], "nb" if rate == 8000 else "wb"))


def delay_of(make: Callable[[int, int], Convert], src: int, dst: int) -> int:
    return round(Resampler(src, dst).delay_ms * dst / 1000) if make is ours else 0


def bundled_speech() -> None:
    """Each direction and each line, on a bundled wideband recording, against the ideal."""
    pcm24, rate = read_wav(fixture("agent_options").path)
    assert rate == 24000
    wav = {24000: pcm24, 16000: ideal(pcm24, 24000, 16000), 8000: ideal(pcm24, 24000, 8000)}
    print("\nReal speech (bundled agent_options.wav, 8.7 s, wideband), PESQ against an ideal "
          "brick-wall resampler of the same input")
    print("| direction | " + " | ".join(MAKERS) + " |")
    print("|---|---|---|")
    for src, dst in ((24000, 8000), (8000, 16000), (24000, 16000)):
        ref = ideal(wav[src], src, dst)
        scores = [score(ref, streamed(make(src, dst), wav[src], src), dst,
                        delay_of(make, src, dst)) for make in MAKERS.values()]
        label = f"{src // 1000} -> {dst // 1000} kHz, PESQ {'nb' if dst == 8000 else 'wb'}"
        print(f"| {label} | " + " | ".join(f"{x:.2f}" for x in scores) + " |")

    print("\nWhole lines, gateway.audio's codec and resampler (as the bridge builds them) "
          "beside an ideal resampler with the same codec: caller -> model PESQ wb at 16 kHz; "
          "reply -> caller PESQ at the line's rate")
    print("| line | caller -> model | ideal | reply -> caller | ideal |")
    print("|---|---|---|---|---|")
    for codec, rate in ((Codec.PCMU, 8000), (Codec.PCMA, 8000), (Codec.L16_BE, 16000)):
        enc, dec = encoder(codec), decoder(codec)
        ref_in, ref_out = ideal(wav[rate], rate, 16000), wav[rate]
        model = streamed(ours(rate, 16000), dec(enc(wav[rate])), rate)
        heard = dec(enc(streamed(ours(24000, rate), wav[24000], 24000)))
        row = [score(ref_in, model, 16000, delay_of(ours, rate, 16000)),
               score(ref_in, ideal(dec(enc(wav[rate])), rate, 16000), 16000),
               score(ref_out, heard, rate, delay_of(ours, 24000, rate)),
               score(ref_out, dec(enc(ref_out)), rate)]
        mode = "nb" if rate == 8000 else "wb"
        print(f"| {codec.value} {rate // 1000} kHz (reply PESQ {mode}) | "
              + " | ".join(f"{x:.2f}" for x in row) + " |")


def speech() -> None:
    print("\nReal speech (espeak-ng, 7.5 s), PESQ against sox `rate -v` of the same input")
    if not (shutil.which("espeak-ng") and shutil.which("sox")):
        print("skipped: espeak-ng and sox are not both installed")
        return
    text = ("Thank you for calling. Please hold while I transfer your call to the billing "
            "department; your reference number is four seven two nine.")
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        for args in (["espeak-ng", "-w", f"{d}/tts.wav", text],
                     ["sox", f"{d}/tts.wav", "-r", "24000", "-b", "16", "-c", "1", f"{d}/24.wav"],
                     ["sox", f"{d}/24.wav", "-r", "8000", f"{d}/8.wav", "rate", "-v"],
                     ["sox", f"{d}/8.wav", "-r", "16000", f"{d}/16.wav", "rate", "-v"],
                     ["sox", f"{d}/24.wav", "-r", "16000", f"{d}/w16.wav", "rate", "-v"]):
            subprocess.run(args, check=True, capture_output=True)
        wav = {}
        for name in ("8", "16", "24", "w16"):
            with wave.open(f"{d}/{name}.wav", "rb") as w:
                wav[name] = w.readframes(w.getnframes())
    print("| direction | " + " | ".join(MAKERS) + " |")
    print("|---|---|---|")
    # Input: sox's file at the source rate; reference: sox's conversion of it (8 -> 16 kHz
    # from the 8 kHz file, 24 -> 16 kHz straight from the 24 kHz one).
    for src, dst, name, mode in ((24000, 8000, "8", "nb"), (8000, 16000, "16", "wb"),
                                 (24000, 16000, "w16", "wb")):
        scores = [score(wav[name], streamed(make(src, dst), wav[str(src // 1000)], src),
                        dst, delay_of(make, src, dst)) for make in MAKERS.values()]
        label = f"{src // 1000} -> {dst // 1000} kHz, PESQ {mode}"
        print(f"| {label} | " + " | ".join(f"{x:.2f}" for x in scores) + " |")


def main() -> None:
    started = time.perf_counter()
    print(f"Audio core benchmark: Python {platform.python_version()}, numpy {np.__version__}, "
          f"{platform.machine()}; tones at -6 dBFS in 20 ms frames; "
          f"CPU = median of {REPEATS} x {FRAMES} frames")
    direction("8 kHz -> 16 kHz (what the model hears)", 8000, 16000,
              [300, 1000, 3000, 3400], list(PASSBAND))
    direction("24 kHz -> 8 kHz (what the caller hears)", 24000, 8000,
              [4600, 5000, 7000, 10000, 11500],
              [*range(4600, 7701, 100), *range(8300, 11401, 100)])
    # 8-9 kHz tones land at 7-8 kHz, above the wideband passband: shown at 8.5k, not swept.
    direction("24 kHz -> 16 kHz (what an L16 16 kHz caller hears)", 24000, 16000,
              [8500, 9000, 9500, 10000, 11500], list(range(9000, 11901, 100)),
              WIDE_PASSBAND)
    codecs()
    bundled_speech()
    speech()
    print(f"\n(ran in {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
