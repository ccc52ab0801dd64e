"""Delay of a streaming resampler fed 20 ms chunks, as a gateway feeds it (numpy only).

Importable from our venv and from Pipecat's (``benchmarks/pipecat/resampler_delay.py``), so
both resamplers are measured by the same code:

- algorithmic: where an impulse comes out, in signal time (a linear-phase FIR's group delay);
- held back: after each chunk, the input duration pushed minus the output duration released,
  i.e. audio the resampler is sitting on. Mean and max, since a block resampler releases in
  bursts.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

CHUNK_MS = 20


def measure(process: Callable[[bytes], bytes], src: int, dst: int,
            seconds: float = 3.0) -> dict[str, float]:
    chunk = src * CHUNK_MS // 1000
    n = int(src * seconds)
    x = np.zeros(n, np.int16)
    # Impulses 150 ms apart at varying offsets within their chunk.
    spacing = src * 150 // 1000
    starts = [k * spacing + (k * 37) % chunk for k in range(1, n // spacing - 1)]
    x[starts] = 20000
    out: list[bytes] = []
    held: list[float] = []
    pushed = released = 0
    for i in range(0, n, chunk):
        y = process(x[i:i + chunk].tobytes())
        out.append(y)
        pushed += chunk
        released += len(y) // 2
        held.append(pushed / src - released / dst)
    level = np.abs(np.frombuffer(b"".join(out), np.int16).astype(np.int64))
    delays = []
    for s in starts:
        lo = s * dst // src
        window = level[lo:lo + dst * 140 // 1000]
        if window.size and window.max() > 0:
            delays.append((lo + int(window.argmax())) / dst - s / src)
    steady = held[len(held) // 4:]  # past the start-up transient
    return {"algorithmic_ms": round(1000 * float(np.median(delays)), 2) if delays else -1.0,
            "held_mean_ms": round(1000 * float(np.mean(steady)), 2),
            "held_max_ms": round(1000 * float(np.max(steady)), 2)}


def ours() -> dict[str, dict[str, float]]:
    from gateway.audio import Resampler  # noqa: PLC0415 - only in our venv

    return {f"{a}->{b}": measure(Resampler(a, b).process, a, b)
            for a, b in ((8000, 16000), (24000, 8000), (24000, 16000))}


if __name__ == "__main__":
    import json

    print(json.dumps(ours(), indent=1))
