"""Side-by-side figures for the audio core: gateway.audio.Resampler vs audioop.ratecv.

Run: .venv/bin/python benchmarks/audio_quality.py   (a few seconds)

Tones at -6 dBFS are streamed in 20 ms frames through each resampler (ratecv with its state
carried, as a gateway would use it). Levels are read from an exact one-second DFT bin after
the start-up transient, so a tone cannot leak into its image's bin. Delay is measured from
the phase slope between 1.0 and 1.1 kHz (the group delay in the speech band). CPU is the
median over repeats of the mean CPU time (process_time) per 20 ms frame across many frames,
on varied frames, the contenders' repeats interleaved. If espeak-ng and sox are installed,
one utterance is also scored with PESQ against sox's `rate -v` conversion.
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
from collections.abc import Callable
from pathlib import Path

import numpy as np
from pesq import pesq

from gateway.audio import Resampler, frame_bytes, pcm16_to_ulaw, ulaw_to_pcm16

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

AMPLITUDE = 16384.0
PASSBAND = range(300, 3401, 100)
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


def direction(title: str, src: int, dst: int, probes: list[int], sweep: list[int]) -> None:
    word = "image" if dst > src else "alias"
    cols = [f"{f / 1000:g}k->{alias_of(f, 8000) / 1000:g}k" if dst < src
            else f"{f / 1000:g}k->{(8000 - f) / 1000:g}k" for f in probes]
    sweep_name = f"worst {word}, {len(sweep)} tones"
    print(f"\n{title}: {word} rejection (dB re. input), passband 300-3400 Hz, delay, CPU")
    head = ["resampler", *cols, sweep_name, "ripple", "gain 3.4k", "delay decl./meas.",
            "µs/frame"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    costs = cpu_us(*(frame_work(make, src, dst) for make in MAKERS.values()))
    for (name, make), cost in zip(MAKERS.items(), costs, strict=True):
        def rejection(f: int, make: Callable[[int, int], Convert] = make) -> float:
            at = alias_of(f, 8000) if dst < src else 8000 - f
            return level(make, src, dst, f, at)

        gains = [level(make, src, dst, f, f) for f in PASSBAND]
        declared = f"{Resampler(src, dst).delay_ms:.3f}" if make is ours else "n/a"
        row = [name, *(shown(rejection(f)) for f in probes),
               shown(max(rejection(f) for f in sweep)),
               f"{max(gains) - min(gains):.3f} dB", f"{gains[-1]:+.2f} dB",
               f"{declared} / {measured_delay_ms(make, src, dst):.3f} ms",
               f"{cost:.2f}"]
        print("| " + " | ".join(row) + " |")


def g711() -> None:
    codes = bytes(np.random.default_rng(1).integers(0, 256, 160, dtype=np.uint8))
    pcm8 = ulaw_to_pcm16(codes)
    frame24 = np.random.default_rng(2).integers(-8000, 8000, 480).astype("<i2").tobytes()
    up, down = Resampler(8000, 16000), Resampler(24000, 8000)
    works = {
        "ulaw_to_pcm16, 160 codes": lambda: ulaw_to_pcm16(codes),
        "pcm16_to_ulaw, 160 samples": lambda: pcm16_to_ulaw(pcm8),
        "inbound: ulaw -> 8 kHz -> 16 kHz": lambda: up.process(ulaw_to_pcm16(codes)),
        "outbound: 24 kHz -> 8 kHz -> ulaw": lambda: pcm16_to_ulaw(down.process(frame24)),
    }
    print("\nG.711 and whole directions, µs of CPU per 20 ms frame")
    print("| work | µs/frame |")
    print("|---|---|")
    for name, cost in zip(works, cpu_us(*works.values()), strict=True):
        print(f"| {name} | {cost:.2f} |")


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
                     ["sox", f"{d}/8.wav", "-r", "16000", f"{d}/16.wav", "rate", "-v"]):
            subprocess.run(args, check=True, capture_output=True)
        wav = {}
        for rate in (8000, 16000, 24000):
            with wave.open(f"{d}/{rate // 1000}.wav", "rb") as w:
                wav[rate] = w.readframes(w.getnframes())
    print("| direction | " + " | ".join(MAKERS) + " |")
    print("|---|---|---|")
    for src, dst, mode in ((24000, 8000, "nb"), (8000, 16000, "wb")):
        ref = np.frombuffer(wav[dst], dtype="<i2").astype(np.float64)
        scores = []
        for make in MAKERS.values():
            shift = round(Resampler(src, dst).delay_ms * dst / 1000) if make is ours else 0
            out = streamed(make(src, dst), wav[src], src)
            deg = np.frombuffer(out, dtype="<i2").astype(np.float64)[shift:]
            n = min(len(ref), len(deg))
            scores.append(f"{pesq(dst, ref[:n], deg[:n], mode):.2f}")
        label = f"{src // 1000} -> {dst // 1000} kHz, PESQ {mode}"
        print(f"| {label} | " + " | ".join(scores) + " |")


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
    g711()
    speech()
    print(f"\n(ran in {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
