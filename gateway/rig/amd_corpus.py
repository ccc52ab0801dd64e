"""A corpus of answered outbound calls for answering-machine detection (test/demo tool).

People who pick up (a short "hello?", "yeah?", "hi, this is Sam", then silence, or a second
short line once nobody answered) and voicemail greetings (long personal greetings, short
ones, carrier prompts), spoken by Debian's ``flite`` and ``espeak-ng`` in many voices, rates
and pitches, put on an 8 kHz telephone line: band-limited by ``sox``, line noise of every kind
of :mod:`gateway.rig.line_noise` at a random level (or none), G.711 mu-law. Most greetings end
in a beep (440 to 2000 Hz, 100 ms to 1 s, at any level), some have none. Every clip comes with
its truth: person or machine, where speech starts and ends, and the beep.

Deterministic: the same seed gives the same clips (the TTS tools and sox run without dither).
Written to a folder as 8 kHz PCM16 WAVs and ``index.json``; ``benchmarks/amd.py`` makes it on
demand (CI has no TTS tools, so nothing here runs in the tests).

Run: .venv/bin/python -m gateway.rig.amd_corpus FOLDER [--seed N] [--humans N] [--machines N]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

from gateway.audio import pcm16_to_ulaw, ulaw_to_pcm16
from gateway.rig.line_noise import NoiseSource, active_rms
from gateway.rig.line_spec import NoiseKind
from gateway.wav import read_wav, write_wav

Floats = npt.NDArray[np.float64]
RATE: Final = 8000
FLITE_VOICES: Final = ("slt", "rms", "awb", "kal16", "kal")
ESPEAK_VOICES: Final = ("en-us", "en-gb", "en-gb-scotland", "en-029", "en-us-nyc",
                        "en-gb-x-rp", "en-gb-x-gbcwmd")
ESPEAK_VARIANTS: Final = ("", "+m1", "+m3", "+m5", "+f1", "+f2", "+f3", "+f4", "+klatt")
NAMES: Final = ("Sam", "Maria", "John", "Priya", "Dave", "Linda", "Kenji", "Fatima", "Tom",
                "Olivia", "Carlos", "Grace", "Ahmed", "Nora", "Pete", "Rachel")
SURNAMES: Final = ("Miller", "Okafor", "Chen", "Garcia", "Novak", "Singh", "Brown", "Duval")
COMPANIES: Final = ("Acme Plumbing", "Riverside Dental", "Northwind Traders", "Blue Sky Realty",
                    "the accounts team", "Summit Insurance")

HUMAN_FIRST: Final = ("Hello?", "Hello.", "Yeah?", "Hi.", "Yes?", "Hello, who is this?",
                      "Hi, this is {name}.", "{name} speaking.", "Yeah, hello?",
                      "Good afternoon.", "Hey.", "Hello, {name} here.", "Hi, who's calling?",
                      "Speaking.", "Hello, this is {name}.", "Yep?", "Hello there.")
HUMAN_SECOND: Final = ("Hello?", "Is anyone there?", "Hello? Anyone there?", "Hello?? I can't "
                       "hear you.", "Who is this?", "Hello, can you hear me?")
PERSONAL: Final = (
    ("Hi, you've reached {name}.", "I can't take your call right now.",
     "Please leave a message after the tone and I'll get back to you."),
    ("Hey, it's {name}.", "Sorry I missed you.", "Leave your name and number and I'll call "
     "you back as soon as I can."),
    ("Hello, you have reached the voicemail of {name} {surname} at {company}.",
     "I'm either on the phone or away from my desk.", "Please leave a detailed message."),
    ("Hi, this is {name}.", "I'm not available at the moment.", "Leave a message and have a "
     "great day."),
    ("You've reached {name} and {name2}.", "We're not home right now, so leave us a message.",
     "Thanks!"),
    ("Thank you for calling {company}.", "Our office is currently closed.",
     "Please leave a message with your name and phone number, and we will return your call "
     "on the next business day."),
)
SHORT_MACHINE: Final = ("Hi, it's {name}, leave a message.", "This is {name}. Leave a message.",
                        "{name} here, leave a message.")
CARRIER: Final = (
    ("The person you are calling is not available.", "At the tone, please record your "
     "message.", "When you have finished recording, you may hang up."),
    ("The number you have dialed, {digits}, is not available.",
     "Please leave a message after the tone."),
    ("Your call has been forwarded to an automated voice messaging system.",
     "{name} is not available.", "At the tone, please record your message."),
    ("The wireless customer you are calling is not available.", "Please try your call again "
     "later, or leave a message after the beep."),
    ("Please leave your message for {digits}.",),
)


@dataclass(frozen=True, slots=True)
class Clip:
    name: str
    human: bool
    category: str  # short_hello, second_line, personal, short_machine, carrier
    text: str
    voice: str
    speech_start_s: float  # first speech
    speech_end_s: float  # end of the greeting's last speech (the person's first line)
    beep_start_s: float | None
    beep_end_s: float | None
    beep_hz: float | None
    noise: str  # "none" or KIND@LEVELdBov
    speech_dbov: float  # the speech's active level (line_noise.active_rms)
    duration_s: float


class Tts:
    """One voice, with a rate and pitch, speaking sentences into 8 kHz telephone band."""

    def __init__(self, rng: np.random.Generator, tmp: Path) -> None:
        self._tmp = tmp
        if rng.random() < 0.5:
            voice = str(rng.choice(FLITE_VOICES))
            stretch = float(rng.uniform(0.85, 1.25))
            self.name = f"flite:{voice}@{stretch:.2f}"
            self._cmd = ["flite", "-voice", voice, "--setf", f"duration_stretch={stretch:.2f}"]
            if voice not in ("kal", "kal16"):  # the diphone voices ignore a pitch target
                pitch = float(rng.uniform(90, 210))
                self.name += f"/{pitch:.0f}Hz"
                self._cmd += ["--setf", f"int_f0_target_mean={pitch:.0f}"]
            self._text_flag, self._out_flag = "-t", "-o"
        else:
            voice = str(rng.choice(ESPEAK_VOICES)) + str(rng.choice(ESPEAK_VARIANTS))
            speed, pitch = int(rng.integers(135, 200)), int(rng.integers(25, 75))
            self.name = f"espeak-ng:{voice}@{speed}wpm/p{pitch}"
            self._cmd = ["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch)]
            self._text_flag, self._out_flag = "", "-w"

    def say(self, text: str) -> Floats:
        raw, out = self._tmp / "raw.wav", self._tmp / "tel.wav"
        cmd = [*self._cmd, self._out_flag, str(raw)]
        cmd += [self._text_flag, text] if self._text_flag else [text]
        subprocess.run(cmd, check=True, capture_output=True)  # noqa: S603 - our own text
        # The telephone band, then the words alone (no silence either side).
        sox = ["sox", "-D", str(raw), "-r", str(RATE), "-c", "1", "-b", "16", str(out),
               "sinc", "300-3400", "silence", "1", "0.02", "0.5%", "reverse",
               "silence", "1", "0.02", "0.5%", "reverse"]
        subprocess.run(sox, check=True, capture_output=True)  # noqa: S603 - fixed arguments
        pcm, rate = read_wav(out)
        assert rate == RATE
        return np.frombuffer(pcm, "<i2").astype(np.float64)


def _fill(text: str, rng: np.random.Generator) -> str:
    names = rng.permutation(len(NAMES))
    digits = " ".join(str(d) for d in rng.integers(0, 10, 7))
    return text.format(name=NAMES[names[0]], name2=NAMES[names[1]],
                       surname=rng.choice(SURNAMES), company=rng.choice(COMPANIES),
                       digits=digits)


def _silence(seconds: float) -> Floats:
    return np.zeros(round(seconds * RATE))


def _beep(rng: np.random.Generator) -> tuple[Floats, float]:
    hz = float(rng.choice([440, 500, 800, 850, 950, 1000, 1400, 1600, 2000]))
    hz += float(rng.uniform(-10, 10))
    seconds = float(rng.uniform(0.1, 1.0))
    t = np.arange(round(seconds * RATE)) / RATE
    ramp = np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.005)  # 5 ms edges, no click
    level = float(rng.uniform(-20, -8))  # dBov
    return np.sin(2 * np.pi * hz * t) * ramp * 32768 * 10 ** (level / 20) * np.sqrt(2), hz



def _human(i: int, rng: np.random.Generator, tts: Tts) -> tuple[list[Floats], Clip]:
    lead = float(rng.uniform(0.2, 1.5))
    first = _fill(str(rng.choice(HUMAN_FIRST)), rng)
    parts = [_silence(lead), tts.say(first)]
    end = lead + len(parts[1]) / RATE
    text, category = first, "short_hello"
    if rng.random() < 0.4:  # nobody answered: they speak again
        second = str(rng.choice(HUMAN_SECOND))
        parts += [_silence(float(rng.uniform(1.0, 3.0))), tts.say(second)]
        text, category = f"{first} / {second}", "second_line"
    parts.append(_silence(float(rng.uniform(2.5, 4.0))))
    return parts, Clip(f"human_{i:03d}", True, category, text, tts.name, lead, end, None, None,
                       None, "", 0.0, 0.0)


def _machine(i: int, rng: np.random.Generator, tts: Tts) -> tuple[list[Floats], Clip]:
    lead = float(rng.uniform(0.1, 1.2))
    pick = rng.random()
    sentences: tuple[str, ...]
    if pick < 0.15:
        category, sentences = "short_machine", (str(rng.choice(SHORT_MACHINE)),)
    elif pick < 0.55:
        category = "carrier"
        sentences = CARRIER[int(rng.integers(len(CARRIER)))]
    else:
        category = "personal"
        sentences = PERSONAL[int(rng.integers(len(PERSONAL)))]
    texts = [_fill(s, rng) for s in sentences]
    parts = [_silence(lead)]
    for n, sentence in enumerate(texts):
        if n:
            parts.append(_silence(float(rng.uniform(0.15, 0.7))))
        parts.append(tts.say(sentence))
    end = sum(len(p) for p in parts) / RATE
    beep: tuple[Floats, float] | None = None
    if category == "short_machine" or i % 5 != 4:  # a fifth of the greetings have no beep
        beep = _beep(rng)
    start = stop = hz = None
    if beep is not None:
        parts.append(_silence(float(rng.uniform(0.1, 0.8))))
        start = sum(len(p) for p in parts) / RATE
        parts.append(beep[0])
        stop, hz = start + len(beep[0]) / RATE, beep[1]
    parts.append(_silence(float(rng.uniform(2.0, 3.0))))
    return parts, Clip(f"machine_{i:03d}", False, category, " ".join(texts), tts.name, lead,
                       end, start, stop, hz, "", 0.0, 0.0)


def _line(parts: list[Floats], rng: np.random.Generator, seed: int,
          speech_parts: int) -> tuple[bytes, str, float]:
    """Speech at a random level, noise, mu-law: the PCM16 a gateway would decode."""
    speech_db = float(rng.uniform(-26, -12))
    x = np.concatenate(parts)
    # Speech and beep were made at their own levels; scale the speech only.
    speech = np.concatenate(parts[:speech_parts])
    gain = 32768 * 10 ** (speech_db / 20) / max(1.0, active_rms(speech, RATE))
    x[:len(speech)] *= gain
    noise = "none"
    if rng.random() < 0.75:
        kind = list(NoiseKind)[int(rng.integers(len(NoiseKind)))]
        level = speech_db - float(rng.uniform(12, 35))
        x = x + NoiseSource(kind, RATE, level, seed).take(len(x))
        noise = f"{kind.value}@{level:.0f}dBov"
    pcm = np.clip(np.round(x), -32768, 32767).astype("<i2").tobytes()
    return ulaw_to_pcm16(pcm16_to_ulaw(pcm)), noise, speech_db


def make_corpus(folder: Path, seed: int = 1, humans: int = 48,
                machines: int = 48) -> list[Clip]:
    """Writes the clips and ``index.json`` into ``folder``; returns the clips."""
    for tool in ("flite", "espeak-ng", "sox"):
        if shutil.which(tool) is None:
            raise SystemExit(f"the AMD corpus needs {tool} (Debian package of that name)")
    folder.mkdir(parents=True, exist_ok=True)
    clips = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(humans + machines):
            rng = np.random.default_rng([seed, i])
            tts = Tts(rng, Path(tmp))
            human = i < humans
            parts, clip = (_human(i, rng, tts) if human else _machine(i - humans, rng, tts))
            # Everything before the beep (or all of a person's clip) is speech and pauses.
            speech_parts = len(parts) - (0 if human or clip.beep_end_s is None else 2)
            pcm, noise, level = _line(parts, rng, seed * 1000 + i, speech_parts)
            clip = Clip(**{**asdict(clip), "noise": noise, "speech_dbov": round(level, 1),
                           "duration_s": len(pcm) / 2 / RATE})
            write_wav(folder / f"{clip.name}.wav", pcm, RATE)
            clips.append(clip)
    (folder / "index.json").write_text(json.dumps(
        {"seed": seed, "rate": RATE, "clips": [asdict(c) for c in clips]}, indent=1))
    return clips


def load_corpus(folder: Path) -> list[Clip]:
    data = json.loads((folder / "index.json").read_text())
    return [Clip(**c) for c in data["clips"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--humans", type=int, default=48)
    parser.add_argument("--machines", type=int, default=48)
    args = parser.parse_args()
    clips = make_corpus(args.folder, args.seed, args.humans, args.machines)
    print(f"wrote {len(clips)} clips to {args.folder}")


if __name__ == "__main__":
    main()
