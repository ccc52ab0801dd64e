"""structlog set-up: one JSON line per event, with secrets scrubbed before rendering.

Secret *values* are registered with :func:`register_secret` (the API key, the Vertex token,
the Twilio auth token) and replaced wherever they appear in an event, including inside
exception text, so a library that echoes a URL or header into an error cannot leak them.
Keys whose *names* look secret are masked whatever their value.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, Final, TextIO

import structlog

_SECRET_NAMES: Final = ("key", "token", "secret", "password", "authorization")
_secrets: set[str] = set()
MASK: Final = "***"
_COUNT_NAME: Final = re.compile(r"tokens|token_?count")


def register_secret(value: str | None) -> None:
    """Scrub ``value`` from every log line from now on (short values are too risky to match)."""
    if value and len(value) >= 6:
        _secrets.add(value)


def scrub(text: str) -> str:
    # Longest first: if one secret contains another, replacing the short one first would
    # leave the rest of the long one in clear.
    for s in sorted(_secrets, key=len, reverse=True):
        if s in text:
            text = text.replace(s, MASK)
    return text


def _secret_name(key: object) -> bool:
    if not isinstance(key, str):
        return False
    lower = key.lower()
    # Token *counts* (usage, stats) are not secrets.
    return any(s in lower for s in _SECRET_NAMES) and not _COUNT_NAME.search(lower)


def _scrub_value(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {k: MASK if _secret_name(k) and v is not None else _scrub_value(v)
                for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub_value(v) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    # Anything else (an exception passed as ``error=exc``, a URL object...) is rendered by
    # the JSON renderer with __structlog__() or repr(); do that here so its text is scrubbed too.
    hook = getattr(value, "__structlog__", None)
    return _scrub_value(hook()) if callable(hook) else scrub(repr(value))


def redact(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for k in list(event):
        if _secret_name(k) and event[k] is not None:
            event[k] = MASK
        else:
            event[k] = _scrub_value(event[k])
    return event


def mask_number(number: str | None) -> str | None:
    """Phone numbers are personal data: keep the last three digits for correlation."""
    if not number:
        return number
    return "*" * max(len(number) - 3, 0) + number[-3:]


def configure(level: str = "info", stream: TextIO | None = None) -> None:
    """JSON lines to ``stream`` (stderr by default). Safe to call more than once."""
    lvl = logging.getLevelName(level.upper())
    if not isinstance(lvl, int):
        lvl = logging.INFO
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        # Each line and its newline in one write: ``serve --workers`` share one stderr, and
        # print()'s separate write of the newline let two workers' lines run together.
        logger_factory=structlog.WriteLoggerFactory(stream or sys.stderr),
        cache_logger_on_first_use=False,
    )
