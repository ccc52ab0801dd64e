"""``voicegw dial``: place one call through a running gateway's ``/v1/calls`` API (with
``VOICEGW_API_TOKEN``), print its id, and with ``--wait`` follow it to its end."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import uuid
from typing import Any, Final

import aiohttp

from gateway.errors import ConfigError

FINAL: Final = frozenset({"busy", "no_answer", "failed", "canceled", "completed"})
POLL_S: Final = 1.0


def add_command(sub: Any) -> None:
    dial = sub.add_parser("dial", help="place a call through a running gateway "
                          "(its /v1/calls API; needs VOICEGW_API_TOKEN)")
    dial.add_argument("number", help="the number to call, E.164 (+15550100100)")
    dial.add_argument("--agent", required=True, help="the agent that talks")
    dial.add_argument("--from", dest="from_", help="the number to call from (default: the "
                      "gateway's VOICEGW_<CARRIER>_FROM)")
    dial.add_argument("--carrier", help="which carrier places it (default: the only one)")
    dial.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                      help="a custom parameter for the agent (repeatable)")
    dial.add_argument("--machine-detection", choices=["continue", "hangup", "leave_message"])
    dial.add_argument("--voicemail-message", help="said after the beep (leave_message)")
    dial.add_argument("--timeout", type=int, help="seconds to let it ring")
    dial.add_argument("--key", help="Idempotency-Key (default: a new one; pass the same to "
                      "retry safely)")
    dial.add_argument("--gateway", default=os.environ.get("VOICEGW_GATEWAY_URL",
                                                          "http://127.0.0.1:8080"),
                      help="the gateway's base URL (default VOICEGW_GATEWAY_URL or "
                      "http://127.0.0.1:8080)")
    dial.add_argument("--wait", action="store_true", help="follow the call to its end")


def body_of(args: argparse.Namespace) -> dict[str, Any]:
    params = {}
    for item in args.param:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ConfigError(f"--param {item!r}: expected NAME=VALUE")
        params[name] = value
    body: dict[str, Any] = {"to": args.number, "agent": args.agent, "parameters": params}
    for key, value in (("from", args.from_), ("carrier", args.carrier),
                       ("machine_detection", args.machine_detection),
                       ("voicemail_message", args.voicemail_message),
                       ("timeout_s", args.timeout)):
        if value is not None:
            body[key] = value
    return body


async def run(args: argparse.Namespace) -> int:
    token = os.environ.get("VOICEGW_API_TOKEN", "").strip()
    if not token:
        raise ConfigError("VOICEGW_API_TOKEN is not set (the gateway's API token)")
    base = args.gateway.rstrip("/")
    headers = {"Authorization": f"Bearer {token}",
               "Idempotency-Key": args.key or f"cli-{uuid.uuid4().hex}"}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        async with http.post(f"{base}/v1/calls", json=body_of(args), headers=headers) as resp:
            record = await resp.json(content_type=None)
            if resp.status >= 400:
                print(f"voicegw: {resp.status}: {record.get('error', record)}",
                      file=sys.stderr)
                return 1
        print(json.dumps(record, indent=2) if not args.wait else
              f"{record['id']} {record['status']}")
        while args.wait and record["status"] not in FINAL:
            await asyncio.sleep(POLL_S)  # polling a remote API, not synchronising a test
            async with http.get(f"{base}/v1/calls/{record['id']}", headers=headers) as resp:
                latest = await resp.json(content_type=None)
            if latest["status"] != record["status"]:
                print(f"{latest['id']} {latest['status']}")
            record = latest
        if args.wait:
            print(json.dumps(record, indent=2))
    return 0 if record["status"] != "failed" else 1
