"""Brute-force slowing of console sign-ins: a pure core (the caller passes the time).

Each client address may fail a few times for free; past that every failure doubles the wait
before its next attempt, up to a cap. All clients together have a larger free allowance and a
shorter cap, so a password guessed from many addresses is slowed too, while one attacker can
lock the real operator out for at most that short cap (scripts with the bearer token are not
affected). A client may have only one attempt in flight: verifying a password costs real CPU
and memory (argon2id), and a burst of parallel attempts must not all slip in before the first
failure is counted. Failures are forgotten after a quiet spell; memory is bounded.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Final

MAX_CLIENTS: Final = 10_000  # addresses remembered; the one quiet longest is forgotten first


@dataclass(frozen=True, slots=True)
class Policy:
    free: int  # failures before any wait
    first_wait_s: float  # wait after the first failure past the free ones; doubles each time
    max_wait_s: float
    forget_s: float  # failures are forgotten this long after the last one

    def wait_after(self, failures: int) -> float:
        excess = failures - self.free
        if excess <= 0:
            return 0.0
        return min(self.first_wait_s * 2.0 ** min(excess - 1, 60), self.max_wait_s)


PER_CLIENT: Final = Policy(free=5, first_wait_s=1.0, max_wait_s=900.0, forget_s=3600.0)
OVERALL: Final = Policy(free=50, first_wait_s=1.0, max_wait_s=60.0, forget_s=900.0)


@dataclass(slots=True)
class _Record:
    failures: int = 0
    last_failure: float = -math.inf
    not_before: float = -math.inf
    in_flight: bool = False


class SignInThrottle:
    """Decides whether a sign-in attempt may be checked now; see the module."""

    def __init__(self, per_client: Policy = PER_CLIENT, overall: Policy = OVERALL,
                 max_clients: int = MAX_CLIENTS) -> None:
        self.per_client = per_client
        self.overall = overall
        self._max_clients = max_clients
        self._clients: OrderedDict[str, _Record] = OrderedDict()
        self._all = _Record()

    def begin(self, client: str, now: float) -> float:
        """0 when ``client`` may try now (the attempt is then in flight until :meth:`end`);
        else the seconds to wait before trying again."""
        record = self._client(client, now)
        self._forget(self._all, self.overall, now)
        wait = max(record.not_before, self._all.not_before) - now
        if wait > 0:
            return wait
        if record.in_flight:
            return 1.0
        record.in_flight = True
        return 0.0

    def end(self, client: str, now: float, *, ok: bool) -> None:
        """The attempt ``begin`` let through was right (``ok``) or wrong."""
        record = self._client(client, now)
        record.in_flight = False
        if ok:
            # The operator is in: this address starts afresh. The overall count stays, so
            # one right password cannot launder a spread-out guessing run.
            record.failures, record.not_before = 0, -math.inf
            return
        for rec, policy in ((record, self.per_client), (self._all, self.overall)):
            rec.failures += 1
            rec.last_failure = now
            rec.not_before = now + policy.wait_after(rec.failures)

    def failures(self, client: str) -> int:
        record = self._clients.get(client)
        return record.failures if record is not None else 0

    def _client(self, client: str, now: float) -> _Record:
        record = self._clients.get(client)
        if record is None:
            record = self._clients[client] = _Record()
            while len(self._clients) > self._max_clients:
                oldest = next(iter(self._clients))
                if self._clients[oldest].in_flight:  # never lose an attempt in flight
                    self._clients.move_to_end(oldest)
                    break
                del self._clients[oldest]
        else:
            self._clients.move_to_end(client)
        self._forget(record, self.per_client, now)
        return record

    @staticmethod
    def _forget(record: _Record, policy: Policy, now: float) -> None:
        if record.failures and now - record.last_failure >= policy.forget_s:
            record.failures, record.not_before = 0, -math.inf
