"""``serve --workers``: a slot's legal moves, each worker's share of the calls, the whole
server's metrics summed from the workers' files, and the settings refused with workers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from gateway.metrics import GatewayMetrics
from gateway.workers.metrics import ServerMetrics, live_name, retire
from gateway.workers.slots import MOVES, IllegalMove, Slot, SlotEvent, SlotState, share


def test_a_slot_restarts_after_a_death_and_ends_after_a_drain() -> None:
    slot = Slot(0)
    for event, state in [(SlotEvent.READY, SlotState.RUNNING),
                         (SlotEvent.EXIT, SlotState.RESTARTING),
                         (SlotEvent.SPAWN, SlotState.STARTING),
                         (SlotEvent.READY, SlotState.RUNNING),
                         (SlotEvent.DRAIN, SlotState.DRAINING),
                         (SlotEvent.DRAIN, SlotState.DRAINING),
                         (SlotEvent.EXIT, SlotState.EXITED)]:
        assert slot.move(event) is state
    assert slot.restarts == 1
    with pytest.raises(IllegalMove):
        slot.move(SlotEvent.SPAWN)


def test_exited_is_the_end_and_every_state_is_reachable() -> None:
    assert not [k for k in MOVES if k[0] is SlotState.EXITED]
    assert {SlotState.STARTING, *MOVES.values()} == set(SlotState)


@pytest.mark.parametrize(("total", "workers"), [(100, 3), (7, 7), (10, 4), (1, 1)])
def test_the_shares_add_up_to_max_calls_and_differ_by_at_most_one(total: int,
                                                                  workers: int) -> None:
    shares = [share(total, workers, i) for i in range(workers)]
    assert sum(shares) == total
    assert max(shares) - min(shares) <= 1


def _gateway_registry(active: int) -> CollectorRegistry:
    return GatewayMetrics(active_calls=lambda: active, loop_lag=lambda: 0.01,
                          carriers=["twilio"]).registry


def _samples(registry: CollectorRegistry) -> dict[str, float]:
    return {s.name + str(sorted(s.labels.items())): s.value
            for f in text_string_to_metric_families(generate_latest(registry).decode())
            for s in f.samples}


async def test_metrics_sum_the_living_keep_the_counters_of_the_gone_and_count_the_lost(
        tmp_path: Path) -> None:
    own = ServerMetrics(_gateway_registry(2), tmp_path, slot=0)
    (tmp_path / live_name(1, 4242)).write_bytes(generate_latest(_gateway_registry(3)))
    (tmp_path / live_name(1, 4141)).write_bytes(generate_latest(_gateway_registry(5)))
    retire(tmp_path, 1, 4141, died=True)  # died with 5 calls on it
    (tmp_path / live_name(1, 4040)).write_bytes(generate_latest(_gateway_registry(0)))
    retire(tmp_path, 1, 4040, died=False)  # drained: nothing lost, no restart
    samples = _samples(own.registry)
    assert samples["voicegw_active_calls[]"] == 5  # the living only: 2 + 3
    assert samples["voicegw_worker_calls_lost_total[]"] == 5
    assert samples["voicegw_worker_restarts_total[]"] == 1
    # One process's figures that do not add up keep their worker apart; the gone have none.
    lag = {k for k in samples if k.startswith("voicegw_event_loop_lag_seconds")}
    assert lag == {"voicegw_event_loop_lag_seconds[('worker', '0')]",
                   "voicegw_event_loop_lag_seconds[('worker', '1')]"}
    # Counters are summed: every worker exports each carrier's series once.
    assert "voicegw_calls_total[('carrier', 'twilio'), ('reason', 'caller_hung_up')]" in samples


@pytest.mark.parametrize(("extra", "message"), [
    (["--audiosocket", "127.0.0.1:0"], "--audiosocket needs --workers 1"),
    (["--console", "127.0.0.1:0"], "the console needs --workers 1"),
    (["--max-calls", "1"], "--max-calls (1) must be at least --workers (2)"),
])
def test_settings_that_need_one_process_are_refused_with_workers(
        extra: list[str], message: str, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway.cli import main

    monkeypatch.setenv("VOICEGW_CONSOLE_TOKEN", "x" * 40)
    assert main(["serve", "--live-url", "ws://127.0.0.1:9/", "--workers", "2", *extra]) == 2
    assert message in capsys.readouterr().err


def test_outbound_calls_are_refused_with_workers(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway.cli import main

    monkeypatch.setenv("VOICEGW_API_TOKEN", "t" * 32)
    assert main(["serve", "--live-url", "ws://127.0.0.1:9/", "--workers", "2"]) == 2
    err = capsys.readouterr().err
    assert "outbound calls (VOICEGW_API_TOKEN) need --workers 1" in err
    assert "t" * 32 not in err


def test_workers_auto_is_the_usable_cores() -> None:
    from gateway.cli import _parser

    args = _parser().parse_args(["serve", "--workers", "auto"])
    assert args.workers == len(os.sched_getaffinity(0))
