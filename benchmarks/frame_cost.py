"""CPU per 20 ms frame of the gateway's own processing, inbound and outbound, piece by piece.

Inbound: a Twilio ``media`` text frame -> the Twilio core (JSON, validation, base64) ->
G.711 decode -> 8->16 kHz -> the Live ``realtimeInput`` message. Outbound: a Live reply frame
(80 ms at 24 kHz, so a quarter of it per 20 ms) -> the Live core (JSON, base64) -> 24->8 kHz ->
G.711 encode -> the Twilio ``media`` message. Sockets and the event loop are not included:
``benchmarks/`` load tests measure the whole process, and ``carrier_frame_cost.py`` each
carrier's whole path through the bridge and the playout, beside Twilio's. Each row is the
median of 21 runs of 5,000 frames, measured in one run so the ratios hold.

Run: .venv/bin/python benchmarks/frame_cost.py
"""

from __future__ import annotations

import base64
import json
import statistics
import time
from collections.abc import Callable

import numpy as np

from gateway import live
from gateway.audio import Resampler, pcm16_to_ulaw, ulaw_to_pcm16
from gateway.carriers import twilio
from gateway.carriers.core import Audio
from gateway.rig.peers.twilio import TwilioPeer

N = 5000
REPEATS = 21
rng = np.random.default_rng(3)
ULAW = pcm16_to_ulaw(rng.normal(0, 3000, 160).astype("<i2").tobytes())
PCM8 = ulaw_to_pcm16(ULAW)
PCM16 = Resampler(8000, 16000).process(PCM8)
REPLY = rng.normal(0, 3000, 1920).astype("<i2").tobytes()  # 80 ms at 24 kHz
REPLY_20 = REPLY[:960]
PCM8_OUT = Resampler(24000, 8000).process(REPLY_20)
PEER = TwilioPeer(call_sid="CA" + "a" * 32, stream_sid="MZ" + "b" * 32)
MEDIA_IN = PEER.media(ULAW)
LIVE_IN = json.dumps({"serverContent": {"modelTurn": {"parts": [{"inlineData": {
    "mimeType": "audio/pcm;rate=24000", "data": base64.b64encode(REPLY).decode()}}]}}})


def started_stream() -> twilio.TwilioStream:
    s = twilio.TwilioStream()
    for frame in PEER.opening():
        s.receive(frame)
    return s


def per_frame_us(work: Callable[[], object], frames_per_call: float = 1.0) -> float:
    runs = []
    for _ in range(REPEATS):
        t0 = time.process_time()
        for _ in range(N):
            work()
        runs.append((time.process_time() - t0) / N / frames_per_call * 1e6)
    return statistics.median(runs)


def main() -> None:
    stream = started_stream()
    up, down = Resampler(8000, 16000), Resampler(24000, 8000)
    rows_in: list[tuple[str, Callable[[], object]]] = [
        ("Twilio core: JSON + checks + base64", lambda: stream.receive(MEDIA_IN)),
        ("G.711 decode", lambda: ulaw_to_pcm16(ULAW)),
        ("resample 8 -> 16 kHz", lambda: up.process(PCM8)),
        ("Live audio message (base64 + template)", lambda: live.audio_message(PCM16)),
    ]
    rows_out: list[tuple[str, Callable[[], object], float]] = [
        ("Live core: JSON + base64 (per 20 ms)", lambda: live.parse_server_message(LIVE_IN),
         4.0),
        ("resample 24 -> 8 kHz", lambda: down.process(REPLY_20), 1.0),
        ("G.711 encode", lambda: pcm16_to_ulaw(PCM8_OUT), 1.0),
        ("Twilio media message (base64 + template)", lambda: stream.play(ULAW), 1.0),
    ]

    def whole_in() -> None:
        for event in stream.receive(MEDIA_IN):
            assert isinstance(event, Audio)
            live.audio_message(up.process(ulaw_to_pcm16(event.payload)))

    def whole_out() -> None:
        for event in live.parse_server_message(LIVE_IN):
            if isinstance(event, live.ModelAudio):
                for i in range(0, len(event.pcm), 960):
                    stream.play(pcm16_to_ulaw(down.process(event.pcm[i:i + 960])))

    print(f"µs of CPU per 20 ms frame (median of {REPEATS} x {N}):")
    print("| inbound piece | µs |\n|---|---|")
    total = 0.0
    for name, fn in rows_in:
        us = per_frame_us(fn)
        total += us
        print(f"| {name} | {us:.2f} |")
    print(f"| sum of pieces | {total:.2f} |")
    print(f"| whole inbound path, measured | {per_frame_us(whole_in):.2f} |")
    print("\n| outbound piece | µs |\n|---|---|")
    total = 0.0
    for name, fn, frames in rows_out:
        us = per_frame_us(fn, frames)
        total += us
        print(f"| {name} | {us:.2f} |")
    print(f"| sum of pieces | {total:.2f} |")
    print(f"| whole outbound path, measured | {per_frame_us(whole_out, 4.0):.2f} |")
    # The same filter on numpy, the fallback where the C kernel was not built. In this tight
    # loop its caches stay warm; inside the serving process it costs several times more.
    up_np, down_np = Resampler(8000, 16000, compiled=False), Resampler(24000, 8000, compiled=False)
    print("\n| resampler, C kernel vs numpy fallback | C µs | numpy µs |\n|---|---|---|")
    print(f"| 8 -> 16 kHz | {per_frame_us(lambda: up.process(PCM8)):.2f} "
          f"| {per_frame_us(lambda: up_np.process(PCM8)):.2f} |")
    print(f"| 24 -> 8 kHz | {per_frame_us(lambda: down.process(REPLY_20)):.2f} "
          f"| {per_frame_us(lambda: down_np.process(REPLY_20)):.2f} |")
    print("\nBaseline for scale (../shared/reference/baselines.md, same machine kind): stdlib "
          "json + base64 + audioop + ratecv 9.9 in / 14.2 out; Pipecat's serializer 12.8 / 11.5.")


if __name__ == "__main__":
    main()
