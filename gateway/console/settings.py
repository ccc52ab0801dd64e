"""The console's settings, from ``voicegw serve --console`` and ``VOICEGW_CONSOLE_*``.

Off unless ``VOICEGW_CONSOLE`` says ``on`` (on the gateway's own port) or ``HOST:PORT`` (a
listener of its own), or ``--console [HOST:PORT]`` is given; the flag wins. Enabled, it must
have a way to sign in: a password hash, a bearer token, or both. Bad values stop the start
with a :class:`ConfigError` that never quotes a secret.
"""

from __future__ import annotations

import getpass
import secrets
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, TextIO

import argon2
from yarl import URL

from gateway.config import Secret
from gateway.errors import ConfigError

MIN_SECRET: Final = 32  # characters of the bearer token and of the signing key
_ON: Final = frozenset({"1", "on", "true", "yes"})
_OFF: Final = frozenset({"", "0", "off", "false", "no"})


@dataclass(frozen=True, slots=True)
class ConsoleSettings:
    # Where the console listens when not on the gateway's own port: (host, port).
    listen: tuple[str, int] | None = None
    password_hash: Secret | None = field(default=None, repr=False)
    token: Secret | None = field(default=None, repr=False)
    # Signs session cookies; None: a random key per start (sessions end at a restart).
    key: Secret | None = field(default=None, repr=False)
    session_s: float = 12 * 3600.0
    # Origins the console's pages are served from, when not the host a request names
    # (e.g. behind a proxy that rewrites Host); empty: the request's own host.
    origins: tuple[str, ...] = ()

    def signing_key(self) -> bytes:
        return self.key.reveal().encode() if self.key else secrets.token_bytes(32)

    def secrets(self) -> list[str]:
        """Values to scrub from every log line."""
        return [s.reveal() for s in (self.password_hash, self.token, self.key) if s]


def parse_listen(where: str, name: str) -> tuple[str, int]:
    host, sep, port_text = where.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port_text.isdigit() or not 0 <= int(port_text) < 65536:
        raise ConfigError(f"{name} wants on, off or HOST:PORT, got {where[:40]!r}")
    return host, int(port_text)


def console_settings(env: Mapping[str, str], flag: str | None = None) -> ConsoleSettings | None:
    """The console's settings, or None when it is off. ``flag``: ``--console``'s value
    (None: not given; "": on the gateway's port; else HOST:PORT)."""
    listen: tuple[str, int] | None = None
    if flag is not None:
        if flag:
            listen = parse_listen(flag, "--console")
    else:
        chosen = env.get("VOICEGW_CONSOLE", "").strip()
        if chosen.lower() in _OFF:
            return None
        if chosen.lower() not in _ON:
            listen = parse_listen(chosen, "VOICEGW_CONSOLE")
    hash_text = env.get("VOICEGW_CONSOLE_PASSWORD_HASH", "").strip() or None
    token = env.get("VOICEGW_CONSOLE_TOKEN", "").strip() or None
    key = env.get("VOICEGW_CONSOLE_SECRET", "").strip() or None
    if hash_text is None and token is None:
        raise ConfigError("the console is on but nobody could sign in: set "
                          "VOICEGW_CONSOLE_PASSWORD_HASH (make one with `voicegw console "
                          "hash-password`) or VOICEGW_CONSOLE_TOKEN (for scripts), or both")
    if hash_text is not None:
        _check_hash(hash_text)
    for name, value in (("VOICEGW_CONSOLE_TOKEN", token), ("VOICEGW_CONSOLE_SECRET", key)):
        if value is not None and len(value) < MIN_SECRET:
            raise ConfigError(f"{name} must be at least {MIN_SECRET} characters")
    hours_text = env.get("VOICEGW_CONSOLE_SESSION_HOURS", "").strip() or "12"
    try:
        hours = float(hours_text)
    except ValueError:
        raise ConfigError("VOICEGW_CONSOLE_SESSION_HOURS must be a number") from None
    if not 0.01 <= hours <= 24 * 30:
        raise ConfigError("VOICEGW_CONSOLE_SESSION_HOURS must be between 0.01 and 720")
    return ConsoleSettings(listen=listen,
                           password_hash=Secret(hash_text) if hash_text else None,
                           token=Secret(token) if token else None,
                           key=Secret(key) if key else None, session_s=hours * 3600,
                           origins=_origins(env.get("VOICEGW_CONSOLE_ORIGIN", "")))


def _check_hash(text: str) -> None:
    try:
        params = argon2.extract_parameters(text)
    except argon2.exceptions.InvalidHashError:
        raise ConfigError("VOICEGW_CONSOLE_PASSWORD_HASH is not an argon2 hash: make one with "
                          "`voicegw console hash-password`") from None
    if params.type is not argon2.Type.ID:
        raise ConfigError("VOICEGW_CONSOLE_PASSWORD_HASH must be argon2id: make one with "
                          "`voicegw console hash-password`")


def _origins(text: str) -> tuple[str, ...]:
    out = []
    for item in (o.strip() for o in text.split(",")):
        if not item:
            continue
        url = URL(item)
        if url.scheme not in ("http", "https") or not url.host or url.path not in ("", "/") \
                or url.query_string or url.fragment:
            raise ConfigError(f"VOICEGW_CONSOLE_ORIGIN wants origins like https://host[:port], "
                              f"got {item[:60]!r}")
        out.append(str(url.origin()))
    return tuple(out)


def hash_password(stdin: TextIO | None = None, stdout: TextIO | None = None) -> int:
    """``voicegw console hash-password``: read a password (a prompt on a terminal, else a
    line of stdin; never an argument, which other users could read in the process list) and
    print its argon2id hash with the library's current parameters."""
    stdin, stdout = stdin or sys.stdin, stdout or sys.stdout
    if stdin.isatty():
        password = getpass.getpass("Console password: ")
        if getpass.getpass("Again: ") != password:
            print("voicegw: the passwords differ", file=sys.stderr)
            return 1
    else:
        password = stdin.readline().rstrip("\r\n")
    if len(password) < 12:
        print("voicegw: use a password of at least 12 characters", file=sys.stderr)
        return 1
    print(argon2.PasswordHasher().hash(password), file=stdout)
    return 0
