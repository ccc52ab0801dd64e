"""Logging: one JSON object per line, secrets scrubbed wherever they appear."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from gateway import log as gwlog
from gateway.config import load_settings
from gateway.errors import LiveConnectError

SECRET = "AIzaSy-TEST-secret-value-9876"


@pytest.fixture
def out() -> Iterator[io.StringIO]:
    saved = set(gwlog._secrets)
    stream = io.StringIO()
    gwlog.configure("debug", stream=stream)
    gwlog.register_secret(SECRET)
    structlog.contextvars.clear_contextvars()
    try:
        yield stream
    finally:
        gwlog._secrets.clear()
        gwlog._secrets.update(saved)
        structlog.contextvars.clear_contextvars()
        structlog.reset_defaults()


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    text = stream.getvalue()
    assert text.endswith("\n")
    records = [json.loads(line) for line in text.splitlines()]
    assert all(isinstance(r, dict) for r in records)
    return records


def test_one_json_object_per_line(out: io.StringIO) -> None:
    logger = structlog.get_logger()
    logger.info("call.started", call_sid="CA1", frames=3)
    logger.warning("multi\nline\nmessage", detail="a\nb")
    logger.debug("tiny")
    records = lines(out)
    assert len(out.getvalue().splitlines()) == 3 == len(records)
    assert records[0]["event"] == "call.started"
    assert (records[0]["call_sid"], records[0]["frames"]) == ("CA1", 3)
    assert records[0]["level"] == "info"
    assert records[0]["timestamp"].endswith("Z")
    assert records[1]["event"] == "multi\nline\nmessage"
    assert records[1]["level"] == "warning"


def test_secret_inside_a_string_is_replaced(out: io.StringIO) -> None:
    structlog.get_logger().info(f"connecting with {SECRET}",
                                url=f"wss://h/ws?key={SECRET}&x=1",
                                nested={"headers": [f"Bearer {SECRET}"], "n": 1},
                                items=("a", SECRET))
    (rec,) = lines(out)
    assert SECRET not in out.getvalue()
    assert rec["event"] == "connecting with ***"
    assert rec["url"] == "wss://h/ws?key=***&x=1"
    assert rec["nested"] == {"headers": ["Bearer ***"], "n": 1}
    assert rec["items"] == ["a", "***"]


def test_secret_inside_an_exception_traceback_is_replaced(out: io.StringIO) -> None:
    try:
        raise LiveConnectError(f"handshake failed for wss://h/ws?key={SECRET}")
    except LiveConnectError:
        structlog.get_logger().exception("live.connect_failed")
    (rec,) = lines(out)
    assert SECRET not in out.getvalue()
    assert "LiveConnectError" in rec["exception"]
    assert "handshake failed for wss://h/ws?key=***" in rec["exception"]


def test_secret_inside_an_exception_passed_as_a_value_is_replaced(out: io.StringIO) -> None:
    exc = ValueError(f"bad header x-goog-api-key: {SECRET}")
    structlog.get_logger().error("live.error", error=exc, errors=[exc])
    (rec,) = lines(out)
    assert SECRET not in out.getvalue()
    assert "ValueError" in rec["error"]
    assert "***" in rec["error"]
    assert "***" in rec["errors"][0]


def test_secret_in_exc_info_instance_is_replaced(out: io.StringIO) -> None:
    structlog.get_logger().error("boom", exc_info=RuntimeError(f"token={SECRET}"))
    assert SECRET not in out.getvalue()
    assert "token=***" in lines(out)[0]["exception"]


@pytest.mark.parametrize("key", ["api_key", "GEMINI_API_KEY", "authorization", "auth_token",
                                 "twilio_secret", "password", "x-goog-api-key", "key"])
def test_keys_named_like_secrets_are_masked_whatever_their_value(out: io.StringIO,
                                                                 key: str) -> None:
    structlog.get_logger().info("settings", **{key: "short"})
    assert lines(out)[0][key] == "***"
    assert "short" not in out.getvalue()


def test_secret_named_key_with_none_value_stays_null(out: io.StringIO) -> None:
    structlog.get_logger().info("settings", api_key=None)
    assert lines(out)[0]["api_key"] is None


def test_nested_secret_named_keys_are_masked(out: io.StringIO) -> None:
    structlog.get_logger().info("connect", headers={"x-goog-api-key": "unregistered-value",
                                                    "Authorization": "Bearer abc",
                                                    "user-agent": "gw/1"})
    rec = lines(out)[0]
    assert rec["headers"] == {"x-goog-api-key": "***", "Authorization": "***",
                              "user-agent": "gw/1"}


def test_token_counts_are_not_mistaken_for_tokens(out: io.StringIO) -> None:
    structlog.get_logger().info("usage", total_tokens=15, tokens_total=15,
                                usage={"promptTokenCount": 10, "response_token_count": 5})
    rec = lines(out)[0]
    assert (rec["total_tokens"], rec["tokens_total"]) == (15, 15)
    assert rec["usage"] == {"promptTokenCount": 10, "response_token_count": 5}


def test_overlapping_secrets_are_scrubbed_whole(out: io.StringIO) -> None:
    gwlog.register_secret("abcdef")
    gwlog.register_secret("abcdef-ghijkl-mnop")
    structlog.get_logger().info("x", value="v=abcdef-ghijkl-mnop;w=abcdef")
    rec = lines(out)[0]
    assert rec["value"] == "v=***;w=***"


def test_short_or_missing_secrets_are_not_registered(out: io.StringIO) -> None:
    gwlog.register_secret("abc")
    gwlog.register_secret("")
    gwlog.register_secret(None)
    assert "abc" not in gwlog._secrets
    structlog.get_logger().info("x", value="abcabc")
    assert lines(out)[0]["value"] == "abcabc"


def test_objects_are_rendered_and_scrubbed(out: io.StringIO) -> None:
    class Holder:
        def __repr__(self) -> str:
            return f"Holder({SECRET})"

    settings = load_settings(env={"GEMINI_API_KEY": SECRET})
    structlog.get_logger().info("x", holder=Holder(), settings=settings, n=1.5, flag=True,
                                nothing=None)
    rec = lines(out)[0]
    assert SECRET not in out.getvalue()
    assert rec["holder"] == "Holder(***)"
    assert rec["settings"].startswith("Settings(")
    assert (rec["n"], rec["flag"], rec["nothing"]) == (1.5, True, None)


def test_contextvars_are_merged_and_scrubbed(out: io.StringIO) -> None:
    structlog.contextvars.bind_contextvars(call_sid="CA42", url=f"wss://x?key={SECRET}")
    structlog.get_logger().info("media")
    rec = lines(out)[0]
    assert rec["call_sid"] == "CA42"
    assert rec["url"] == "wss://x?key=***"


def test_level_filtering() -> None:
    stream = io.StringIO()
    try:
        gwlog.configure("warning", stream=stream)
        logger = structlog.get_logger()
        logger.info("hidden")
        logger.warning("shown")
        assert [r["event"] for r in lines(stream)] == ["shown"]
        stream2 = io.StringIO()
        gwlog.configure("no-such-level", stream=stream2)  # falls back to info
        structlog.get_logger().debug("hidden")
        structlog.get_logger().info("shown")
        assert [r["event"] for r in lines(stream2)] == ["shown"]
    finally:
        structlog.reset_defaults()


def test_scrub_function_directly(out: io.StringIO) -> None:
    assert gwlog.scrub(f"a{SECRET}b{SECRET}") == "a***b***"
    assert gwlog.scrub("nothing here") == "nothing here"


@pytest.mark.parametrize(("number", "masked"), [
    ("+15551234567", "*********567"),
    ("5551234", "****234"),
    ("123", "123"),
    ("12", "12"),
    ("", ""),
    (None, None),
    ("client:alice", "*********ice"),
])
def test_mask_number(number: str | None, masked: str | None) -> None:
    result = gwlog.mask_number(number)
    assert result == masked
    if number and len(number) > 3:
        assert len(result or "") == len(number)
        assert number[:-3] not in (result or "")


def test_masked_numbers_in_a_log_line(out: io.StringIO) -> None:
    structlog.get_logger().info("call", caller=gwlog.mask_number("+15551234567"))
    assert lines(out)[0]["caller"] == "*********567"
    assert "555123" not in out.getvalue()
