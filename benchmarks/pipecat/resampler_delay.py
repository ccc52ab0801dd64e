"""Pipecat's stream resampler (what its TwilioFrameSerializer uses) under ../resampler_delay.py.

Run with Pipecat's venv: ``benchmarks/.venv-pipecat/bin/python resampler_delay.py``; prints
JSON keyed like ``resampler_delay.ours()``.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
from pathlib import Path

from pipecat.audio.utils import create_stream_resampler
from pipecat.serializers.twilio import TwilioFrameSerializer


def _measure_module():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(
        "resampler_delay", Path(__file__).resolve().parent.parent / "resampler_delay.py")
    if spec is None or spec.loader is None:
        raise SystemExit("benchmarks/resampler_delay.py is missing")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    measure = _measure_module().measure
    # Configured as the serializer configures it (its default clear-after interval).
    clear_after = TwilioFrameSerializer.InputParams().resampler_clear_after_secs
    loop = asyncio.new_event_loop()
    results = {}
    for src, dst in ((8000, 16000), (24000, 8000)):
        resampler = create_stream_resampler(clear_after_secs=clear_after)

        def process(pcm: bytes, r=resampler, a=src, b=dst) -> bytes:  # type: ignore[no-untyped-def]
            return loop.run_until_complete(r.resample(pcm, a, b))

        results[f"{src}->{dst}"] = measure(process, src, dst)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
