"""Exotel's dynamic stream URL, sans-I/O: the Voicebot applet asks the gateway where to stream.

**The answer.** A Voicebot applet whose URL is ``https://`` rather than ``wss://`` fetches it
when the call reaches the applet (``GET``, the call's fields in the query: ``CallSid``,
``From``, ``To``, ...; ``CallFrom``/``CallTo`` in some applets' requests) and expects a JSON
object whose ``url`` is the ``wss://`` URL to stream to. That URL is the per-call part:

* its query asks for the audio rate (``sample-rate``, see
  :data:`gateway.carriers.exotel.DEFAULT_RATE`) and carries the per-call token; Exotel hands
  the query's pairs to the stream as the ``start``'s ``custom_parameters`` (three pairs and
  256 characters at most: the rate and the token take two and about 90);
* its userinfo carries the Basic credentials (``wss://user:password@host/...``), which Exotel
  presents on the socket's upgrade as ``Authorization: Basic``.

**Authentication.** Exotel signs nothing. The operator gives the gateway a user name and
password (``EXOTEL_STREAM_USER``/``EXOTEL_STREAM_PASSWORD``) and writes them into the applet's
URL (``https://user:password@host/exotel/answer``); the answer request and the media upgrade
must both carry them (:class:`gateway.carriers.basic_auth.BasicAuthCheck`). The answer must be
checked, not only the upgrade: the URL it returns holds the credentials. That URL is never
logged.

**Placed calls.** Exotel posts a placed call's ``answered`` and ``terminal`` events to its
status callback (JSON, or a form): ``CallSid``, ``EventType`` and ``Status`` (completed,
failed, busy, no-answer); :func:`read_progress` reads them. Exotel has no machine detection to
report.

**Busy.** At capacity the answer carries no URL (HTTP 204): the applet cannot stream, and the
call goes on to the flow's next applet, where the operator can say that all lines are busy.
"""

from __future__ import annotations

import json
from typing import Final
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

from gateway.carriers.core import Carrier
from gateway.carriers.exotel import DEFAULT_RATE, RATE_QUERY, RATES
from gateway.carriers.hooks import (
    AnswerDocument,
    CallInfo,
    StreamPlan,
    WebhookError,
    WebhookRequest,
    webhook_fields,
)
from gateway.dialing.model import CallProgress, DialStatus

CONTENT_TYPE: Final = "application/json"
#: Exotel's limit on what the stream URL's query carries, in characters.
MAX_QUERY_CHARS: Final = 256
_MAX_SID: Final = 64


def stream_url(stream: StreamPlan, *, rate: int = DEFAULT_RATE,
               credentials: tuple[str, str] | None = None) -> str:
    """The ``wss://`` URL the Voicebot applet streams to: the rate and ``stream``'s
    parameters in its query, the credentials (if any) in its userinfo."""
    if rate not in RATES:
        raise ValueError(f"Exotel streams at {RATES} Hz, not {rate}")
    query = urlencode({RATE_QUERY: str(rate), **stream.parameters})
    if len(query) > MAX_QUERY_CHARS:
        raise ValueError("the stream's parameters do not fit in Exotel's 256 characters")
    parts = urlsplit(stream.url)
    netloc = parts.netloc
    if credentials is not None:
        user, password = (quote(part, safe="") for part in credentials)
        netloc = f"{user}:{password}@{netloc}"
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def exotel_call_info(request: WebhookRequest) -> CallInfo:
    call_sid = request.param("CallSid") or ""
    if not call_sid or len(call_sid) > _MAX_SID:
        raise WebhookError("no CallSid in the request")
    caller = request.param("From") or request.param("CallFrom") or None
    callee = request.param("To") or request.param("CallTo") or None
    # Nothing is forwarded: the stream's start carries the numbers itself.
    return CallInfo(call_sid, caller, callee)


class ExotelHooks:
    """The Voicebot applet's dynamic URL: ``GET`` (or ``POST``), ``{"url": "wss://..."}``
    back. ``credentials`` go into that URL for Exotel to present on the upgrade."""

    carrier = Carrier.EXOTEL
    answer_methods = ("GET", "POST")

    def __init__(self, credentials: tuple[str, str] | None = None, *,
                 rate: int = DEFAULT_RATE) -> None:
        self._credentials = credentials
        self.rate = rate

    def __repr__(self) -> str:  # never the credentials
        return f"ExotelHooks(rate={self.rate}, credentials={self._credentials is not None})"

    def call_info(self, request: WebhookRequest) -> CallInfo:
        return exotel_call_info(request)

    def answer(self, call: CallInfo, stream: StreamPlan) -> AnswerDocument:
        url = stream_url(stream, rate=self.rate, credentials=self._credentials)
        return AnswerDocument(json.dumps({"url": url}), CONTENT_TYPE)

    def busy(self) -> AnswerDocument:
        return AnswerDocument("", CONTENT_TYPE)  # 204: no URL, the flow moves on


# -- status callbacks of placed calls ------------------------------------------------------

_STATUSES: Final = {
    "queued": DialStatus.QUEUED, "ringing": DialStatus.RINGING,
    "in-progress": DialStatus.ANSWERED, "completed": DialStatus.COMPLETED,
    "busy": DialStatus.BUSY, "no-answer": DialStatus.NO_ANSWER, "failed": DialStatus.FAILED,
    "canceled": DialStatus.CANCELED,
}


def read_progress(request: WebhookRequest) -> CallProgress:
    """An ``answered`` or ``terminal`` status callback of a call the gateway placed."""
    fields = webhook_fields(request)
    sid = fields.get("CallSid", "")
    if not sid or len(sid) > _MAX_SID:
        raise WebhookError("no CallSid in the status callback")
    event = fields.get("EventType", "").strip().lower()
    word = fields.get("Status", "").strip().lower()
    if event == "answered":
        return CallProgress(sid, DialStatus.ANSWERED, "answered")
    return CallProgress(sid, _STATUSES.get(word), word)
