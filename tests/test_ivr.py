"""The rig's IVR on its own, tick by tick: its menu moves, a wrong key, silence, giving up."""

from __future__ import annotations

from gateway import dtmf
from gateway.rig.ivr import Ivr, Node
from gateway.rig.phone import TICK_MS, Utterance

RATE = 8000
TICK = RATE * TICK_MS // 1000 * 2  # bytes of PCM16


def play(ivr: Ivr, pcm: bytes = b"", *, silence_ms: int = 0) -> list[Utterance]:
    """Feed ``pcm`` then ``silence_ms`` tick by tick; what the IVR said meanwhile."""
    pcm += b"\x00" * (RATE * silence_ms // 1000 * 2)
    pcm += b"\x00" * (-len(pcm) % TICK)
    said: list[Utterance] = []
    for i in range(0, len(pcm), TICK):
        said += ivr.hear(pcm[i:i + TICK], RATE)
    return said


def words(said: list[Utterance]) -> list[str]:
    return [u.text for u in said]


def test_the_menu_moves_on_keys_once_they_are_let_go() -> None:
    ivr = Ivr()
    assert words(play(ivr, silence_ms=TICK_MS)) == [
        "Thank you for calling. For sales, press 1. For support, press 2."]
    said = play(ivr, dtmf.tones("2", RATE))  # the tone and its gap: not yet
    assert said == []
    assert words(play(ivr, silence_ms=ivr.react_ms)) == [
        "Please enter your account number, followed by the pound key."]
    assert play(ivr, dtmf.tones("9*4321", RATE), silence_ms=1000) == []  # still typing
    said = play(ivr, dtmf.tones("#", RATE), silence_ms=ivr.react_ms)
    assert words(said) == ["Thank you. Connecting you to support."]
    assert ivr.account == "4321" and ivr.node is Node.SUPPORT and ivr.done
    assert ivr.keys == "29*4321#"


def test_a_wrong_key_or_silence_says_the_menu_again_until_it_gives_up() -> None:
    ivr = Ivr(timeout_ms=2000, retries=2)
    main = words(play(ivr, silence_ms=TICK_MS))
    prompt_ms = round(ivr.prompts[Node.MAIN].seconds * 1000) + ivr.first_delay_ms
    assert words(play(ivr, dtmf.tones("7", RATE), silence_ms=ivr.react_ms)) == main
    assert words(play(ivr, silence_ms=prompt_ms + 2000)) == main  # silence: again
    said = play(ivr, silence_ms=prompt_ms + 2000)
    assert words(said) == ["Sorry, we did not get that. Goodbye."]
    assert ivr.node is Node.GAVE_UP and ivr.done
    assert play(ivr, dtmf.tones("1", RATE), silence_ms=500) == []  # done: deaf
    assert [(v.node, v.keys) for v in ivr.visits] == [
        (Node.MAIN, "7"), (Node.MAIN, ""), (Node.MAIN, ""), (Node.GAVE_UP, "")]
