"""A campaign of 1,000 contacts, killed mid-way and resumed: nobody called twice, the window,
rate and concurrency held, the results CSV complete.

By default it runs against the stand-in of the gateway's ``/v1/calls`` API
(:mod:`gateway.rig.calls_api`) on a fast clock: ``--speed`` times real time, and a wait for a
window to open (hours) skipped at once, so a day of calling across time zones takes well under
a minute while the rate's spacing and the calls themselves take real time. Contacts are spread
over New York, Chicago, Denver, Los Angeles, London, Paris, Mumbai, Sydney, Tokyo and São
Paulo; a few are toll-free numbers spanning the whole North American plan (no shared window:
skipped, as they must be), a few rows are invalid or repeated, a few numbers are on the
do-not-call list (in the database, at the gateway, and one added while the campaign is down).
The runner is killed (its task cancelled, calls in flight left as they are) ``--kills`` times
at random points, and resumed each time from the database alone.

With ``--sigkill`` the runner is ``voicegw campaign run`` in a process of its own, killed
with SIGKILL (no clean-up of any kind) and started again, on the wall clock (a fast clock
cannot be shared between processes), so ``--window`` should hold the present moment.

With ``--stack`` it runs against the real stack in this process (:mod:`gateway.rig.campaign_stack`):
the simulated Live server, Twilio's network faked (who answers by a number's last digit: people,
machines, busy, no answer, failures) and a real gateway whose ``/v1/calls`` places every call,
with real media both ways (``--media-speed`` times real time) and its call records in a SQLite
file the runner also writes (its own connection, as a separate process would). The audit is
then from the network's record of every call asked of it: duplicates, calls in flight, and the
rate and window at each call's arrival read on the campaign's clock (stamped by the network as
it is asked, so a fast clock multiplies the few milliseconds from the attempt written to the
network by ``--speed``: that lag is printed, and the window is also checked at the attempt's
written start); the gateway's ``dials`` table must agree with the network call for call.
With ``--stack --sigkill`` the runner is ``voicegw campaign run`` against that stack.

With ``--gateway URL`` it runs against a real gateway (``VOICEGW_API_TOKEN``) on the wall
clock instead; duplicates are then counted from each call's record as ``GET /v1/calls/{id}``
gives it (a call the runner never learnt of is only visible in the gateway's own dials table).

Run: .venv/bin/python benchmarks/campaign.py [--contacts 1000] [--kills 2] [--speed 60]
     .venv/bin/python benchmarks/campaign.py --sigkill --window 00:00-24:00 --rate 3000 \
         --retry-delay 2
     .venv/bin/python benchmarks/campaign.py --stack [--speed 2 --rate 300]
     .venv/bin/python benchmarks/campaign.py --stack --sigkill --window 00:00-24:00 \\
         --rate 600 --retry-delay 2
     .venv/bin/python benchmarks/campaign.py --gateway http://127.0.0.1:8080 \\
         --window 00:00-24:00 --contacts 200 --rate 120
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import structlog

from gateway.agent import Agent
from gateway.campaign.api import GatewayCalls
from gateway.campaign.clock import Clock, FastClock, SystemClock
from gateway.campaign.model import CallSettings, Campaign, Contact, ContactState, RetryPolicy
from gateway.campaign.plan import Limits
from gateway.campaign.results import open_campaign, results_csv
from gateway.campaign.runner import CampaignRunner, RunSettings
from gateway.campaign.window import Window
from gateway.dialing.model import MachineDetection
from gateway.rig.calls_api import FakeCallsApi, Outcome, PlacedCall, mixed_outcomes
from gateway.rig.campaign_audit import audit
from gateway.rig.campaign_stack import FarSide, StackSettings, as_placed, campaign_stack, far_side
from gateway.rig.dialing.callees import by_last_digit
from gateway.store.campaigns import CampaignStore
from gateway.store.sqlite import SqliteStore

TOKEN = "benchmark-api-token"  # 16 characters at least, as the gateway asks
# (prefix, digits to add, zone column or "") - numbers are possible, not real.
PLACES = [("+1212555", 4, ""), ("+1312555", 4, ""), ("+1303555", 4, ""),
          ("+1415555", 4, ""), ("+44207183", 4, ""), ("+3314455", 4, ""),
          ("+9198200", 5, ""), ("+6129123", 4, ""), ("+8135550", 4, ""),
          ("+55119876", 5, ""), ("+1646555", 4, "America/New_York")]


def contacts_csv(n: int, rng: random.Random) -> tuple[str, list[str]]:
    rows = ["number,timezone,name,reference"]
    numbers: list[str] = []
    for i in range(n):
        kind = rng.random()
        if kind < 0.01:
            rows.append(f"12{i},,Bad{i},R{i}")
            continue
        if kind < 0.02 and numbers:
            rows.append(f"{rng.choice(numbers)},,Again{i},R{i}")
            continue
        if kind < 0.025:
            rows.append(f"+1800555{i % 10000:04d},,Free{i},R{i}")
            continue
        prefix, digits, zone = rng.choice(PLACES)
        number = f"{prefix}{i:0{digits}d}"
        numbers.append(number)
        rows.append(f"{number},{zone},Name{i},R{i}")
    return "\n".join(rows) + "\n", numbers


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--contacts", type=int, default=1000)
    p.add_argument("--kills", type=int, default=2)
    p.add_argument("--concurrency", type=int, default=20)
    p.add_argument("--rate", type=float, default=60.0, help="calls a minute")
    p.add_argument("--window", default="09:00-20:00")
    p.add_argument("--retry-delay", type=float, default=1800.0)
    p.add_argument("--max-attempts", type=int, default=3)
    p.add_argument("--speed", type=float, default=60.0, help="clock seconds per real second")
    p.add_argument("--call-s", type=float, default=0.15, help="scale of a call's real length")
    p.add_argument("--start", default="2026-03-08T11:00", help="UTC; the default is the day "
                   "North America moves its clocks")
    p.add_argument("--gateway", help="a real gateway's URL (wall clock; VOICEGW_API_TOKEN)")
    p.add_argument("--sigkill", action="store_true", help="run voicegw campaign run in a "
                   "process, killed with SIGKILL (wall clock)")
    p.add_argument("--stack", action="store_true", help="through a real gateway, Twilio's "
                   "network faked and the simulated Live server, in this process")
    p.add_argument("--media-speed", type=float, default=4.0, help="--stack: callees' audio "
                   "and the simulator's replies, x real time")
    p.add_argument("--ring-speed", type=float, default=20.0, help="--stack: ringing, x real")
    p.add_argument("--max-calls", type=int, help="--stack: the gateway's VOICEGW_MAX_CALLS "
                   "(default twice --concurrency)")
    p.add_argument("--poll", type=float, help="seconds between a call's status reads "
                   "(default --call-s / 5; 0.25 with --stack)")
    p.add_argument("--machine-detection", default="hangup",
                   choices=[m.value for m in MachineDetection])
    p.add_argument("--agent", default="concierge")
    p.add_argument("--seed", type=int, default=19)
    a = p.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
    if a.poll is None:
        a.poll = 0.25 if a.stack else 0.5 if a.gateway else a.call_s / 5
    rng = random.Random(a.seed)
    window = Window.parse(a.window)
    text, numbers = contacts_csv(a.contacts, rng)
    clock: Clock
    if a.gateway or a.sigkill:
        clock, token = SystemClock(), os.environ.get("VOICEGW_API_TOKEN", TOKEN)
    else:
        start = datetime.fromisoformat(a.start).replace(tzinfo=UTC).timestamp()
        # Under --stack, calls just started reach the network before the clock jumps.
        clock, token = FastClock(start, speed=a.speed, skip_over_s=120,
                                 settle_s=0.5 if a.stack else 0.0), TOKEN
    gateway_dnc = set(rng.sample(numbers, 3))
    fake = FakeCallsApi(TOKEN, mixed_outcomes(a.call_s), do_not_call=gateway_dnc, clock=clock,
                        agents=frozenset({a.agent}))
    settings = RunSettings(Limits(a.concurrency, a.rate, window),
                           RetryPolicy(a.max_attempts, a.retry_delay),
                           poll_s=a.poll)
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(Path(tmp) / "calls.db")
        await store.open()
        db = CampaignStore(store)
        for number in rng.sample(numbers, 5):
            await db.dnc_add(number, "benchmark", clock.now())
        try:
            if a.stack:
                await stack(a, db, Path(tmp), clock, text, settings)
            elif a.sigkill:
                async with fake.serve() as url:
                    began = time.monotonic()
                    runs = await killed_processes(a, db, url, Path(tmp), text,
                                                  lambda: len(fake.placed))
                report(a, await db.contacts(await _id(db)), fake.placed,
                       window=Window.parse(a.window), runs=runs,
                       wall_s=time.monotonic() - began, virtual_s=0.0, replays=fake.replays)
            elif a.gateway:
                await campaign(a, db, a.gateway, token, clock, text, numbers, settings, None)
            else:
                async with fake.serve() as url:
                    await campaign(a, db, url, token, clock, text, numbers, settings, fake)
        finally:
            await store.aclose()


def call_settings(a: argparse.Namespace) -> CallSettings:
    return CallSettings(a.agent, machine_detection=MachineDetection(a.machine_detection))


async def stack(a: argparse.Namespace, db: CampaignStore, tmp: Path, clock: Clock, text: str,
                settings: RunSettings) -> None:
    """The campaign through the real stack, its runner killed and resumed, then the audit
    from the network's side and the gateway's dials table."""
    agent = Agent(name=a.agent, instructions="Remind the callee of their appointment.",
                  greeting="Hello, this is the clinic calling about your appointment.")
    conf = StackSettings(TOKEN, tmp / "calls.db", agent, a.max_calls or 2 * a.concurrency,
                         speed=a.media_speed, ring_speed=a.ring_speed)
    began, virtual_began = time.monotonic(), clock.now()
    async with campaign_stack(conf, by_last_digit(), clock.now) as st:
        if a.sigkill:
            runs = await killed_processes(a, db, st.url, tmp, text, lambda: len(st.net.calls))
        else:
            runs = await killed_tasks(a, db, st.url, TOKEN, clock, text, settings)
        wall_s, virtual_s = time.monotonic() - began, clock.now() - virtual_began
        await st.net.wait_all()
        await st.gateway.wait_idle()
        contacts = await db.contacts(await _id(db))
        far = await far_side(st.net, st.store, contacts, settings.limits.window)
        assert st.gateway.dialing is not None
        counts = st.gateway.dialing.counts
        calls = list(st.net.calls.values())
        media = sum(1 for c in calls if c.result is not None and c.result.media_received > 0)
        print(f"gateway: {counts.placed} calls placed, {counts.replayed} idempotent replays, "
              f"{counts.refused} refused by the carrier, {counts.stale_callbacks} stale "
              f"callbacks; {media} calls heard the agent")
    report(a, contacts, as_placed(calls), window=settings.limits.window, runs=runs,
           wall_s=wall_s, virtual_s=0.0 if a.sigkill else virtual_s,
           replays=counts.replayed, far=far)


async def campaign(a: argparse.Namespace, db: CampaignStore, url: str, token: str,
                   clock: Clock, text: str, numbers: list[str], settings: RunSettings,
                   fake: FakeCallsApi | None) -> None:
    began, virtual_began = time.monotonic(), clock.now()
    runs = await killed_tasks(a, db, url, token, clock, text, settings)
    contacts = await db.contacts(await _id(db))
    if fake is not None:
        placed = fake.placed
    else:
        api = GatewayCalls(url, token)
        try:
            placed = await fetched(api, contacts)
        finally:
            await api.aclose()
    report(a, contacts, placed, window=settings.limits.window, runs=runs,
           wall_s=time.monotonic() - began, virtual_s=clock.now() - virtual_began,
           replays=fake.replays if fake else None)


async def killed_tasks(a: argparse.Namespace, db: CampaignStore, url: str, token: str,
                       clock: Clock, text: str, settings: RunSettings) -> int:
    """The runner in this process, its task cancelled ``--kills`` times and run again; the
    number of runs."""
    rng = random.Random(a.seed + 1)
    opened = await open_campaign(db, name="benchmark", source="benchmark.csv",
                                 data=text.encode(), call=call_settings(a), now=clock.now())
    total = len(opened.imported.contacts) if opened.imported else 0
    # Spread over the campaign, each at a random point of its stretch.
    stretch = total // (a.kills + 1)
    kill_points = [stretch * (k + 1) + rng.randrange(-stretch // 4, stretch // 4 + 1)
                   for k in range(a.kills)]
    runs = 0
    finished = False
    api = GatewayCalls(url, token)
    try:
        while not finished:
            runs += 1
            kill_at = kill_points[runs - 1] if runs <= len(kill_points) else None
            finished = await one_run(db, api, opened.campaign, settings, clock, kill_at)
            if not finished:
                dialing = len(await db.contacts(opened.campaign.id, [ContactState.DIALING]))
                print(f"killed after {kill_at} contacts ended, {dialing} calls in flight "
                      "left as they were", flush=True)
                if runs == 1:  # a number added to the list while the campaign is down
                    pending = await db.contacts(opened.campaign.id, [ContactState.PENDING])
                    if pending:
                        await db.dnc_add(pending[-1].number, "added mid-campaign", clock.now())
    finally:
        await api.aclose()
    return runs


async def killed_processes(a: argparse.Namespace, db: CampaignStore, url: str, tmp: Path,
                           text: str, placed: Callable[[], int]) -> int:
    """``voicegw campaign run`` in a process, SIGKILLed ``--kills`` times and started again
    (``placed``: how many calls the far side has placed); the number of runs."""
    csv_path = tmp / "benchmark.csv"
    csv_path.write_text(text)
    env = {**os.environ, "VOICEGW_DATABASE": str(tmp / "calls.db"), "VOICEGW_API_TOKEN": TOKEN}
    argv = [sys.executable, "-m", "gateway", "--log-level", "warning", "campaign", "run",
            str(csv_path), "--agent", a.agent, "--gateway", url, "--window", a.window,
            "--rate", str(a.rate), "--concurrency", str(a.concurrency), "--retry-delay",
            f"{a.retry_delay}s", "--max-attempts", str(a.max_attempts), "--poll",
            str(a.poll), "--machine-detection", a.machine_detection, "--no-progress"]
    expected = a.contacts * 1.25  # calls, retries included, roughly
    kill_at = [int(expected * (k + 1) / (a.kills + 1)) for k in range(a.kills)]
    runs = 0
    while True:
        runs += 1
        proc = await asyncio.create_subprocess_exec(*argv, env=env,
                                                    stderr=asyncio.subprocess.DEVNULL)
        target = kill_at[runs - 1] if runs <= len(kill_at) else None
        while target is not None and proc.returncode is None and placed() < target:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 0.02)
        if proc.returncode is None and target is not None:
            proc.kill()  # SIGKILL: no finally, no flush, calls in flight as they were
            await proc.wait()
            dialing = len([c for c in await db.contacts(await _id(db))
                           if c.state is ContactState.DIALING])
            print(f"SIGKILLed after {placed()} calls placed, {dialing} contacts "
                  "dialing", flush=True)
            if runs == 1:  # a number added to the list while the campaign is down
                pending = await db.contacts(await _id(db), [ContactState.PENDING])
                if pending:
                    await db.dnc_add(pending[-1].number, "added mid-campaign", time.time())
            continue
        await proc.wait()
        return runs


async def _id(db: CampaignStore) -> str:
    found = await db.find("benchmark")
    assert found is not None
    return found.id


async def one_run(db: CampaignStore, api: GatewayCalls, campaign: Campaign,
                  settings: RunSettings, clock: Clock, kill_at: int | None) -> bool:
    ended = 0
    task: asyncio.Task[object] | None = None

    def changed(contact: Contact) -> None:
        nonlocal ended
        ended += contact.state.final
        if kill_at is not None and ended >= kill_at and task is not None:
            task.cancel()

    # Contacts already ended before this run count towards the kill point too.
    tally = await db.tally(campaign.id)
    ended = tally.states.get(ContactState.DONE, 0) + tally.states.get(ContactState.SKIPPED, 0)
    runner = CampaignRunner(db, api, campaign, settings, clock, on_change=changed)
    task = asyncio.create_task(runner.run())
    try:
        return bool(getattr(await task, "finished", False))
    except asyncio.CancelledError:
        return False


async def fetched(api: GatewayCalls, contacts: list[Contact]) -> list[PlacedCall]:
    """The calls as the real gateway reports them (GET /v1/calls/{id})."""
    out = []
    for c in contacts:
        for dial_id in c.dial_ids:
            state = await api.get(dial_id)
            out.append(PlacedCall(state.id, "", c.number, {}, 0.0, 0.0,
                                  Outcome(state.status, state.answered_by, 0.0)))
    return out


def report(a: argparse.Namespace, contacts: list[Contact], placed: list[PlacedCall], *,
           window: Window, runs: int, wall_s: float, virtual_s: float,
           replays: int | None, far: FarSide | None = None) -> None:
    checked = audit(placed, contacts, window)
    rows = results_csv(contacts).count("\n") - 1
    unfinished = sum(1 for c in contacts if not c.state.final)
    results: dict[str, int] = {}
    for c in contacts:
        key = c.result.value if c.result else c.state.value
        results[key] = results.get(key, 0) + 1
    retried = sum(1 for c in contacts if c.attempts > 1)
    print(f"contacts: {len(contacts)} (runs: {runs}, killed {runs - 1} times)")
    print(f"calls placed: {checked.calls} to {checked.numbers} numbers; attempts written "
          f"{checked.attempts}; calls the runner holds an id for {checked.known}")
    print(f"contacts retried: {retried}; idempotent replays on resume: {replays}")
    print(f"duplicates: {checked.duplicates} (must be 0)")
    if a.gateway:
        print("calls placed and duplicates: from each call id the runner holds, as the "
              "gateway reports it; calls it never learnt of show only in the dials table")
        print(f"max concurrency seen: n/a here (cap {a.concurrency})")
    else:
        print(f"max concurrency seen: {checked.max_concurrent} (cap {a.concurrency})")
    print(f"max calls in any minute: {checked.max_per_minute} (rate {a.rate:g}; at each "
          "attempt's written start)")
    print(f"calls outside the window: {checked.outside_window} (must be 0; window {window}; "
          "at each attempt's written start)")
    if far is not None:
        print(f"at the network, on the campaign clock as each call arrived (written to "
              f"arrived: {far.lag_min_s:.2f} to {far.lag_max_s:.2f} clock s): max calls in any "
              f"{far.span_s:.2f} s {far.max_per_minute} (rate {a.rate:g}); calls outside the "
              f"window {far.outside_window}, {far.outside_for_certain} even allowing the lag "
              f"(must be 0); calls never ended {far.unfinished}")
        print(f"dials table: {far.dials} rows, {far.dials_placed} with the network's call, "
              f"{far.dials_not_placed} without; disagreeing with the network "
              f"{far.dials_disagree}, status callbacks lost {far.callbacks_lost}")
    print(f"results CSV rows: {rows} of {len(contacts)}; contacts unfinished: {unfinished}")
    print("results: " + ", ".join(f"{k} {v}" for k, v in sorted(results.items(),
                                                                key=lambda x: -x[1])))
    clock = f" (campaign clock: {virtual_s / 3600:.1f} h)" if virtual_s else ""
    print(f"wall time: {wall_s:.1f} s{clock}")
    ok = checked.duplicates == 0 and checked.outside_window == 0 and unfinished == 0 \
        and rows == len(contacts) and checked.max_per_minute <= a.rate \
        and checked.max_concurrent <= a.concurrency and checked.calls == checked.known \
        and (far is None or (far.max_per_minute <= a.rate and far.outside_for_certain == 0
                             and far.unfinished == 0 and far.dials_not_placed == 0
                             and far.dials_disagree == 0 and far.callbacks_lost == 0
                             and far.dials_placed == checked.calls))
    print("PASS" if ok else "FAIL")
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    asyncio.run(main())
