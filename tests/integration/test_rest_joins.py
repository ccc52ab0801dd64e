"""A warm transfer's join through each carrier's REST client, against its fake API on a
loopback socket: the request each carrier takes (inline TwiML, TeXML and NCCO; a signed link
for SignalWire, Plivo and jambonz), the conference document, compared with the carrier's own
SDK where one is installed, and the link's route refusing what it did not sign. The whole
join, end to end, is ``test_warm_transfer.py``'s."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl, urlsplit
from xml.etree import ElementTree

import pytest
from plivo import plivoxml
from telnyx import AsyncTelnyx
from twilio.twiml.voice_response import Dial, VoiceResponse
from vonage_voice.models.ncco import Conversation

from gateway.carriers.core import Carrier
from gateway.carriers.hooks import WebhookError, WebhookRequest
from gateway.carriers.jambonz_hooks import conference_verbs
from gateway.carriers.jambonz_hooks import join_links as jambonz_joins
from gateway.carriers.plivo_hooks import conference_xml
from gateway.carriers.plivo_hooks import join_links as plivo_joins
from gateway.carriers.plivo_hooks import transfer_links as plivo_transfers
from gateway.carriers.signalwire import join_links as signalwire_joins
from gateway.carriers.twilio_hooks import conference_twiml
from gateway.carriers.vonage_hooks import conversation_ncco
from gateway.errors import CallControlError
from gateway.rest.jambonz import JambonzCredentials, JambonzRest
from gateway.rest.telnyx import TexmlApp
from gateway.rest.twilio import TwilioCredentials, TwilioRest
from gateway.rig.rest_fakes import serving
from gateway.rig.rest_fakes.jambonz import NO_WAIT, FakeJambonz
from gateway.rig.rest_fakes.plivo import fake_plivo
from gateway.rig.rest_fakes.telnyx import fake_telnyx
from gateway.rig.rest_fakes.twilio import FakeTwilio, fake_twilio
from gateway.rig.rest_fakes.vonage import fake_vonage
from tests.cases.vonage import APPLICATION_ID, KEY

ROOM = "voicegw-ho_0123456789abcdef"
PUBLIC = "https://gw.example.com"
SECRET = "a-secret-the-carrier-and-gateway-share"


def fetched(url: str, now: float = 0.0) -> WebhookRequest:
    """The gateway's view of the carrier fetching ``url``."""
    return WebhookRequest("POST", (url,), {}, query=tuple(parse_qsl(urlsplit(url).query)),
                          now=now)


def test_the_conference_documents() -> None:
    twiml = VoiceResponse()
    dial = Dial()
    dial.conference(ROOM, beep=False, end_conference_on_exit=True,
                    start_conference_on_enter=True)
    twiml.append(dial)
    ours = ElementTree.fromstring(conference_twiml(ROOM)).find("./Dial/Conference")
    theirs = ElementTree.fromstring(str(twiml)).find("./Dial/Conference")
    assert ours is not None and theirs is not None
    assert (ours.text, ours.attrib) == (theirs.text, theirs.attrib)

    plivo = plivoxml.ResponseElement().add(plivoxml.ConferenceElement(
        ROOM, start_conference_on_enter=True, end_conference_on_exit=True))
    mine = ElementTree.fromstring(conference_xml(ROOM).split("?>", 1)[1]).find("./Conference")
    its = ElementTree.fromstring(plivo.to_string()).find("./Conference")
    assert mine is not None and its is not None
    assert (mine.text, mine.attrib) == (its.text, its.attrib)

    assert conversation_ncco(ROOM) == [Conversation(
        name=ROOM, startOnEnter=True, endOnExit=True).model_dump(by_alias=True,
                                                                 exclude_none=True)]
    assert json.loads(conference_verbs(ROOM).body) == [{
        "verb": "conference", "name": ROOM, "beep": False, "startConferenceOnEnter": True,
        "endConferenceOnExit": True}]
    # A room is text in the document, never markup.
    assert "&lt;Hangup/&gt;" in conference_twiml("<Hangup/>")
    for build in (conference_twiml, conference_xml, conversation_ncco, conference_verbs):
        with pytest.raises(ValueError, match="empty"):
            build(" ")


async def test_twilio_joins_inline_and_signalwire_through_a_signed_link() -> None:
    async with fake_twilio("AC" + "1" * 32, "token") as (fake, rest):
        assert rest.joins
        assert await rest.join("CA" + "2" * 32, ROOM) is True
        assert fake.requests[0].form == {"Twiml": conference_twiml(ROOM)}
    project = "5e1f0c2a-9d3b-4c1e-8f7a-0b1c2d3e4f5a"
    fake = FakeTwilio(project, project, SECRET, prefix="/api/laml")
    links = signalwire_joins(SECRET, PUBLIC)
    async with serving(fake.app()) as url:
        credentials = TwilioCredentials(project, project, SECRET)
        bare = TwilioRest(credentials, base_url=url + "/api/laml", carrier=Carrier.SIGNALWIRE)
        assert not bare.joins  # no public URL: SignalWire could fetch nothing
        with pytest.raises(CallControlError, match="VOICEGW_PUBLIC_URL"):
            await bare.join("CA" + "2" * 32, ROOM)
        await bare.aclose()
        rest = TwilioRest(credentials, base_url=url + "/api/laml",
                          carrier=Carrier.SIGNALWIRE, join_links=links)
        assert rest.joins
        assert await rest.join("CA" + "2" * 32, ROOM) is True
        await rest.aclose()
    [req] = fake.requests
    assert req.form.keys() == {"Url", "Method"}
    assert urlsplit(req.form["Url"]).path == "/signalwire/join"
    assert ROOM in links.dial(fetched(req.form["Url"])).body


async def test_plivo_points_the_call_at_a_conference_link_no_transfer_link_takes() -> None:
    joins = plivo_joins(SECRET, PUBLIC)
    async with fake_plivo("MA" + "1" * 18, SECRET) as (fake, rest):
        assert not rest.joins
        with pytest.raises(CallControlError, match="VOICEGW_PUBLIC_URL"):
            await rest.join("3a2e4c90-dcee-4931-8a59-f123ab507e60", ROOM)
        rest.join_links = joins
        assert rest.joins
        assert await rest.join("3a2e4c90-dcee-4931-8a59-f123ab507e60", ROOM) is True
    [req] = fake.requests
    assert (req.json["legs"], req.json["aleg_method"]) == ("aleg", "POST")
    link = req.json["aleg_url"]
    assert urlsplit(link).path == "/plivo/join"
    assert joins.dial(fetched(link)).body == conference_xml(ROOM)
    # Each route has its own key: a join link is no transfer link, and it expires.
    with pytest.raises(WebhookError, match="not a transfer link"):
        plivo_transfers(SECRET, PUBLIC).dial(fetched(link.replace("room=", "number=")))
    with pytest.raises(WebhookError, match="expired"):
        joins.dial(fetched(link, now=10**12))


async def test_telnyx_updates_the_texml_call_as_its_sdk_does() -> None:
    texml = TexmlApp("6f2a3e1c-0b5e-4d5e-9a51-1c2d3e4f5a6b", "1293384261075731499")
    call = "v3:KBnLO0ZK3DhKM5s7bE9VluaSmKsOchKht"
    async with fake_telnyx("KEY-joins", texml) as (fake, rest, url):
        assert rest.joins
        assert await rest.join(call, ROOM) is True
        sdk = AsyncTelnyx(api_key="KEY-joins", base_url=f"{url}/v2", max_retries=0)
        try:
            await sdk.texml.accounts.calls.update(call, account_sid=texml.account_sid,
                                                  texml=conference_twiml(ROOM))
        finally:
            await sdk.close()
    ours, theirs = fake.requests
    assert ours.path == f"/v2/texml/Accounts/{texml.account_sid}/Calls/{call}"
    assert (ours.path, ours.auth, ours.content_type, ours.json) == \
        (theirs.path, theirs.auth, theirs.content_type, theirs.json)
    assert ours.json == {"Texml": conference_twiml(ROOM)}
    async with fake_telnyx("KEY-joins") as (_, bare, _url):
        assert not bare.joins  # the update's path names the account


async def test_vonage_transfers_the_call_to_a_conversation() -> None:
    async with fake_vonage(APPLICATION_ID, KEY) as (fake, rest):
        assert rest.joins
        assert await rest.join("63f61863-4a51-4f6b-86e1-46edebcf9356", ROOM) is True
    [req] = fake.requests
    assert req.json == {"action": "transfer",
                        "destination": {"type": "ncco", "ncco": conversation_ncco(ROOM)}}


async def test_jambonz_redirects_the_call_to_a_conference_link() -> None:
    fake = FakeJambonz("acct-1", SECRET)
    links = jambonz_joins(SECRET, PUBLIC)
    async with serving(fake.app()) as url:
        rest = JambonzRest(JambonzCredentials("acct-1", SECRET, url), join_links=links,
                           retry=NO_WAIT)
        assert rest.joins
        assert await rest.join("9c6a2f3e-1b2d-4e5f-8a9b-0c1d2e3f4a5b", ROOM) is True
        await rest.aclose()
    [req] = fake.requests
    hook = req.json["call_hook"]
    assert hook["method"] == "POST"
    assert urlsplit(hook["url"]).path == "/jambonz/join"
    assert links.dial(fetched(hook["url"])).body == conference_verbs(ROOM).body
