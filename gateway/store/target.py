"""Where call records go, from the environment.

* ``VOICEGW_DATABASE``: ``off`` (no records), a PostgreSQL URL, or an SQLite file path.
* else ``DATABASE_URL``, if it is a PostgreSQL URL (the usual variable on hosting platforms;
  any other kind of URL there is someone else's and is left alone).
* else ``./voicegw-calls.db``: records work with no set-up at all.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from gateway.store.base import CallStore
from gateway.store.postgres import PostgresStore
from gateway.store.sqlite import SqliteStore

DEFAULT_PATH: Final = Path("voicegw-calls.db")
_POSTGRES: Final = ("postgres://", "postgresql://")


def store_from_env(env: Mapping[str, str] | None = None, *,
                   create: bool = True) -> CallStore | None:
    """The configured store (not opened yet), or None when records are switched off.

    ``create=False`` (the CLI): an SQLite file that does not exist is an error, not a new file.
    """
    env = os.environ if env is None else env
    chosen = env.get("VOICEGW_DATABASE", "").strip()
    if chosen.lower() in ("off", "none", "false", "0"):
        return None
    if not chosen:
        url = env.get("DATABASE_URL", "").strip()
        chosen = url if url.startswith(_POSTGRES) else ""
    if chosen.startswith(_POSTGRES):
        return PostgresStore(chosen)
    return SqliteStore(Path(chosen) if chosen else DEFAULT_PATH, create=create)
