"""Durable call records: every call's figures, transcript and tool calls, in SQLite (default)
or PostgreSQL. See the README's "Call records"."""

from gateway.store.base import CallStore, StoreError
from gateway.store.model import CallListing, CallRecord, ToolRow, record_of
from gateway.store.recorder import CallRecorder, RecorderStats
from gateway.store.target import store_from_env

__all__ = ["CallListing", "CallRecord", "CallRecorder", "CallStore", "RecorderStats",
           "StoreError", "ToolRow", "record_of", "store_from_env"]
