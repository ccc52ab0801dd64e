"""A small IVR for the phone rig: the called side of a call an agent places, navigated by keys.

The menu: "press 1 for sales, 2 for support"; support then asks for the account number
followed by #. The IVR hears what the phone plays (the agent's words and the tones its
``send_dtmf`` tool makes), takes keys with :class:`gateway.rig.dtmf_receiver.DtmfReceiver`,
and speaks its next prompt once the key is let go and ``react_ms`` have passed, as an IVR's
menu does. It answers a wrong key by saying the menu again, and silence by saying it again
after ``timeout_ms``, until it gives up. Used as :func:`gateway.rig.phone.place_call`'s
``callee``; every time here is call time (20 ms ticks), so it means the same at any speed.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from gateway.rig.dtmf_receiver import DtmfReceiver
from gateway.rig.phone import TICK_MS, Speech, Utterance, When, load_utterance
from gateway.rig.simulator.speech import speech_dir


class Node(enum.Enum):
    """Where the caller is in the menu."""

    MAIN = "main"  # press 1 for sales, 2 for support
    ACCOUNT = "account"  # enter your account number followed by #
    SALES = "sales"  # connecting you to sales (a leaf)
    SUPPORT = "support"  # thank you, connecting you to support (a leaf)
    GAVE_UP = "gave_up"  # no valid answer: goodbye (a leaf)


#: The key that moves from a node, and where to. ACCOUNT also takes digits (collected).
MOVES: Final[Mapping[Node, Mapping[str, Node]]] = {
    Node.MAIN: {"1": Node.SALES, "2": Node.ACCOUNT},
    Node.ACCOUNT: {"#": Node.SUPPORT},
}
LEAVES: Final = frozenset({Node.SALES, Node.SUPPORT, Node.GAVE_UP})
#: What each prompt says (the transcript a simulated model is scripted with).
WORDS: Final[Mapping[Node, str]] = {
    Node.MAIN: "Thank you for calling. For sales, press 1. For support, press 2.",
    Node.ACCOUNT: "Please enter your account number, followed by the pound key.",
    Node.SALES: "Connecting you to sales.",
    Node.SUPPORT: "Thank you. Connecting you to support.",
    Node.GAVE_UP: "Sorry, we did not get that. Goodbye.",
}


def fixture_prompts() -> dict[Node, Speech]:
    """Recorded speech standing in for each prompt (the bundled caller lines: only their
    sound matters to a simulated model, which is told the words)."""
    lines = {Node.MAIN: "caller_book_table", Node.ACCOUNT: "caller_seven_thirty"}
    return {n: load_utterance(speech_dir() / f"{lines.get(n, 'caller_goodbye')}.wav")
            for n in Node}


@dataclass
class Visit:
    """One stay at a node: the keys heard there."""

    node: Node
    keys: str = ""


@dataclass
class Ivr:
    """Implements :class:`gateway.rig.phone.Callee`."""

    prompts: Mapping[Node, Speech] = field(default_factory=fixture_prompts)
    react_ms: int = 300  # after a key is let go, before the next prompt
    timeout_ms: int = 6000  # no key since the prompt ended: say it again
    retries: int = 2  # prompts said again (silence or a wrong key) before giving up
    first_delay_ms: int = 300  # the call answered -> the first prompt
    visits: list[Visit] = field(default_factory=list)
    account: str = ""
    _receiver: DtmfReceiver | None = None
    _tick: int = 0
    _quiet_until: int = 0  # the tick the prompt being said ends
    _react_at: int | None = None  # the tick to act on the keys taken
    _tries: int = 0

    @property
    def node(self) -> Node:
        return self.visits[-1].node if self.visits else Node.MAIN

    @property
    def done(self) -> bool:
        return self.node in LEAVES

    @property
    def keys(self) -> str:
        """Every key heard, in order."""
        return "".join(v.keys for v in self.visits)

    def hear(self, pcm: bytes, rate: int) -> list[Utterance]:
        if self._receiver is None or self._receiver.rate != rate:
            self._receiver = DtmfReceiver(rate)
        self._tick += 1
        if not self.visits:  # the call has just been answered
            return self._say(Node.MAIN, self.first_delay_ms)
        if self.done:
            return []
        for key in self._receiver.push(pcm):
            self.visits[-1].keys += key
            self._react_at = None
            self._quiet_until = self._tick  # the wait for the next key starts again
        if self._receiver.holding:  # a key is down: wait for its release
            return []
        if self.visits[-1].keys and self._react_at is None:
            self._react_at = self._tick + self.react_ms // TICK_MS
        if self._react_at is not None and self._tick >= self._react_at:
            self._react_at = None
            return self._act()
        if self._tick >= self._quiet_until + self.timeout_ms // TICK_MS:
            return self._again()
        return []

    def _act(self) -> list[Utterance]:
        visit = self.visits[-1]
        moves = MOVES[visit.node]
        if visit.node is Node.ACCOUNT:
            if not visit.keys.endswith("#"):
                return []  # still typing
            self.account = visit.keys[:-1].rpartition("*")[2]  # * starts over
            return self._say(moves["#"]) if self.account.isdigit() else self._again()
        target = moves.get(visit.keys[0])
        return self._say(target) if target is not None else self._again()

    def _again(self) -> list[Utterance]:
        self._tries += 1
        node = self.node if self._tries <= self.retries else Node.GAVE_UP
        return self._say(node)

    def _say(self, node: Node, delay_ms: int = 0) -> list[Utterance]:
        if self.visits and node is not self.node:
            self._tries = 0
        self.visits.append(Visit(node))
        prompt = self.prompts[node]
        self._quiet_until = self._tick + (delay_ms + round(prompt.seconds * 1000)) // TICK_MS
        return [Utterance(prompt, When.START, delay_ms, text=WORDS[node])]
