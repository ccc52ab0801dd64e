"""The Vonage Voice API client against a fake Voice API on a loopback socket, which checks
each request's RS256 application JWT with the application's public key."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from structlog.testing import capture_logs
from vonage_jwt.jwt import JwtClient
from vonage_voice.models.connect_endpoints import PhoneEndpoint, SipEndpoint
from vonage_voice.models.ncco import Connect

from gateway.carrier_setup.vonage import from_env
from gateway.errors import CallControlError, ConfigError
from gateway.rest.vonage import VonageCredentials, VonageRest, transfer_ncco
from gateway.rig.rest_fakes import serving
from gateway.rig.rest_fakes.vonage import NO_WAIT, FakeVonage, fake_vonage
from tests.cases.vonage import APPLICATION_ID, KEY, PEM

CALL = "63f61863-4a51-4f6b-86e1-46edebcf9356"


@pytest.fixture
async def line() -> AsyncIterator[tuple[FakeVonage, VonageRest]]:
    async with fake_vonage(APPLICATION_ID, KEY) as pair:
        yield pair


def claims(header: str | None) -> dict[str, object]:
    assert header is not None and header.startswith("Bearer ")
    decoded: dict[str, object] = jwt.decode(header.removeprefix("Bearer "), KEY.public_key(),
                                            algorithms=["RS256"])
    return decoded


async def test_hang_up_puts_hangup_with_a_fresh_application_jwt(
        line: tuple[FakeVonage, VonageRest]) -> None:
    fake, rest = line
    assert await rest.hang_up(CALL) is True
    assert await rest.hang_up(CALL) is True
    first, second = fake.requests
    assert (first.method, first.path, first.json) == ("PUT", f"/v1/calls/{CALL}",
                                                      {"action": "hangup"})
    assert first.content_type == "application/json"
    one, two = claims(first.auth), claims(second.auth)
    assert one["application_id"] == APPLICATION_ID
    assert one["jti"] != two["jti"]  # a new token for every request
    # The claims Vonage's own SDK puts in an application JWT, no more, no fewer.
    sdk = jwt.decode(JwtClient(APPLICATION_ID, PEM).generate_application_jwt(),
                     KEY.public_key(), algorithms=["RS256"])
    assert set(one) == set(sdk)
    assert isinstance(one["iat"], int) and isinstance(one["exp"], int)
    assert 0 < one["exp"] - one["iat"] <= 900


async def test_transfer_connects_the_number_without_its_plus(
        line: tuple[FakeVonage, VonageRest]) -> None:
    fake, rest = line
    assert await rest.transfer(CALL, "+15550111") is True
    [request] = fake.requests
    sdk = PhoneEndpoint(number="15550111").model_dump(by_alias=True, exclude_none=True,
                                                      mode="json")
    assert request.json == {"action": "transfer", "destination": {
        "type": "ncco", "ncco": [{"action": "connect", "endpoint": [sdk]}]}}


def test_transfer_nccos_are_what_vonages_models_write() -> None:
    phone = Connect(endpoint=[PhoneEndpoint(number="15550111")], from_="15550199")
    assert transfer_ncco("+15550111", "+15550199") == [
        phone.model_dump(by_alias=True, exclude_none=True, mode="json")]
    sip = Connect(endpoint=[SipEndpoint(uri="sip:desk@pbx.example.com")], from_="15550199")
    assert transfer_ncco(" sip:desk@pbx.example.com ", "15550199") == [
        sip.model_dump(by_alias=True, exclude_none=True, mode="json")]
    for bad in ("", " ", "billing", "+0123", "<script>"):
        with pytest.raises(ValueError, match=r"E\.164|empty"):
            transfer_ncco(bad)


async def test_a_transfer_shows_the_configured_caller_id() -> None:
    fake = FakeVonage(APPLICATION_ID, KEY.public_key())
    async with serving(fake.app()) as url:
        rest = VonageRest(VonageCredentials(APPLICATION_ID, KEY), base_url=url,
                          caller_id="+15550199", retry=NO_WAIT)
        try:
            assert await rest.transfer(CALL, "15550111")
        finally:
            await rest.aclose()
    [request] = fake.requests
    assert request.json["destination"]["ncco"][0]["from"] == "15550199"
    with pytest.raises(ConfigError, match="VONAGE_TRANSFER_FROM"):
        VonageRest(VonageCredentials(APPLICATION_ID, KEY), caller_id="front desk")


async def test_a_bad_destination_sends_nothing(line: tuple[FakeVonage, VonageRest]) -> None:
    fake, rest = line
    with pytest.raises(ValueError, match=r"E\.164"):
        await rest.transfer(CALL, "billing")
    assert fake.requests == []


async def test_a_call_that_already_ended_is_not_an_error(
        line: tuple[FakeVonage, VonageRest]) -> None:
    fake, rest = line
    fake.script.statuses = [404]
    assert await rest.hang_up(CALL) is False
    assert len(fake.requests) == 1  # a 404 is an answer, not a failure to retry


@pytest.mark.parametrize("status", [500, 502, 503, 504, 429])
async def test_server_errors_and_rate_limits_are_retried(
        line: tuple[FakeVonage, VonageRest], status: int) -> None:
    fake, rest = line
    fake.script.statuses = [status, status]
    with capture_logs() as logs:
        assert await rest.hang_up(CALL) is True
    assert len(fake.requests) == 3
    assert [e["attempt"] for e in logs if e["event"] == "carrier_retry"] == [1, 2]
    assert len({str(claims(r.auth)["jti"]) for r in fake.requests}) == 3  # each its own token


async def test_gives_up_after_the_last_attempt(line: tuple[FakeVonage, VonageRest]) -> None:
    fake, rest = line
    fake.script.statuses = [500] * 10
    with pytest.raises(CallControlError, match="failed after 4 attempts: HTTP 500"):
        await rest.hang_up(CALL)
    assert len(fake.requests) == 4


async def test_a_refusal_raises_without_leaking_the_key_or_the_token() -> None:
    other = VonageCredentials.from_pem(APPLICATION_ID, _other_pem())  # not the app's key
    fake = FakeVonage(APPLICATION_ID, KEY.public_key())
    async with serving(fake.app()) as url:
        rest = VonageRest(other, base_url=url, retry=NO_WAIT)
        try:
            with capture_logs() as logs, pytest.raises(CallControlError) as info:
                await rest.hang_up(CALL)
        finally:
            await rest.aclose()
    assert info.value.status == 401
    assert "did not provide correct credentials" in str(info.value)  # Vonage's own words
    assert len(fake.requests) == 1  # a 4xx is not retried
    sent = fake.requests[0].auth
    assert sent is not None
    for leak in (sent.removeprefix("Bearer "), *_pem_lines(_OTHER[0])):
        assert leak not in str(info.value)
        assert leak not in repr(logs)


async def test_connection_failures_are_retried_then_reported() -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rest = VonageRest(VonageCredentials(APPLICATION_ID, KEY), base_url=f"http://127.0.0.1:{port}",
                      retry=NO_WAIT)
    try:
        with pytest.raises(CallControlError, match="failed after 4 attempts"):
            await rest.hang_up(CALL)
    finally:
        await rest.aclose()


async def test_call_uuids_cannot_escape_the_path(line: tuple[FakeVonage, VonageRest]) -> None:
    fake, rest = line
    for bad in ("../../applications", "a/b", "", "a" * 81):
        with pytest.raises(ValueError, match="not a call uuid"):
            await rest.hang_up(bad)
    assert fake.requests == []


# -- credentials -----------------------------------------------------------------------------


_OTHER: list[str] = []


def _other_pem() -> str:
    """Another RSA key's PEM, made once."""
    if not _OTHER:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        _OTHER.append(key.private_bytes(serialization.Encoding.PEM,
                                        serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()).decode())
    return _OTHER[0]


def _pem_lines(pem: str) -> list[str]:
    return [line for line in pem.splitlines() if not line.startswith("-----")]


def test_credentials_from_pem_text_a_file_or_escaped_newlines(tmp_path: Path) -> None:
    path = tmp_path / "private.key"
    path.write_text(PEM)
    for value in (PEM, str(path), PEM.replace("\n", "\\n")):
        creds = VonageCredentials.from_env({"VONAGE_APPLICATION_ID": APPLICATION_ID,
                                            "VONAGE_PRIVATE_KEY": value})
        assert creds is not None
        assert claims("Bearer " + creds.token())["application_id"] == APPLICATION_ID
        assert "PRIVATE" not in repr(creds)


def test_credentials_that_cannot_work_are_refused_at_start_up(tmp_path: Path) -> None:
    assert VonageCredentials.from_env({}) is None
    env = {"VONAGE_APPLICATION_ID": APPLICATION_ID}
    with pytest.raises(ConfigError, match="go together"):
        VonageCredentials.from_env({"VONAGE_PRIVATE_KEY": PEM})
    with pytest.raises(ConfigError, match="cannot read"):
        VonageCredentials.from_env({**env, "VONAGE_PRIVATE_KEY": str(tmp_path / "none.key")})
    broken = ("-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n"
              "-----END PRIVATE KEY-----")
    with pytest.raises(ConfigError, match="not an unencrypted PEM") as info:
        VonageCredentials.from_env({**env, "VONAGE_PRIVATE_KEY": broken})
    assert "MIIEvQ" not in str(info.value)
    ec_pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()).decode()
    with pytest.raises(ConfigError, match="RSA"):
        VonageCredentials.from_env({**env, "VONAGE_PRIVATE_KEY": ec_pem})
    with pytest.raises(ConfigError, match="application id"):
        VonageCredentials.from_pem("not an id!", PEM)


def test_setup_builds_call_control_from_the_application_key() -> None:
    setup = from_env({"VONAGE_APPLICATION_ID": APPLICATION_ID, "VONAGE_PRIVATE_KEY": PEM,
                      "VOICEGW_VONAGE_API_URL": "http://127.0.0.1:9"})
    assert isinstance(setup.call_control, VonageRest)
    assert setup.call_control.http.base_url == "http://127.0.0.1:9"
    assert not setup.signed
