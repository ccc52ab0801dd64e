"""The console's settings: off unless enabled, its own port, a way to sign in required,
secrets checked without being quoted; and ``voicegw console hash-password``."""

from __future__ import annotations

import io

import argon2
import pytest

from gateway.cli import main
from gateway.console.settings import console_settings, hash_password
from gateway.errors import ConfigError
from tests.console_kit import HASH, KEY, TOKEN

CREDENTIALS = {"VOICEGW_CONSOLE_PASSWORD_HASH": HASH}


def test_off_unless_enabled_by_the_variable_or_the_flag() -> None:
    assert console_settings({}) is None
    assert console_settings({"VOICEGW_CONSOLE": "off", **CREDENTIALS}) is None
    on = console_settings({"VOICEGW_CONSOLE": "on", **CREDENTIALS})
    assert on is not None and on.listen is None
    own = console_settings({"VOICEGW_CONSOLE": "127.0.0.1:9443", **CREDENTIALS})
    assert own is not None and own.listen == ("127.0.0.1", 9443)
    flag = console_settings({"VOICEGW_CONSOLE": "off", **CREDENTIALS}, "[::1]:8081")
    assert flag is not None and flag.listen == ("::1", 8081)
    same = console_settings({"VOICEGW_CONSOLE": "0.0.0.0:1", **CREDENTIALS}, "")
    assert same is not None and same.listen is None  # the flag wins
    for bad in ("maybe", "host:", ":80", "host:99999"):
        with pytest.raises(ConfigError, match="on, off or HOST:PORT"):
            console_settings({"VOICEGW_CONSOLE": bad, **CREDENTIALS})


def test_enabled_without_a_password_hash_or_token_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"nobody could sign in.*hash-password"):
        console_settings({"VOICEGW_CONSOLE": "on"})
    token_only = console_settings({"VOICEGW_CONSOLE": "on", "VOICEGW_CONSOLE_TOKEN": TOKEN})
    assert token_only is not None and token_only.password_hash is None


@pytest.mark.parametrize(("env", "message"), [
    ({"VOICEGW_CONSOLE_PASSWORD_HASH": "hunter2-in-clear"}, "not an argon2 hash"),
    ({"VOICEGW_CONSOLE_PASSWORD_HASH":
      argon2.PasswordHasher(time_cost=1, memory_cost=8, parallelism=1,
                            type=argon2.Type.I).hash("old-style-pass")}, "must be argon2id"),
    ({"VOICEGW_CONSOLE_TOKEN": "short-token-1234"}, "TOKEN must be at least 32"),
    ({**CREDENTIALS, "VOICEGW_CONSOLE_SECRET": "short-key-5678"}, "SECRET must be at least"),
    ({**CREDENTIALS, "VOICEGW_CONSOLE_SESSION_HOURS": "forever"}, "must be a number"),
    ({**CREDENTIALS, "VOICEGW_CONSOLE_ORIGIN": "https://a.example/path"}, "origins like"),
])
def test_bad_values_are_refused_without_quoting_secrets(env: dict[str, str],
                                                        message: str) -> None:
    with pytest.raises(ConfigError, match=message) as refused:
        console_settings({"VOICEGW_CONSOLE": "on", **env})
    for name in ("VOICEGW_CONSOLE_PASSWORD_HASH", "VOICEGW_CONSOLE_TOKEN",
                 "VOICEGW_CONSOLE_SECRET"):
        if name in env:
            assert env[name] not in str(refused.value)


def test_settings_hold_secrets_that_never_print() -> None:
    settings = console_settings({"VOICEGW_CONSOLE": "on", **CREDENTIALS,
                                 "VOICEGW_CONSOLE_TOKEN": TOKEN,
                                 "VOICEGW_CONSOLE_SECRET": KEY.decode(),
                                 "VOICEGW_CONSOLE_SESSION_HOURS": "2",
                                 "VOICEGW_CONSOLE_ORIGIN": "https://ops.example:8443/, "
                                                           "http://localhost:5173"})
    assert settings is not None
    assert settings.session_s == 7200
    assert settings.origins == ("https://ops.example:8443", "http://localhost:5173")
    assert settings.signing_key() == KEY
    for secret in (HASH, TOKEN, KEY.decode()):
        assert secret not in repr(settings)
        assert secret in settings.secrets()
    random_key = console_settings({"VOICEGW_CONSOLE": "on", **CREDENTIALS})
    assert random_key is not None
    assert random_key.signing_key() != random_key.signing_key()  # a new key per start


def test_serve_refuses_to_start_a_console_nobody_can_sign_in_to(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "test-key-not-used")
    monkeypatch.delenv("VOICEGW_CONSOLE_PASSWORD_HASH", raising=False)
    monkeypatch.delenv("VOICEGW_CONSOLE_TOKEN", raising=False)
    assert main(["serve", "--port", "0", "--console"]) == 2
    assert "nobody could sign in" in capsys.readouterr().err


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_hash_password_reads_stdin_or_prompts_and_prints_an_argon2id_hash(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    password = "a long console password"
    monkeypatch.setattr("sys.stdin", io.StringIO(password + "\n"))
    assert main(["console", "hash-password"]) == 0
    printed = capsys.readouterr().out.strip()
    assert printed.startswith("$argon2id$") and password not in printed
    assert argon2.PasswordHasher().verify(printed, password)
    # On a terminal: asked twice, never echoed.
    answers = iter([password, password])
    monkeypatch.setattr("getpass.getpass", lambda _prompt: next(answers))
    out = io.StringIO()
    assert hash_password(Tty(), out) == 0
    assert argon2.PasswordHasher().verify(out.getvalue().strip(), password)
    answers = iter([password, password + "!"])
    assert hash_password(Tty(), io.StringIO()) == 1
    assert hash_password(io.StringIO("short\n"), io.StringIO()) == 1
