"""Echo cancellation and noise suppression on the caller path: the candidates side by side.

    .venv/bin/python benchmarks/echo_noise_processing.py [--quick]

Everything runs on the 8 kHz line (the common phone line; the gateway processes at the
line's rate), with the bundled speech (``gateway/rig/simulator/speech.py``): the agent's
replies are what the caller is played (the far end, the reference), the caller's lines are the
near end. Frames are 20 ms, as carriers send them.

Echo: the far end comes back through a short handset/hybrid response, ``delay`` ms later and
``return loss`` dB down, over a -70 dBFS noise floor. Per candidate and grid point:

- ERLE: echo energy over residual energy, far end active, after the first 3 s;
- convergence: from the first reply audio until ERLE over the next 1 s first reaches 10 dB;
- double-talk: the caller's four lines spoken over the agent (after 5 s); PESQ (narrow-band)
  of what comes out against the clean caller, next to the unprocessed line's, and the word
  error rate pocketsphinx gets on them (the clean lines' WER is the floor);
- added delay: where clicks come out, and the cross-correlation peak of clean speech (which a
  filter's phase shaping also moves), with no reference;
- CPU: µs per 20 ms frame, reference and caller audio together, on this machine.

Noise: the caller's lines, each in pink and in babble noise, at SNR
5/10/20 dB (SNR over the speech's active frames); WER before and after, and false activity:
on 10 s of noise alone at the SNR 10 dB level, the simulator's energy detector
(:class:`gateway.rig.simulator.vad.EnergyVad`, RMS 400) — starts, and loud frames in %.
"""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Callable, Iterable, Sequence

import numpy as np
from echo_noise_engines import (
    I16,
    Engine,
    GatewayPath,
    NoiseGain,
    Passthrough,
    RnNoise,
    SpeexAec,
    WebRtcApm,
)
from pesq import pesq
from pocketsphinx import Decoder

from gateway.audio import Resampler
from gateway.caller_processing import LineProcessing
from gateway.rig.simulator import speech
from gateway.rig.simulator.vad import EnergyVad, SpeechStarted
from gateway.voice_dsp import build_processing

RATE = 8000
FRAME = RATE // 50  # 20 ms
SEED = 17
REPEATS = 5


# -- signals ----------------------------------------------------------------------------------

def _i16(pcm: bytes) -> I16:
    return np.frombuffer(pcm, np.int16)


def agent_line(name: str) -> I16:
    pcm, rate = speech.load_pcm_wav(speech.fixture(name).path)
    return _i16(Resampler(rate, RATE).process(pcm))


def far_end() -> I16:
    return np.concatenate([agent_line(n) for n in
                           ("agent_greeting", "agent_options", "agent_moved", "agent_goodbye")])


def echo_path(far: I16, loss_db: float, delay_ms: float) -> np.ndarray:
    """A handset/hybrid echo: a few ms of decaying, low-passed response, delayed and down."""
    rng = np.random.default_rng(SEED)
    taps = int(RATE * 0.006)
    h = rng.normal(0, 1, taps) * np.exp(-np.arange(taps) / (taps / 4))
    h = np.convolve(h, np.ones(3) / 3)  # a little filtering: the handset's band edge
    h /= np.sqrt(np.sum(h ** 2))
    echo = np.convolve(far.astype(np.float64), h)[:len(far)] * 10 ** (-loss_db / 20)
    d = int(RATE * delay_ms / 1000)
    return np.concatenate([np.zeros(d), echo])[:len(far)]


def floor(n: int, seed: int = SEED) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 32768 * 10 ** (-70 / 20), n)


def to_i16(x: np.ndarray) -> I16:
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


def run(engine: Engine, near: I16, far: I16) -> tuple[I16, float]:
    """The whole signal through ``engine`` in 20 ms frames; the output and µs per frame."""
    n = len(near) - len(near) % FRAME
    out = np.empty(n, np.int16)
    start = time.perf_counter()
    for i in range(0, n, FRAME):
        out[i:i + FRAME] = engine.process(near[i:i + FRAME], far[i:i + FRAME])
    return out, (time.perf_counter() - start) / (n // FRAME) * 1e6


# -- measures ---------------------------------------------------------------------------------

class Asr:
    def __init__(self) -> None:
        self.decoder = Decoder(samprate=16000, loglevel="FATAL")

    def words(self, pcm: I16) -> list[str]:
        d = self.decoder
        d.start_utt()
        d.process_raw(Resampler(RATE, 16000).process(pcm.tobytes()), full_utt=True)
        d.end_utt()
        return d.hyp().hypstr.split() if d.hyp() else []


def norm(text: str) -> list[str]:
    return re.sub(r"[^a-z' ]", " ", text.lower()).split()


def edits(ref: Sequence[str], hyp: Sequence[str]) -> int:
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1]


def wer(asr: Asr, pieces: Iterable[tuple[I16, str]]) -> float:
    errors = words = 0
    for pcm, text in pieces:
        ref = norm(text)
        errors += edits(ref, asr.words(pcm))
        words += len(ref)
    return 100 * errors / words


def erle_db(echo: np.ndarray, out: I16, active: np.ndarray) -> float:
    n = len(out)
    e = np.sum(echo[:n][active[:n]] ** 2)
    r = np.sum(out[active[:n]].astype(np.float64) ** 2)
    return float(10 * np.log10(e / max(r, 1.0)))


def convergence_s(echo: np.ndarray, out: I16, start: int) -> float | None:
    win = RATE // 10
    for w in range(start, len(out) - RATE, win):
        seg = slice(w, w + RATE)
        if 10 * np.log10(np.sum(echo[seg] ** 2) /
                         max(np.sum(out[seg].astype(np.float64) ** 2), 1.0)) >= 10:
            return (w - start) / RATE
    return None


def click_delay_ms(make: Callable[[], Engine]) -> float:
    """Where clicks 200 ms apart come out (median over them): a filter's phase shaping does
    not move this peak, as it can move a cross-correlation peak of speech."""
    x = np.zeros(4 * RATE, np.int16)
    at = np.arange(RATE // 2, len(x) - RATE // 10, RATE // 5)
    at += np.arange(len(at)) % 7 * 3  # at varying offsets within their frame
    x[at] = 20000
    out, _ = run(make(), x, np.zeros(len(x), np.int16))
    windows = [np.abs(out[a:a + RATE // 16].astype(np.int32)) for a in at]
    if np.median([w.max() for w in windows]) < 2000:
        return float("nan")  # the clicks were suppressed as noise: no reading
    return float(1000 * np.median([int(np.argmax(w)) for w in windows]) / RATE)


def added_delay_ms(make: Callable[[], Engine]) -> float:
    clean = np.concatenate([speech_line(f.name) for f in speech.fixtures("caller")])
    out, _ = run(make(), clean, np.zeros(len(clean), np.int16))
    a, b = clean[:len(out)].astype(np.float64), out.astype(np.float64)
    lags = range(0, RATE // 20)  # 0-50 ms
    best = max(lags, key=lambda k: float(np.dot(a[:len(a) - k], b[k:])))
    return 1000 * best / RATE


def speech_line(name: str) -> I16:
    return _i16(speech.caller_pcm16(name))


def active_mask(x: np.ndarray, threshold: float = 300.0) -> np.ndarray:
    """Samples in 20 ms frames whose RMS is above ``threshold``."""
    n = len(x) - len(x) % FRAME
    frames = x[:n].reshape(-1, FRAME).astype(np.float64)
    loud = np.sqrt(np.mean(frames ** 2, axis=1)) > threshold
    return np.concatenate([np.repeat(loud, FRAME), np.zeros(len(x) - n, bool)])


# -- echo -------------------------------------------------------------------------------------

AEC: dict[str, Callable[[], Engine]] = {
    "off (today)": Passthrough,
    "webrtc AEC3": lambda: WebRtcApm(RATE, aec=True, ns=False),
    "webrtc AEC3+NS": lambda: WebRtcApm(RATE, aec=True, ns=True),
    "speex 300 ms, 10 ms fr": lambda: SpeexAec(RATE, preprocess=False, frame_ms=10),
    "speex 300 ms": lambda: SpeexAec(RATE, tail_ms=300, preprocess=False),
    "speex 300 ms +pre": lambda: SpeexAec(RATE, tail_ms=300, preprocess=True),
    "gateway: delay+64ms+gate": lambda: GatewayPath(RATE),
}


def echo_table(asr: Asr, losses: Sequence[float], delays: Sequence[float],
               aec: dict[str, Callable[[], Engine]]) -> None:
    far = far_end()
    callers = [(speech_line(f.name), f.text) for f in speech.fixtures("caller")]
    starts = [5 * RATE + k * 4 * RATE for k in range(len(callers))]
    clean_near = np.zeros(len(far))
    for (pcm, _), at in zip(callers, starts, strict=True):
        clean_near[at:at + len(pcm)] += pcm
    first = int(np.argmax(np.abs(far) > 300))
    active = active_mask(far) & (np.arange(len(far)) >= 3 * RATE)
    floor_wer = wer(asr, callers)
    print(f"\nECHO (8 kHz line; caller WER on clean lines: {floor_wer:.0f} %)")
    print(f"{'canceller':24} {'RL dB':>5} {'delay':>5} {'ERLE dB':>8} {'conv s':>6} "
          f"{'DT PESQ':>7} {'DT WER%':>7} {'µs/20ms':>7}")
    for loss in losses:
        for delay in delays:
            echo = echo_path(far, loss, delay)
            mic = echo + floor(len(far))
            dt = to_i16(mic + clean_near)
            for name, make in aec.items():
                out, cpu = run(make(), to_i16(mic), far)
                erle = erle_db(echo, out, active)
                conv = convergence_s(echo, out, first)
                dt_out, _ = run(make(), dt, far)
                segs = [(dt_out[at:at + len(pcm)], text)
                        for (pcm, text), at in zip(callers, starts, strict=True)]
                ref = np.concatenate([pcm for pcm, _ in callers])
                got = np.concatenate([s for s, _ in segs])
                q = pesq(RATE, ref.astype(np.float32), got.astype(np.float32), "nb")
                print(f"{name:24} {loss:5.0f} {delay:5.0f} {erle:8.1f} "
                      f"{'never' if conv is None else f'{conv:.1f}':>6} {q:7.2f} "
                      f"{wer(asr, segs):7.0f} {cpu:7.0f}")


# -- noise ------------------------------------------------------------------------------------

NS: dict[str, Callable[[], Engine]] = {
    "off (today)": Passthrough,
    "webrtc NS (livekit)": lambda: WebRtcApm(RATE, aec=False, ns=True),
    "webrtc NS+HPF (livekit)": lambda: WebRtcApm(RATE, aec=False, ns=True, hpf=True),
    "webrtc_noise_gain NS2": lambda: NoiseGain(RATE, 2),
    "RNNoise (pyrnnoise)": lambda: RnNoise(RATE),
    "speex preprocess (pyaec)": lambda: SpeexAec(RATE, preprocess=True),
}


def pink(n: int, seed: int) -> np.ndarray:
    spectrum = np.fft.rfft(np.random.default_rng(seed).normal(0, 1, n))
    f = np.arange(len(spectrum))
    f[0] = 1
    return np.fft.irfft(spectrum / np.sqrt(f), n)


def babble(n: int, seed: int) -> np.ndarray:
    """Six talkers at once, reversed so no word is recognisable, each from its own start."""
    rng = np.random.default_rng(seed)
    voices = np.concatenate([far_end()[::-1], speech_line("caller_book_table")[::-1]])
    out = np.zeros(n)
    for _ in range(6):
        at = int(rng.integers(0, len(voices)))
        out += np.resize(np.roll(voices, -at), n)
    return out


def at_snr(clean: I16, noise: np.ndarray, snr_db: float) -> np.ndarray:
    sig = clean[active_mask(clean)].astype(np.float64)
    p_sig, p_noise = float(np.mean(sig ** 2)), float(np.mean(noise ** 2))
    scaled: np.ndarray = noise * np.sqrt(p_sig / p_noise / 10 ** (snr_db / 10))
    return scaled


def noise_table(asr: Asr, snrs: Sequence[float], ns: dict[str, Callable[[], Engine]]) -> None:
    # Each caller line twice, once in each kind of noise (the agent's synthetic lines are
    # beyond pocketsphinx even when clean).
    lines = [(speech_line(f.name), f.text) for f in speech.fixtures("caller")] * 2
    kinds = (pink, babble)
    zeros = np.zeros(10 * RATE, np.int16)
    print(f"\nNOISE (8 kHz line; WER on clean lines: {wer(asr, lines):.0f} %; words: "
          f"{sum(len(norm(t)) for _, t in lines)})")
    print(f"{'suppressor':24} " + " ".join(f"{f'WER% {s:.0f}dB':>10}" for s in snrs)
          + f" {'VAD starts':>10} {'loud %':>7} {'µs/20ms':>7}")
    for name, make in ns.items():
        wers = []
        for snr in snrs:
            noisy = []
            for k, (pcm, text) in enumerate(lines):
                # A second of noise before the words: a suppressor learns the noise first,
                # as on a call, where the line is open before the caller speaks.
                lead = np.zeros(RATE, np.int16)
                clean = np.concatenate([lead, pcm])
                noise = at_snr(pcm, kinds[k * 2 // len(lines)](len(clean), SEED + k), snr)
                out, _ = run(make(), to_i16(clean + noise), zeros)
                noisy.append((out[RATE:], text))
            wers.append(wer(asr, noisy))
        level = [at_snr(lines[0][0], kind(len(zeros), SEED + 9), 10) for kind in kinds]
        starts = loud = frames = 0
        cpu = 0.0
        for noise in level:
            out, cpu = run(make(), to_i16(noise), zeros)
            vad = EnergyVad(400, 60, 500)
            starts += sum(isinstance(e, SpeechStarted) for e in vad.feed(out.tobytes(), RATE))
            rms = np.sqrt(np.mean(out.reshape(-1, FRAME).astype(np.float64) ** 2, axis=1))
            loud += int(np.sum(rms > 400))
            frames += len(rms)
        print(f"{name:24} " + " ".join(f"{w:10.0f}" for w in wers)
              + f" {starts:10d} {100 * loud / frames:7.1f} {cpu:7.0f}")


def delay_table(candidates: dict[str, Callable[[], Engine]]) -> None:
    print("\nADDED DELAY, ms (no reference): where clicks come out; the cross-correlation peak"
          " of clean speech")
    for name, make in candidates.items():
        print(f"{name:24} {click_delay_ms(make):6.1f} {added_delay_ms(make):6.1f}")


def gateway_table() -> None:
    """The product's own path (:mod:`gateway.voice_dsp` behind
    :class:`gateway.caller_processing.LineCleaner`): bytes in and out, the reference handed
    over by play-out time, as a call runs it."""
    far = far_end()
    echo = echo_path(far, 12, 120)
    mic = to_i16(echo + floor(len(far)))
    active = active_mask(far) & (np.arange(len(far)) >= 3 * RATE)
    print("\nGATEWAY PATH (8 kHz, 12 dB / 120 ms echo; µs per 20 ms frame, reference, delay"
          f" search and gate included, quickest of {REPEATS} runs; ERLE as above)")
    for label, choice, playing in (
            ("echo cancellation, agent talking", LineProcessing(True, False), True),
            ("echo cancellation, agent silent", LineProcessing(True, False), False),
            ("noise suppression", LineProcessing(False, True), False),
            ("both, agent talking", LineProcessing(True, True), True)):
        frames = len(mic) // FRAME
        runs = []
        for _ in range(REPEATS):  # the quickest whole run: the machine is shared
            cleaner = build_processing(choice, RATE, RATE)
            assert cleaner is not None
            out = []
            start = time.perf_counter()
            for k in range(frames):
                at = 1000.0 + k * 0.02
                if playing:
                    cleaner.far_end(far[k * FRAME:(k + 1) * FRAME].tobytes(), at)
                out.append(cleaner.near_end(mic[k * FRAME:(k + 1) * FRAME].tobytes(),
                                            at + 0.02))
            runs.append((time.perf_counter() - start) / frames * 1e6)
        cpu = min(runs)
        erle = erle_db(echo, _i16(b"".join(out)), active) if playing else float("nan")
        print(f"{label:34} {cpu:7.1f} µs  ERLE {erle:5.1f} dB")


def installed(candidates: dict[str, Callable[[], Engine]]) -> dict[str, Callable[[], Engine]]:
    """The candidates whose library is installed (``pip install '.[echo-bench]'`` brings the
    ones the gateway does not use)."""
    kept = {}
    for name, make in candidates.items():
        try:
            make()
        except ImportError as exc:
            print(f"({name}: not installed: {exc})")
        else:
            kept[name] = make
    return kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one grid point, one SNR")
    args = parser.parse_args()
    aec, ns = installed(AEC), installed(NS)
    gateway_table()
    asr = Asr()
    delay_table({**aec, **ns})
    if args.quick:
        echo_table(asr, (12,), (120,), aec)
        noise_table(asr, (10,), ns)
    else:
        echo_table(asr, (6, 12, 20), (40, 120, 250), aec)
        noise_table(asr, (5, 10, 20), ns)


if __name__ == "__main__":
    main()
