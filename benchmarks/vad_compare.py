"""Local turn-taking: which voice activity detector, measured on real speech in noise.

Each detector runs behind the gateway's own :class:`gateway.turns.TurnTracker` (speech must
last ``min_speech_ms`` = 200 ms before it counts; 500 ms of non-speech ends the turn), on what
the bridge would forward: the bundled caller recordings (8 kHz G.711, decoded and resampled to
16 kHz by the gateway's own resampler), with 1.5 to 3 s of line between them, mixed with noise
at a given SNR (speech power over noise power, measured over the speech only):

* ``hum``: stationary low-frequency noise (brown noise, a car or an air conditioner);
* ``hiss``: white noise (a bad line);
* ``babble``: four of the bundled agent replies at once, shifted (a café, a TV): speech-like,
  the hardest case for any detector, and only ever noise to the model.

Per detector and condition: **missed**, utterances with no start between their onset and
0.5 s past their end; **delay**, from the utterance's true onset (first 10 ms above -45 dBFS
in the clean recording) to the moment the start is committed, median and p95 (the barge-in
reaction floor at the gateway: 200 ms of it is the minimum speech duration); **split**,
extra starts inside an utterance (the turn broken in two); **false/min**, starts committed in
60 s of noise alone; **end**, from the utterance's last loud frame to the end committed
(median). **CPU**: microseconds per 20 ms of audio, detector and tracker together, on this
machine. The energy row is the simulated Live server's detector (RMS > 400), for reference.

Run: .venv/bin/python benchmarks/vad_compare.py  (about a minute; --quick: a third of it)
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from gateway.audio import Resampler, rms
from gateway.rig.simulator.speech import caller_pcm16, fixtures, reply_pcm
from gateway.turns import SpeechEnded, SpeechStarted, TurnTracker
from gateway.vad_detectors import SileroDetector, WebRtcDetector

RATE = 16000
FRAME = 640  # 20 ms at 16 kHz, as the bridge forwards it
SEEDS = 3 if "--quick" in sys.argv else 8
NOISE_S = 20 if "--quick" in sys.argv else 60


class EnergyDetector:
    """The simulated Live server's rule, for reference: RMS above 400 (PCM16 units)."""

    frame_bytes = FRAME

    def is_speech(self, frame: bytes) -> bool:
        return rms(frame) > 400


def to16k(pcm8: bytes) -> np.ndarray:
    return np.frombuffer(Resampler(8000, RATE).process(pcm8 + b"\x00" * 400),
                         dtype="<i2").astype(np.float64)


def onset_offset(x: np.ndarray) -> tuple[float, float]:
    """First and last 10 ms window above -45 dBFS, in seconds."""
    win = RATE // 100
    n = len(x) // win
    level = np.sqrt(np.mean(x[:n * win].reshape(n, win) ** 2, axis=1))
    loud = np.nonzero(level > 32768 * 10 ** (-45 / 20))[0]
    return loud[0] * win / RATE, (loud[-1] + 1) * win / RATE


def noise(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    if kind == "hiss":
        out = rng.normal(0, 1, n)
    elif kind == "hum":
        out = np.cumsum(rng.normal(0, 1, n))
        out -= np.convolve(out, np.ones(801) / 801, mode="same")  # no DC drift
    else:
        replies = [np.frombuffer(reply_pcm(f.path), dtype="<i2").astype(np.float64)[::3]
                   for f in fixtures("agent")]  # 24 -> 8 kHz by decimation: it is only noise
        out = np.zeros(n)
        for k in range(4):
            loop = np.concatenate([replies[(k + j) % len(replies)] for j in range(len(replies))])
            loop = np.repeat(loop, 2)  # 8 -> 16 kHz
            shift = int(rng.integers(0, len(loop)))
            reps = -(-(n + shift) // len(loop))
            out += np.tile(loop, reps)[shift:shift + n]
    scaled: np.ndarray = out / np.sqrt(np.mean(out ** 2))
    return scaled


@dataclass
class Track:
    pcm: np.ndarray
    truth: list[tuple[float, float]]  # (onset, offset) in seconds
    speech_power: float


def caller_track(rng: np.random.Generator) -> Track:
    parts: list[np.ndarray] = []
    truth: list[tuple[float, float]] = []
    pos = 0.0
    powers = []
    for f in fixtures("caller"):
        gap = np.zeros(int(RATE * rng.uniform(1.5, 3.0)))
        parts.append(gap)
        pos += len(gap) / RATE
        x = to16k(caller_pcm16(f.name))
        on, off = onset_offset(x)
        truth.append((pos + on, pos + off))
        powers.append(np.mean(x[int(on * RATE):int(off * RATE)] ** 2))
        parts.append(x)
        pos += len(x) / RATE
    parts.append(np.zeros(RATE * 2))
    return Track(np.concatenate(parts), truth, float(np.mean(powers)))


def mix(track: Track, kind: str, snr_db: float | None, rng: np.random.Generator) -> bytes:
    x = track.pcm.copy()
    if snr_db is not None:
        x += noise(kind, len(x), rng) * np.sqrt(track.speech_power / 10 ** (snr_db / 10))
    return bytes(np.clip(np.rint(x), -32768, 32767).astype("<i2").tobytes())


def run(make: Callable[[], object], pcm: bytes) -> tuple[list[tuple[str, float, float]], float]:
    """(kind, committed at s, event position s) per event, and seconds of CPU."""
    tracker = TurnTracker(make(), min_speech_ms=200, silence_ms=500)  # type: ignore[arg-type]
    events: list[tuple[str, float, float]] = []
    t0 = time.process_time()
    for at in range(0, len(pcm) - FRAME + 1, FRAME):
        for ev in tracker.feed(pcm[at:at + FRAME]):
            now = tracker.position_ms / 1000
            if isinstance(ev, SpeechStarted):
                events.append(("start", now, ev.at_ms / 1000))
            elif isinstance(ev, SpeechEnded):
                events.append(("end", now, ev.at_ms / 1000))
    return events, time.process_time() - t0


@dataclass
class Score:
    utterances: int = 0
    missed: int = 0
    split: int = 0
    false_in_gaps: int = 0
    delays: list[float] | None = None
    ends: list[float] | None = None


def score(events: list[tuple[str, float, float]], truth: list[tuple[float, float]],
          s: Score) -> None:
    s.delays = s.delays if s.delays is not None else []
    s.ends = s.ends if s.ends is not None else []
    starts = [e for e in events if e[0] == "start"]
    used: set[int] = set()
    for on, off in truth:
        s.utterances += 1
        mine = [i for i, e in enumerate(starts) if on - 0.1 <= e[2] and e[1] <= off + 0.5]
        used.update(mine)
        if not mine:
            s.missed += 1
            continue
        s.delays.append(starts[mine[0]][1] - on)
        s.split += len(mine) - 1
        later = [e for e in events if e[0] == "end" and e[1] >= off]
        if later:
            s.ends.append(later[0][1] - off)
    s.false_in_gaps += len(starts) - len(used)


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(xs, q)) if xs else float("nan")


def main() -> None:
    detectors: dict[str, Callable[[], object]] = {
        "webrtc-2": lambda: WebRtcDetector(2),
        "webrtc-3": lambda: WebRtcDetector(3),
        "silero": SileroDetector,
        "energy": EnergyDetector,
    }
    conditions: list[tuple[str, float | None]] = [("clean", None)] + [
        (k, snr) for k in ("hum", "hiss", "babble") for snr in (20.0, 10.0)]
    print(f"{'detector':9} {'condition':11} {'missed':>7} {'delay p50':>9} {'p95':>6} "
          f"{'split':>5} {'gap':>4} {'false/min':>9} {'end p50':>7} {'µs/20ms':>8}")
    for name, make in detectors.items():
        cpu_s = audio_s = 0.0
        for kind, snr in conditions:
            s = Score()
            for seed in range(SEEDS):
                rng = np.random.default_rng(seed)
                track = caller_track(rng)
                pcm = mix(track, kind, snr, rng)
                events, cpu = run(make, pcm)
                cpu_s += cpu
                audio_s += len(pcm) / 2 / RATE
                score(events, track.truth, s)
            false_per_min = float("nan")
            if snr is not None:
                rng = np.random.default_rng(100)
                alone = noise(kind, RATE * NOISE_S, rng) * np.sqrt(
                    caller_track(rng).speech_power / 10 ** (snr / 10))
                pcm = np.clip(np.rint(alone), -32768, 32767).astype("<i2").tobytes()
                events, _ = run(make, pcm)
                false_per_min = sum(e[0] == "start" for e in events) * 60 / NOISE_S
            label = kind if snr is None else f"{kind}@{snr:g}dB"
            assert s.delays is not None
            assert s.ends is not None
            print(f"{name:9} {label:11} {s.missed:>3}/{s.utterances:<3} "
                  f"{pct(s.delays, 50) * 1000:>7.0f}ms {pct(s.delays, 95) * 1000:>4.0f}ms "
                  f"{s.split:>5} {s.false_in_gaps:>4} {false_per_min:>9.1f} "
                  f"{pct(s.ends, 50) * 1000:>5.0f}ms "
                  f"{'':>8}")
        print(f"{name:9} {'CPU':11} {'':>7} {'':>9} {'':>6} {'':>5} {'':>4} {'':>9} {'':>7} "
              f"{cpu_s / audio_s * 0.02 * 1e6:>8.1f}")
    print(f"\n{SEEDS} tracks of {len(fixtures('caller'))} utterances per condition; "
          f"false/min: starts in {NOISE_S} s of the noise alone; gap: starts in the pauses "
          f"between utterances")


if __name__ == "__main__":
    main()
