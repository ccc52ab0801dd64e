"""Placing calls on SignalWire, Telnyx, Plivo, Vonage, jambonz and Exotel: each REST client
against its carrier's fake on a loopback socket (path, credentials, fields), checked where
practical against the official SDK's own field names; refusals name the carrier's reason and
never a secret."""

from __future__ import annotations

import inspect
import typing
from urllib.parse import parse_qsl

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from structlog.testing import capture_logs

from gateway.carrier_setup import exotel as exotel_setup
from gateway.carrier_setup import signalwire as signalwire_setup
from gateway.carriers.core import Carrier
from gateway.carriers.twilio_hooks import read_progress as twiml_progress
from gateway.dialing.model import PlaceCall
from gateway.errors import CallControlError, ConfigError
from gateway.rest.exotel import ExotelCredentials, ExotelRest
from gateway.rest.telnyx import TelnyxRest, TexmlApp
from gateway.rest.twilio import TwilioRest
from gateway.rig.rest_fakes import serving
from gateway.rig.rest_fakes.exotel import FakeExotel
from gateway.rig.rest_fakes.jambonz import fake_jambonz
from gateway.rig.rest_fakes.plivo import NO_WAIT, fake_plivo
from gateway.rig.rest_fakes.telnyx import fake_telnyx
from gateway.rig.rest_fakes.twilio import FakeTwilio
from gateway.rig.rest_fakes.vonage import fake_vonage

CALL = PlaceCall(dial_id="dl_0123456789abcdef", to="+15550100111", from_="+15550100999",
                 answer_url="https://gw.example.com/NAME/answer/sales?voicegw_dial=dl_01",
                 status_url="https://gw.example.com/NAME/status?voicegw_dial=dl_01",
                 timeout_s=25, carrier_amd=False)
AMD = PlaceCall(**{**{f: getattr(CALL, f) for f in CALL.__slots__}, "carrier_amd": True})
SECRET = "very-secret-token-0123456789"


async def test_signalwire_places_through_its_laml_api_as_twilio() -> None:
    fake = FakeTwilio("PJ-project", "PJ-project", SECRET, prefix="/api/laml")
    async with serving(fake.app()) as url:
        setup = signalwire_setup.from_env({
            "SIGNALWIRE_PROJECT_ID": "PJ-project", "SIGNALWIRE_API_TOKEN": SECRET,
            "SIGNALWIRE_SPACE_URL": "x.signalwire.com",
            "VOICEGW_SIGNALWIRE_API_URL": url + "/api/laml"})
        assert isinstance(setup.dialer, TwilioRest) and setup.read_progress is twiml_progress
        try:
            sid = await setup.dialer.place(AMD)
        finally:
            await setup.dialer.http.aclose()
    [req] = fake.placed
    assert sid.startswith("CA")
    assert req.path == "/api/laml/2010-04-01/Accounts/PJ-project/Calls.json"
    form = parse_qsl(req.body.decode())
    assert ("Url", AMD.answer_url) in form and ("AsyncAmd", "true") in form
    assert [v for k, v in form if k == "StatusCallbackEvent"] == \
        ["initiated", "ringing", "answered", "completed"]


def _telnyx_sdk_fields() -> set[str]:
    from telnyx.types.texml.accounts.call_calls_params import BodyWithURL
    hints = typing.get_type_hints(BodyWithURL, include_extras=True)
    return {meta.alias for hint in hints.values() for meta in _metadata(hint)
            if getattr(meta, "alias", None)}


def _metadata(hint: object) -> tuple[object, ...]:
    metadata = getattr(hint, "__metadata__", None)
    if metadata:
        return tuple(metadata)
    return tuple(m for arg in typing.get_args(hint) for m in _metadata(arg))


async def test_telnyx_places_through_the_texml_application() -> None:
    app = TexmlApp("f5586561-8ff0-4291-a51b-c7dfe4139ff9", "1293384261075731499")
    async with fake_telnyx(SECRET, app) as (fake, rest, _):
        call_id = await rest.place(AMD)
        plain = await rest.place(CALL)
    first, second = fake.placed
    assert call_id.startswith("v3:") and plain != call_id
    assert first.path == f"/v2/texml/Accounts/{app.account_sid}/Calls"
    assert first.auth == f"Bearer {SECRET}"
    assert first.json | {} == {
        "ApplicationSid": app.application_id, "To": AMD.to, "From": AMD.from_,
        "Url": AMD.answer_url, "UrlMethod": "POST", "StatusCallback": AMD.status_url,
        "StatusCallbackMethod": "POST",
        "StatusCallbackEvent": "initiated ringing answered completed", "Timeout": 25,
        "MachineDetection": "DetectMessageEnd", "AsyncAmd": True,
        "AsyncAmdStatusCallback": AMD.status_url, "AsyncAmdStatusCallbackMethod": "POST"}
    assert "MachineDetection" not in second.json
    assert set(first.json) <= _telnyx_sdk_fields()  # the SDK's own names for these fields


async def test_telnyx_without_its_texml_application_cannot_place() -> None:
    async with fake_telnyx(SECRET) as (fake, rest, _):
        with pytest.raises(CallControlError, match="VOICEGW_TELNYX_APPLICATION_ID"):
            await rest.place(CALL)
    assert fake.requests == []
    with pytest.raises(ConfigError, match="together"):
        TexmlApp.from_env({"VOICEGW_TELNYX_ACCOUNT_SID": "abc"})
    with pytest.raises(ConfigError, match="Telnyx id"):
        TexmlApp("../x", "1")


async def test_plivo_fires_the_call_and_cancels_its_request() -> None:
    import plivo.resources.calls as sdk
    auth_id = "MA" + "B" * 18
    async with fake_plivo(auth_id, SECRET) as (fake, rest):
        request_uuid = await rest.place(AMD)
        fake.script.statuses = [404]  # not a live call yet: its request is cancelled
        assert await rest.hang_up(request_uuid) is True
        fake.script.statuses = [404]
        assert await rest.hang_up(request_uuid) is False  # neither a call nor a request now
    create = fake.requests[0]
    assert (create.method, create.path) == ("POST", f"/v1/Account/{auth_id}/Call/")
    assert create.json == {
        "from": "15550100999", "to": "15550100111", "answer_url": AMD.answer_url,
        "answer_method": "POST", "ring_url": AMD.status_url, "ring_method": "POST",
        "hangup_url": AMD.status_url, "hangup_method": "POST", "ring_timeout": 25,
        "machine_detection": "true", "machine_detection_url": AMD.status_url,
        "machine_detection_method": "POST"}
    names = {p.rstrip("_") for p in inspect.signature(sdk.Calls.create).parameters}
    assert set(create.json) <= names  # the names Plivo's own SDK sends
    assert [(r.method, r.path) for r in fake.requests[1:3]] == [
        ("DELETE", f"/v1/Account/{auth_id}/Call/{request_uuid}/"),
        ("DELETE", f"/v1/Account/{auth_id}/Request/{request_uuid}/")]


async def test_vonage_creates_the_call_as_its_sdk_would() -> None:
    from vonage_voice.models.common import AdvancedMachineDetection, Phone
    from vonage_voice.models.requests import CreateCallRequest, ToPhone
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    app = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
    async with fake_vonage(app, key) as (fake, rest):
        uuid = await rest.place(AMD)
    [req] = fake.placed
    assert req.path == "/v1/calls" and len(uuid) == 36
    oracle = CreateCallRequest(
        to=[ToPhone(number="15550100111")], from_=Phone(number="15550100999"),
        answer_url=[AMD.answer_url], answer_method="GET", event_url=[AMD.status_url],
        event_method="POST", ringing_timer=25,
        advanced_machine_detection=AdvancedMachineDetection(
            behavior="continue", mode="default", beep_timeout=45))
    assert req.json == oracle.model_dump(by_alias=True, exclude_none=True)


async def test_jambonz_creates_the_call_with_its_hooks() -> None:
    account, app = "acct-5e1f", "app-0e06a1b0"
    async with fake_jambonz(account, SECRET, application_sid=app) as (fake, rest):
        sid = await rest.place(AMD)
    [req] = fake.placed
    assert (req.path, req.auth) == (f"/v1/Accounts/{account}/Calls", f"Bearer {SECRET}")
    assert sid and req.json == {
        "from": AMD.from_, "to": {"type": "phone", "number": AMD.to},
        "call_hook": {"url": AMD.answer_url, "method": "POST"},
        "call_status_hook": {"url": AMD.status_url, "method": "POST"}, "timeout": 25,
        "application_sid": app,
        "amd": {"actionHook": {"url": AMD.status_url, "method": "POST"}}}


async def test_exotel_dials_into_the_flow_and_cannot_hang_up() -> None:
    fake = FakeExotel("acme1", "key-1", SECRET)
    async with serving(fake.app()) as url:
        setup = exotel_setup.from_env({
            "EXOTEL_ACCOUNT_SID": "acme1", "EXOTEL_API_KEY": "key-1",
            "EXOTEL_API_TOKEN": SECRET, "VOICEGW_EXOTEL_FLOW_ID": "774411",
            "VOICEGW_EXOTEL_API_URL": url})
        rest = setup.dialer
        assert isinstance(rest, ExotelRest) and setup.carrier is Carrier.EXOTEL
        try:
            sid = await rest.place(AMD)
            with pytest.raises(CallControlError, match="no API to end"):
                await rest.hang_up(sid)
        finally:
            await rest.aclose()
    [req] = fake.placed
    assert req.path == "/v1/Accounts/acme1/Calls/connect.json"
    assert req.form == {
        "From": AMD.to, "CallerId": AMD.from_,
        "Url": "http://my.exotel.com/acme1/exoml/start_voice/774411", "TimeOut": "25",
        "StatusCallback": AMD.status_url, "StatusCallbackEvents[0]": "answered",
        "StatusCallbackEvents[1]": "terminal", "StatusCallbackContentType": "application/json",
        "CustomField": AMD.dial_id}
    assert ExotelCredentials.from_env({}) is None
    assert ExotelCredentials.from_env({"EXOTEL_API_KEY": "k"}) is None  # no flow to dial into
    with pytest.raises(ConfigError, match="together"):
        ExotelCredentials.from_env({"VOICEGW_EXOTEL_FLOW_ID": "774411"})


async def test_refusals_name_the_carriers_reason_and_never_the_secret() -> None:
    auth_id = "MA" + "C" * 18
    async with fake_plivo(auth_id, SECRET) as (fake, rest):
        fake.script.statuses = [400]
        with capture_logs() as logs, pytest.raises(CallControlError) as err:
            await rest.place(CALL)
    assert err.value.status == 400 and "plivo refused place" in str(err.value)
    app = TexmlApp("acct", "1")
    async with fake_telnyx(SECRET, app) as (_, _, url):
        wrong = TelnyxRest(SECRET + "-revoked", base_url=url, texml=app, retry=NO_WAIT)
        try:
            with pytest.raises(CallControlError) as refused:
                await wrong.place(CALL)
        finally:
            await wrong.aclose()
    assert refused.value.status == 401 and "The API key provided is not valid" in \
        str(refused.value)
    async with fake_jambonz("acct", SECRET) as (_, rest_j):
        rest_j.credentials = type(rest_j.credentials)("other", SECRET, "http://x")
        with pytest.raises(CallControlError, match="401: unauthorized"):
            await rest_j.place(CALL)
    for text in (str(err.value), str(refused.value), repr(logs)):
        assert SECRET not in text
