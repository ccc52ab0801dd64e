"""Status and machine-detection callbacks of placed calls, read from realistic payloads of
Telnyx (TeXML), Plivo, Vonage, jambonz and Exotel into neutral progress."""

from __future__ import annotations

import json
import re

import pytest

from gateway.carriers import exotel_hooks, jambonz_hooks, plivo_hooks, telnyx_hooks, vonage_hooks
from gateway.carriers.hooks import WebhookError, WebhookRequest
from gateway.dialing.model import AnsweredBy, DialStatus
from gateway.errors import CallControlError, ConfigError
from gateway.rest.http import Reply, created_id

UUID = "63f61863-4a51-4f6b-86e1-46edebcf9356"
TELNYX_SID = "v3:9X2vxPDFY2RHSJ1EdMS0RHRksMTg7ldNxdjWbVr9zBjbGjGsSe-aiQ"


def form(**fields: str) -> WebhookRequest:
    return WebhookRequest("POST", ("https://gw.example.com/status",), {},
                          form=tuple(fields.items()))


def posted(**fields: object) -> WebhookRequest:
    return WebhookRequest("POST", ("https://gw.example.com/status",),
                          {"Content-Type": "application/json"}, json.dumps(fields).encode())


@pytest.mark.parametrize(("word", "status"), [
    ("initiated", DialStatus.QUEUED), ("ringing", DialStatus.RINGING),
    ("in-progress", DialStatus.ANSWERED), ("completed", DialStatus.COMPLETED),
    ("busy", DialStatus.BUSY), ("no-answer", DialStatus.NO_ANSWER),
    ("failed", DialStatus.FAILED), ("canceled", DialStatus.CANCELED)])
def test_telnyx_texml_status_words(word: str, status: DialStatus) -> None:
    progress = telnyx_hooks.read_progress(form(
        AccountSid="f5586561-8ff0-4291-a51b-c7dfe4139ff9", CallSid=TELNYX_SID,
        CallSidLegacy=TELNYX_SID, CallStatus=word, CallbackSource="call-progress-events",
        From="+35319605860", To="+13129457420", SequenceNumber="1"))
    assert (progress.carrier_call_id, progress.status) == (TELNYX_SID, status)


@pytest.mark.parametrize(("answered_by", "who", "beep"), [
    ("human", AnsweredBy.HUMAN, False), ("machine_end_beep", AnsweredBy.MACHINE, True),
    ("machine_end_silence", AnsweredBy.MACHINE, False), ("fax", AnsweredBy.MACHINE, False),
    ("unknown", AnsweredBy.UNKNOWN, False)])
def test_telnyx_async_amd(answered_by: str, who: AnsweredBy, beep: bool) -> None:
    progress = telnyx_hooks.read_progress(form(
        CallSid=TELNYX_SID, AnsweredBy=answered_by, MachineDetectionDuration="2500",
        ConnectionId="1234567890"))
    assert (progress.status, progress.answered_by, progress.beep) == (None, who, beep)


@pytest.mark.parametrize(("word", "cause", "status"), [
    ("ringing", "", DialStatus.RINGING), ("completed", "NORMAL_CLEARING", DialStatus.COMPLETED),
    ("busy", "USER_BUSY", DialStatus.BUSY), ("no-answer", "NO_ANSWER", DialStatus.NO_ANSWER),
    ("timeout", "ALLOTTED_TIMEOUT", DialStatus.NO_ANSWER),
    ("failed", "UNALLOCATED_NUMBER", DialStatus.FAILED),
    ("cancel", "ORIGINATOR_CANCEL", DialStatus.CANCELED)])
def test_plivo_ring_and_hangup_callbacks(word: str, cause: str, status: DialStatus) -> None:
    fields = {"CallUUID": "c-" + UUID, "RequestUUID": UUID, "Direction": "outbound",
              "From": "15550100999", "To": "15550100111", "CallStatus": word, "Event": "Hangup"}
    if cause:
        fields["HangupCause"] = cause
    progress = plivo_hooks.read_progress(form(**fields))
    assert (progress.carrier_call_id, progress.status) == (UUID, status)
    assert cause in progress.detail


@pytest.mark.parametrize(("machine", "who"), [("true", AnsweredBy.MACHINE),
                                              ("false", AnsweredBy.HUMAN)])
def test_plivo_machine_detection(machine: str, who: AnsweredBy) -> None:
    progress = plivo_hooks.read_progress(form(
        CallUUID="c-" + UUID, RequestUUID=UUID, Machine=machine, Event="MachineDetection",
        CallStatus="in-progress", IfMachine="continue", Direction="outbound"))
    assert (progress.status, progress.answered_by) == (None, who)


@pytest.mark.parametrize(("word", "status"), [
    ("started", DialStatus.QUEUED), ("ringing", DialStatus.RINGING),
    ("answered", DialStatus.ANSWERED), ("completed", DialStatus.COMPLETED),
    ("busy", DialStatus.BUSY), ("cancelled", DialStatus.CANCELED),
    ("failed", DialStatus.FAILED), ("rejected", DialStatus.FAILED),
    ("timeout", DialStatus.NO_ANSWER), ("unanswered", DialStatus.NO_ANSWER),
    ("input", None)])
def test_vonage_events(word: str, status: DialStatus | None) -> None:
    progress = vonage_hooks.read_progress(posted(
        uuid=UUID, conversation_uuid="CON-" + UUID, status=word, direction="outbound",
        to="15550100111", **{"from": "15550100999"}, timestamp="2026-12-03T19:00:00.000Z"))
    assert (progress.carrier_call_id, progress.status) == (UUID, status)


@pytest.mark.parametrize(("word", "sub_state", "who", "beep"), [
    ("human", "", AnsweredBy.HUMAN, False), ("machine", "", AnsweredBy.MACHINE, False),
    ("machine", "beep_start", AnsweredBy.MACHINE, True),
    ("machine", "beep_timeout", AnsweredBy.MACHINE, False)])
def test_vonage_advanced_machine_detection(word: str, sub_state: str, who: AnsweredBy,
                                           beep: bool) -> None:
    fields = {"uuid": UUID, "status": word, "call_uuid": UUID}
    if sub_state:
        fields["sub_state"] = sub_state
    progress = vonage_hooks.read_progress(posted(**fields))
    assert (progress.status, progress.answered_by, progress.beep) == (None, who, beep)


@pytest.mark.parametrize(("word", "sip", "status"), [
    ("trying", 100, DialStatus.QUEUED), ("ringing", 180, DialStatus.RINGING),
    ("early-media", 183, DialStatus.RINGING), ("in-progress", 200, DialStatus.ANSWERED),
    ("completed", 200, DialStatus.COMPLETED), ("busy", 486, DialStatus.BUSY),
    ("no-answer", 480, DialStatus.NO_ANSWER), ("failed", 503, DialStatus.FAILED),
    ("failed", 487, DialStatus.CANCELED), ("failed", 486, DialStatus.BUSY),
    ("failed", 408, DialStatus.NO_ANSWER)])
def test_jambonz_call_status(word: str, sip: int, status: DialStatus) -> None:
    progress = jambonz_hooks.read_progress(posted(
        call_sid=UUID, direction="outbound", call_status=word, sip_status=sip,
        account_sid="acct", call_id="1dfb7a86-2772-123d", **{"from": "+15550100999"}))
    assert (progress.carrier_call_id, progress.status) == (UUID, status)
    assert f"SIP {sip}" in progress.detail


@pytest.mark.parametrize(("kind", "who", "beep"), [
    ("amd_human_detected", AnsweredBy.HUMAN, False),
    ("amd_machine_detected", AnsweredBy.MACHINE, False),
    ("amd_tone_detected", AnsweredBy.MACHINE, True),
    ("amd_decision_timeout", AnsweredBy.UNKNOWN, False), ("amd_error", None, False)])
def test_jambonz_amd(kind: str, who: AnsweredBy | None, beep: bool) -> None:
    progress = jambonz_hooks.read_progress(posted(call_sid=UUID, type=kind, reason="hint"))
    assert (progress.status, progress.answered_by, progress.beep) == (None, who, beep)


@pytest.mark.parametrize(("event", "word", "status"), [
    ("answered", "in-progress", DialStatus.ANSWERED),
    ("terminal", "completed", DialStatus.COMPLETED), ("terminal", "busy", DialStatus.BUSY),
    ("terminal", "no-answer", DialStatus.NO_ANSWER), ("terminal", "failed", DialStatus.FAILED)])
def test_exotel_status_callbacks(event: str, word: str, status: DialStatus) -> None:
    for request in (posted(CallSid="b6cfaf6f2d4e0f", EventType=event, Status=word),
                    form(CallSid="b6cfaf6f2d4e0f", EventType=event, Status=word)):
        progress = exotel_hooks.read_progress(request)
        assert (progress.carrier_call_id, progress.status) == ("b6cfaf6f2d4e0f", status)


@pytest.mark.parametrize("reader", [
    telnyx_hooks.read_progress, plivo_hooks.read_progress, vonage_hooks.read_progress,
    jambonz_hooks.read_progress, exotel_hooks.read_progress])
def test_a_callback_naming_no_call_is_refused(reader: object) -> None:
    with pytest.raises(WebhookError):
        reader(form(CallStatus="completed", status="completed"))  # type: ignore[operator]
    with pytest.raises(WebhookError):
        reader(posted(call_status="completed", uuid="../x", call_sid="../x"))  # type: ignore[operator]


def test_created_id_takes_the_first_valid_id_and_refuses_none() -> None:
    pattern = re.compile(r"^[a-z0-9:]+\Z")
    assert created_id(Reply(200, {"data": {"call_sid": "v3:ab"}}), "telnyx", pattern,
                      ("call_sid",), ("data", "call_sid")) == "v3:ab"
    for body in ({}, {"call_sid": "../x"}, {"call_sid": 7}, {"data": "v3:ab"}):
        with pytest.raises(CallControlError, match="named no call id"):
            created_id(Reply(201, body), "telnyx", pattern, ("call_sid",), ("data", "call_sid"))


def test_setups_dial_only_with_their_rest_credentials() -> None:
    from gateway.carrier_setup import exotel, jambonz, plivo, signalwire, telnyx, vonage
    for module in (exotel, jambonz, plivo, signalwire, telnyx, vonage):
        bare = module.from_env({})
        assert bare.dialer is None and bare.read_progress is not None
    assert telnyx.from_env({"TELNYX_API_KEY": "k"}).dialer is None  # no TeXML application
    placing = telnyx.from_env({"TELNYX_API_KEY": "k", "VOICEGW_TELNYX_ACCOUNT_SID": "a1",
                               "VOICEGW_TELNYX_APPLICATION_ID": "12"})
    assert placing.dialer is placing.call_control is not None
    assert plivo.from_env({"PLIVO_AUTH_ID": "MA" + "A" * 18,
                           "PLIVO_AUTH_TOKEN": "t"}).dialer is not None
    assert jambonz.from_env({"JAMBONZ_ACCOUNT_SID": "a", "JAMBONZ_API_KEY": "k",
                             "VOICEGW_JAMBONZ_API_URL": "https://j.example.com"}).dialer
    with pytest.raises(ConfigError, match="TELNYX_API_KEY"):
        telnyx.from_env({"VOICEGW_TELNYX_ACCOUNT_SID": "a1",
                         "VOICEGW_TELNYX_APPLICATION_ID": "12"})
