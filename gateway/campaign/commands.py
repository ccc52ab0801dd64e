"""What ``voicegw campaign ...`` and ``voicegw dnc ...`` do (parsing is in
:mod:`gateway.campaign.cli`)."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from gateway import log as gwlog
from gateway.campaign.api import GatewayCalls
from gateway.campaign.cli import DEFAULT_GATEWAY
from gateway.campaign.clock import SystemClock
from gateway.campaign.contacts import ContactsError
from gateway.campaign.model import CallSettings, Campaign, ContactState, RetryPolicy
from gateway.campaign.plan import Limits
from gateway.campaign.progress import Progress
from gateway.campaign.results import open_campaign, write_results
from gateway.campaign.runner import CampaignRunner, RunSettings
from gateway.campaign.window import Window, WindowError
from gateway.dialing.model import DialInputError, MachineDetection, e164
from gateway.errors import ConfigError
from gateway.store import store_from_env
from gateway.store.base import CallStore
from gateway.store.campaigns import CampaignStore, Tally


def _store(*, create: bool) -> CallStore:
    store = store_from_env(create=create)
    if store is None:
        raise ConfigError("campaigns live in the call-record database, which is off "
                          "(VOICEGW_DATABASE=off)")
    return store


def run_campaign(args: argparse.Namespace) -> int:
    token = os.environ.get("VOICEGW_API_TOKEN", "").strip()
    if not token:
        raise ConfigError("VOICEGW_API_TOKEN is not set: campaigns place calls through the "
                          "gateway's /v1/calls API with its token")
    gwlog.register_secret(token)
    try:
        window = Window.parse(args.window)
    except WindowError as exc:
        raise ConfigError(str(exc)) from None
    try:
        data = args.csv.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {args.csv}: {exc.strerror}") from None
    call = None
    if args.agent:
        try:
            sender = e164(args.from_, "--from") if args.from_ else None
        except DialInputError as exc:
            raise ConfigError(str(exc)) from None
        call = CallSettings(args.agent, args.carrier, sender,
                            MachineDetection(args.machine_detection), args.voicemail_message,
                            args.timeout)
    settings = RunSettings(Limits(args.concurrency, args.rate, window),
                           RetryPolicy(args.max_attempts, args.retry_delay), args.poll)
    name = args.name or args.csv.stem
    results = args.results or args.csv.with_name(f"{name}-results.csv")
    url = args.gateway or os.environ.get("VOICEGW_GATEWAY_URL") \
        or os.environ.get("VOICEGW_PUBLIC_URL") or DEFAULT_GATEWAY
    job = Job(name, str(args.csv), data, call, settings, url, token, results,
              bar=not args.no_progress)
    try:
        return asyncio.run(_run(job))
    except ContactsError as exc:
        raise ConfigError(f"{args.csv}: {exc}") from None


@dataclass(frozen=True, slots=True)
class Job:
    name: str
    source: str
    data: bytes
    call: CallSettings | None
    settings: RunSettings
    url: str
    token: str = field(repr=False)
    results: Path
    bar: bool


async def _run(job: Job) -> int:
    name, url, results = job.name, job.url, job.results
    store = _store(create=True)
    await store.open()
    api = GatewayCalls(url, job.token)
    db = CampaignStore(store)
    try:
        clock = SystemClock()
        opened = await open_campaign(db, name=name, source=job.source, data=job.data,
                                     call=job.call, now=clock.now())
        campaign = opened.campaign
        if opened.imported is not None:
            for bad in opened.imported.bad:
                print(f"row {bad.seq}: skipped: {bad.reason}", file=sys.stderr)
        tally = await db.tally(campaign.id)
        total = sum(tally.states.values())
        done = tally.states.get(ContactState.DONE, 0) + tally.states.get(ContactState.SKIPPED, 0)
        print(f"campaign {name}: {'resuming' if opened.resumed else 'starting'}, {total} "
              f"contacts, {done} ended, through {url}", file=sys.stderr)
        progress = Progress(name, total, done, bar=job.bar)
        runner = CampaignRunner(db, api, campaign, job.settings, clock,
                                on_change=progress.changed)
        try:
            finished = await _until_interrupted(runner)
        finally:
            progress.close()
            write_results(results, await db.contacts(campaign.id))
        print(f"campaign {name}: {'finished' if finished else 'stopped'}; results in "
              f"{results}" + ("" if finished else "; run the same command again to resume"),
              file=sys.stderr)
        return 0 if finished else 1
    finally:
        await api.aclose()
        await store.aclose()


async def _until_interrupted(runner: CampaignRunner) -> bool:
    """Run; the first Ctrl-C (or SIGTERM) starts no new call and follows those in flight to
    their end, a second leaves them to the next run (they are resumed, never lost)."""
    loop = asyncio.get_running_loop()
    task = asyncio.create_task(runner.run())
    presses = 0

    def interrupted() -> None:
        nonlocal presses
        presses += 1
        if presses == 1:
            print("\nstopping: no new calls; following those in flight to their end "
                  "(Ctrl-C again to leave them for the next run)", file=sys.stderr)
            runner.stop()
        else:
            task.cancel()

    handled = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, interrupted)
        except (ValueError, NotImplementedError, RuntimeError):
            continue  # not the main thread (embedded), or no signals here
        handled.append(sig)
    try:
        return (await task).finished
    except asyncio.CancelledError:
        if presses < 2:
            raise
        return False
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)


async def status(args: argparse.Namespace) -> int:
    store = _store(create=False)
    await store.open()
    try:
        db = CampaignStore(store)
        if args.name is None:
            campaigns = await db.campaigns()
            if not campaigns:
                print("no campaigns")
            for c in campaigns:
                print(_line(c, await db.tally(c.id)))
            return 0
        found = await db.find(args.name)
        if found is None:
            print(f"voicegw: no campaign named {args.name!r} in {store.where}",
                  file=sys.stderr)
            return 1
        tally = await db.tally(found.id)
        print(_line(found, tally))
        print(f"  from {found.source}, agent {found.call.agent}, created "
              f"{_when(found.created_at)}, id {found.id}")
        print("  contacts: " + ", ".join(f"{s.value} {n}" for s, n in tally.states.items()))
        if tally.results:
            print("  results: " + ", ".join(f"{r.value} {n}" for r, n in
                                            sorted(tally.results.items(), key=lambda x: -x[1])))
        print(f"  attempts {tally.attempts}, last call started {_when(tally.last_dial_at)}")
        if args.results:
            write_results(args.results, await db.contacts(found.id))
            print(f"  results written to {args.results}")
        return 0
    finally:
        await store.aclose()


def _line(c: Campaign, tally: Tally) -> str:
    total = sum(tally.states.values())
    ended = tally.states.get(ContactState.DONE, 0) + tally.states.get(ContactState.SKIPPED, 0)
    state = f"finished {_when(c.finished_at)}" if c.finished_at else "not finished"
    return f"{c.name}: {ended}/{total} contacts ended, {state}"


def _when(at: float | None) -> str:
    if at is None:
        return "never"
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M UTC")


async def dnc(args: argparse.Namespace) -> int:
    listing = args.dnc_command == "list"
    store = _store(create=not listing)
    await store.open()
    try:
        db = CampaignStore(store)
        if listing:
            for entry in await db.dnc_list():
                number = entry.number if args.full_numbers else gwlog.mask_number(entry.number)
                print(f"{number}\t{_when(entry.added_at)}\t{entry.reason}")
            return 0
        try:
            numbers = [e164(n, "number") for n in args.numbers]
        except DialInputError as exc:
            raise ConfigError(str(exc)) from None
        for number in numbers:
            if args.dnc_command == "add":
                fresh = await db.dnc_add(number, args.reason, time.time())
                print(f"{gwlog.mask_number(number)}: {'added' if fresh else 'already listed'}")
            else:
                gone = await db.dnc_remove(number)
                print(f"{gwlog.mask_number(number)}: {'removed' if gone else 'not listed'}")
        return 0
    finally:
        await store.aclose()
