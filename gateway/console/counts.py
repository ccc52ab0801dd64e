"""The console's Prometheus figures: sign-in attempts by outcome, and requests refused."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final, Literal

from prometheus_client.metrics_core import CounterMetricFamily, Metric

from gateway.metrics import PREFIX

SignIn = Literal["ok", "wrong", "slowed"]
Refusal = Literal["unauthorized", "csrf", "origin"]
SIGN_INS: Final[tuple[SignIn, ...]] = ("ok", "wrong", "slowed")
REFUSALS: Final[tuple[Refusal, ...]] = ("unauthorized", "csrf", "origin")


class ConsoleCounts:
    """A Prometheus collector; registered with the gateway's registry, so /metrics has it."""

    def __init__(self) -> None:
        self.sign_ins: dict[SignIn, int] = dict.fromkeys(SIGN_INS, 0)
        self.refused: dict[Refusal, int] = dict.fromkeys(REFUSALS, 0)

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(PREFIX + "console_sign_ins", "Console password sign-in "
                                     "attempts: ok, wrong password, or slowed (refused with "
                                     "429 before the password was checked).",
                                     labels=["outcome"])
        for outcome, n in self.sign_ins.items():
            family.add_metric([outcome], n)
        yield family
        refused = CounterMetricFamily(PREFIX + "console_requests_refused", "Console and "
                                      "operator requests refused: not signed in (or a wrong "
                                      "bearer token), a missing or wrong CSRF token, a "
                                      "cross-site Origin.", labels=["reason"])
        for reason, n in self.refused.items():
            refused.add_metric([reason], n)
        yield refused
