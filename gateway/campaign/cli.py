"""``voicegw campaign run|status`` and ``voicegw dnc add|remove|list``.

:mod:`gateway.cli` adds these to its parser and hands them over here; everything heavier than
argparse is imported when a command runs, so ``voicegw --help`` stays fast.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any, Final

COMMANDS: Final = frozenset({"campaign", "dnc"})
DEFAULT_GATEWAY: Final = "http://127.0.0.1:8080"
_DURATION: Final = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNITS: Final = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def duration_s(text: str) -> float:
    """``90``, ``90s``, ``15m``, ``2h``, ``1d`` as seconds."""
    match = _DURATION.match(text)
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r}: a duration such as 90s, 15m or 2h")
    return float(match.group(1)) * _UNITS[match.group(2)]


def _positive(kind: type[int] | type[float]) -> Any:
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: expected a number") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{text!r}: must be more than 0")
        return value

    return parse


def add_commands(sub: Any) -> None:
    campaign = sub.add_parser("campaign", help="call a list of contacts through the gateway's "
                              "/v1/calls API (VOICEGW_API_TOKEN), politely and resumably")
    campaign_sub = campaign.add_subparsers(dest="campaign_command", required=True)
    run = campaign_sub.add_parser(
        "run", help="start a campaign, or resume the one of the same name where it left off")
    run.add_argument("csv", type=Path, help="contacts: a number (or phone, to) column, an "
                     "optional timezone column (IANA, e.g. Europe/Paris; default: the "
                     "number's country); every other column is passed to the agent")
    run.add_argument("--name", help="the campaign's name (default: the file's name without "
                     ".csv); the same name again resumes it")
    run.add_argument("--agent", help="the agent that talks (required to start a campaign)")
    run.add_argument("--carrier", help="the carrier to dial on (default: the gateway's only)")
    run.add_argument("--from", dest="from_", metavar="NUMBER",
                     help="the number calls come from (default: the carrier's "
                     "VOICEGW_<CARRIER>_FROM on the gateway)")
    run.add_argument("--machine-detection", choices=["continue", "hangup", "leave_message"],
                     default="continue", help="what to do when a machine answers")
    run.add_argument("--voicemail-message", help="the message left after the beep "
                     "(with --machine-detection leave_message)")
    run.add_argument("--timeout", type=int, metavar="S", help="seconds to let a call ring")
    run.add_argument("--concurrency", type=_positive(int), default=10,
                     help="calls in flight at most (default 10)")
    run.add_argument("--rate", type=_positive(float), default=30.0, metavar="CALLS/MIN",
                     help="calls started per minute at most, evenly spaced (default 30)")
    run.add_argument("--window", default="09:00-20:00", metavar="HH:MM-HH:MM",
                     help="when calls may start, in each contact's own time zone "
                     "(default 09:00-20:00; 00:00-24:00 for any time)")
    run.add_argument("--retry-delay", type=duration_s, default=1800.0, metavar="DURATION",
                     help="wait before calling again after busy, no answer or failed "
                     "(default 30m)")
    run.add_argument("--max-attempts", type=_positive(int), default=3,
                     help="attempts per contact, the first included (default 3)")
    run.add_argument("--results", type=Path, metavar="CSV", help="where to write the results "
                     "(default: NAME-results.csv beside the contacts file)")
    run.add_argument("--gateway", metavar="URL", help="the gateway (default: "
                     f"VOICEGW_GATEWAY_URL, VOICEGW_PUBLIC_URL or {DEFAULT_GATEWAY})")
    run.add_argument("--poll", type=_positive(float), default=1.0, metavar="S",
                     help="seconds between two looks at a call's status (default 1)")
    run.add_argument("--no-progress", action="store_true",
                     help="no progress bar (a line every tenth of the way instead)")

    status = campaign_sub.add_parser("status", help="where campaigns stand (all, or one)")
    status.add_argument("name", nargs="?")
    status.add_argument("--results", type=Path, metavar="CSV",
                        help="also write the named campaign's results CSV here")

    dnc = sub.add_parser("dnc", help="the do-not-call list every campaign checks before "
                         "each call")
    dnc_sub = dnc.add_subparsers(dest="dnc_command", required=True)
    add = dnc_sub.add_parser("add", help="never call these numbers")
    add.add_argument("numbers", nargs="+", metavar="NUMBER", help="E.164, e.g. +15550100100")
    add.add_argument("--reason", default="", help="why (kept with the entry)")
    remove = dnc_sub.add_parser("remove", help="take numbers off the list")
    remove.add_argument("numbers", nargs="+", metavar="NUMBER")
    listing = dnc_sub.add_parser("list", help="the numbers on the list")
    listing.add_argument("--full-numbers", action="store_true",
                         help="print numbers whole (masked by default, as in the logs)")


def run(args: argparse.Namespace) -> int:
    import asyncio  # noqa: PLC0415

    from gateway.campaign import commands  # noqa: PLC0415

    if args.command == "dnc":
        return asyncio.run(commands.dnc(args))
    if args.campaign_command == "status":
        return asyncio.run(commands.status(args))
    return commands.run_campaign(args)
