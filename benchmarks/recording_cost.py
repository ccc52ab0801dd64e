"""CPU cost of recording and capturing one call-minute, beside the audio path it rides on.

A call-minute is 3,000 inbound 20 ms frames and, with the model speaking half the time, 375
reply chunks of 80 ms (sent as Twilio media) and 10 barge-ins. The work is what the gateway
does per call with recording or capture on: placing audio on the caller's clock and writing
the stereo WAV once a second (recording); one JSON line per inbound frame, appended once a
second (capture). Both channels are PCM16 at the caller's 8 kHz, as the bridge and the
playout feed them: the caller's audio as decoded for the Live API, the reply through the
recording's own decode (:class:`gateway.recording.Feed`). For scale, the same minute of the
gateway's own per-frame audio work (decode, resample both ways, encode) is timed in the same
run.

Run: .venv/bin/python benchmarks/recording_cost.py
"""

from __future__ import annotations

import base64
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from gateway.audio import Resampler, pcm16_to_ulaw, ulaw_to_pcm16
from gateway.capture import _append
from gateway.carriers import twilio
from gateway.recording import CallRecording, Feed, StereoWavWriter

FRAMES = 3000
REPEATS = 5
rng = np.random.default_rng(7)
SPEECH = pcm16_to_ulaw((rng.normal(0, 3000, 8000 * 60)).astype("<i2").tobytes())
SPEECH_PCM = ulaw_to_pcm16(SPEECH)  # the caller's audio as the bridge decoded it
REPLY_24K = (rng.normal(0, 3000, 1920)).astype("<i2").tobytes()  # 80 ms at 24 kHz


def recording_minute(folder: Path) -> float:
    rec = CallRecording(twilio.FORMAT.rate)
    writer, feed = StereoWavWriter(folder / "call.wav", rec.rate), Feed(twilio.FORMAT, rec.rate)
    t0 = time.process_time()
    for n in range(FRAMES):
        at = n * 0.02
        rec.caller(SPEECH_PCM[n * 320:(n + 1) * 320], at)
        if (n // 250) % 2 and n % 4 == 0:  # model speaking half the time, 80 ms chunks
            rec.agent(feed(SPEECH[n * 160:n * 160 + 640]), at)
        if n % 300 == 299:
            rec.clear(at)
        if n % 50 == 49:  # the once-a-second write
            writer.write(*rec.take_settled())
    writer.write(*rec.take_all())
    writer.close()
    return time.process_time() - t0


def capture_minute(folder: Path) -> float:
    frames = [json.dumps({"event": "media", "streamSid": "MZ" + "0" * 32, "media": {
        "track": "inbound", "chunk": str(n), "timestamp": str(n * 20),
        "payload": base64.b64encode(SPEECH[n * 160:(n + 1) * 160]).decode()}})
        for n in range(FRAMES)]
    path = folder / "call.jsonl"
    t0 = time.process_time()
    lines: list[str] = []
    for n, frame in enumerate(frames):
        lines.append(json.dumps({"t": round(n * 0.02, 4), "frame": frame}) + "\n")
        if n % 50 == 49:
            _append(path, lines)
            lines = []
    return time.process_time() - t0


def audio_path_minute() -> float:
    up, down = Resampler(8000, 16000), Resampler(24000, 8000)
    t0 = time.process_time()
    for n in range(FRAMES):
        up.process(ulaw_to_pcm16(SPEECH[n * 160:(n + 1) * 160]))
        if (n // 250) % 2 and n % 4 == 0:
            pcm16_to_ulaw(down.process(REPLY_24K))
    return time.process_time() - t0


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        rec = sorted(recording_minute(folder) for _ in range(REPEATS))[REPEATS // 2]
        cap = sorted(capture_minute(folder) for _ in range(REPEATS))[REPEATS // 2]
    base = sorted(audio_path_minute() for _ in range(REPEATS))[REPEATS // 2]
    print(f"CPU per call-minute (median of {REPEATS}), ms:")
    print(f"  gateway audio path alone (codec + both resamplers): {base * 1000:7.1f}")
    print(f"  recording (placement + stereo WAV written each second): {rec * 1000:7.1f}"
          f"  ({rec / base:.0%} of the audio path)")
    print(f"  capture (a JSON line per inbound frame, appended each second): {cap * 1000:7.1f}"
          f"  ({cap / base:.0%})")


if __name__ == "__main__":
    main()
