"""Keypad tones end to end on the audio alone: what the rig's receiver takes from the tones
``send_dtmf`` plays, across codecs, rates, levels, twist, timing and line noise; how often
speech is taken for a key (talk-off); and what a receiver costs.

Each trial is 8 random keys made by :func:`gateway.dtmf.tones` with a random tone length
(40-100 ms), gap (40-100 ms), level (-20 to -7 dBm0 low tone) and twist (-4 to +4 dB), with
line noise (white, pink, babble, car) at an SNR, through G.711 mu-law or A-law or linear, at
8 or 16 kHz. A trial is right when exactly its keys come out, in order.

Run: .venv/bin/python benchmarks/dtmf.py [--trials 40] [--seed 1]
"""

from __future__ import annotations

import argparse
import itertools
import time

import numpy as np

from gateway import dtmf
from gateway.audio import Codec, Resampler, decoder, encoder
from gateway.rig.dtmf_receiver import DtmfReceiver
from gateway.rig.line_noise import noise_loop
from gateway.rig.line_spec import NoiseKind
from gateway.rig.simulator.speech import speech_dir
from gateway.wav import read_wav

KEYS = "0123456789*#ABCD"
CODECS = (Codec.PCMU, Codec.PCMA, Codec.L16)
RATES = (8000, 16000)
SNRS = (30.0, 20.0, 15.0, 12.0, 9.0, 6.0)


def trial(rng: np.random.Generator, rate: int, codec: Codec, kind: NoiseKind,
          snr_db: float) -> tuple[int, int, bool]:
    keys = "".join(rng.choice(list(KEYS), 8))
    low = float(rng.uniform(-20.0, -7.0))
    spec = dtmf.ToneSpec(tone_ms=int(rng.integers(40, 101)), gap_ms=int(rng.integers(40, 101)),
                         low_dbm0=low, high_dbm0=min(-4.0, low + float(rng.uniform(-4, 4))),
                         fade_ms=2.0)
    x = np.frombuffer(dtmf.tones(keys, rate, spec), dtype="<i2").astype(np.float64)
    x = np.concatenate([np.zeros(rate // 5), x])
    tone_rms = float(np.sqrt(np.mean(x[x != 0] ** 2)))
    loop = noise_loop(kind, rate, int(rng.integers(1 << 30)))
    start = int(rng.integers(len(loop)))
    noise = np.resize(np.roll(loop, -start), len(x)) * tone_rms / 10 ** (snr_db / 20)
    pcm = np.clip(np.round(x + noise), -32768, 32767).astype("<i2").tobytes()
    heard = "".join(DtmfReceiver(rate).push(decoder(codec)(encoder(codec)(pcm))))
    right = sum(a == b for a, b in zip(heard, keys, strict=False)) if len(heard) == 8 else 0
    return right, len(heard), heard == keys


def accuracy(trials: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    print(f"decode: {trials} trials of 8 keys per cell (codec x rate x noise kind)")
    print(f"{'SNR dB':>7} {'strings right':>14} {'keys right':>11} {'extra/missing':>14}")
    for snr in SNRS:
        strings = keys = off = total = 0
        for codec, rate, kind in itertools.product(CODECS, RATES, NoiseKind):
            for _ in range(trials):
                right, count, ok = trial(rng, rate, codec, kind, snr)
                strings += ok
                keys += right
                off += abs(count - 8)
                total += 1
        print(f"{snr:>7.0f} {100 * strings / total:>13.1f}% {100 * keys / (8 * total):>10.1f}% "
              f"{off:>14}")


def talk_off() -> None:
    seconds = 0.0
    false_keys = 0
    for path in sorted(speech_dir().glob("*.wav")):
        pcm, rate = read_wav(path)
        for to, codec in itertools.product(RATES, (Codec.PCMU, Codec.L16)):
            audio = pcm if rate == to else Resampler(rate, to).process(pcm)
            false_keys += len(DtmfReceiver(to).push(decoder(codec)(encoder(codec)(audio))))
            seconds += len(audio) / 2 / to
    for to in RATES:  # six talkers at once
        babble = noise_loop(NoiseKind.BABBLE, to, 3) * 3000
        false_keys += len(DtmfReceiver(to).push(babble.astype("<i2").tobytes()))
        seconds += len(babble) / to
    print(f"talk-off: {false_keys} keys taken from {seconds:.0f} s of speech and babble")


def cost() -> None:
    for rate in RATES:
        pcm = dtmf.tones(KEYS * 2, rate) * 5
        receiver = DtmfReceiver(rate)
        t0 = time.perf_counter()
        for i in range(0, len(pcm), rate // 25):  # 20 ms pieces, as the phone hears them
            receiver.push(pcm[i:i + rate // 25])
        spent = time.perf_counter() - t0
        audio_s = len(pcm) / 2 / rate
        print(f"receiver at {rate} Hz: {1000 * spent / audio_s:.2f} ms CPU per second of "
              f"audio ({audio_s / spent:.0f}x real time)")
    t0 = time.perf_counter()
    for _ in range(100):
        dtmf.tones("12345678#", 8000)
    print(f"generator: {10 * (time.perf_counter() - t0):.2f} ms for 9 keys at 8 kHz")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    accuracy(args.trials, args.seed)
    talk_off()
    cost()


if __name__ == "__main__":
    main()
