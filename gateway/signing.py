"""Twilio request signing (``X-Twilio-Signature``): pure functions, no I/O.

Twilio signs every webhook with HMAC-SHA1 keyed by the account's Auth Token, over the full URL
it requested followed, for a form-encoded POST, by each parameter's name and value (names
sorted; a name sent more than once contributes each distinct value, values sorted). The
Base64 of the digest is the header. This module computes that string exactly as Twilio's own
``twilio.request_validator.RequestValidator`` does (the tests use it as the oracle) and checks a
header against it in constant time.

Not handled, on purpose: the JSON-body form (``bodySHA256`` in the query; voice webhooks are
form-encoded) and the newer SharedKey/HMAC-SHA256 signatures announced by
``X-Twilio-Webhooks-Signature-Settings``; a request signed either way fails validation here,
which errs on the safe side.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable
from typing import Final
from urllib.parse import urlsplit, urlunsplit

SIGNATURE_HEADER: Final = "X-Twilio-Signature"
# The form of a public URL that Twilio uses for HTTP requests vs for the Media Streams socket.
_HTTP_SCHEME: Final = {"http": "http", "https": "https", "ws": "http", "wss": "https"}
_WS_SCHEME: Final = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}
_DEFAULT_PORT: Final = {"http": 80, "ws": 80, "https": 443, "wss": 443}


def compute_signature(token: str, url: str, params: Iterable[tuple[str, str]] = ()) -> str:
    """The ``X-Twilio-Signature`` Twilio would send for ``url`` and these form parameters."""
    by_name: dict[str, set[str]] = {}
    for name, value in params:
        by_name.setdefault(name, set()).add(value)
    # Twilio's validator de-duplicates repeated values; so must we, to agree with it.
    payload = url + "".join(name + value for name in sorted(by_name)
                            for value in sorted(by_name[name]))
    mac = hmac.new(token.encode(), payload.encode(), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode("ascii")


def _split_port(netloc: str) -> tuple[str, str | None]:
    """``netloc`` without its port, and the port (``None`` if absent); IPv6-literal aware."""
    userinfo, at, hostport = netloc.rpartition("@")
    if hostport.startswith("["):
        host, bracket, rest = hostport.partition("]")
        host += bracket
        port = rest[1:] if rest.startswith(":") else None
    else:
        host, colon, port_text = hostport.partition(":")
        port = port_text if colon else None
    return userinfo + at + host, port or None


def url_variants(url: str) -> list[str]:
    """``url`` as given, without its port, and with the scheme's default port.

    Twilio's own validator tries the with- and without-port forms because, in its words,
    signature generation on Twilio's side is inconsistent about ports. It appends ``:80`` to
    every non-https URL, so for ``wss://`` it would try ``:80``; we use the scheme's real
    default port (443) instead, which is the form that could actually have been signed.
    """
    parts = urlsplit(url)
    bare, port = _split_port(parts.netloc)
    default = _DEFAULT_PORT.get(parts.scheme.lower())
    variants = [url, urlunsplit(parts._replace(netloc=bare))]
    if port is None and default is not None:
        variants.append(urlunsplit(parts._replace(netloc=f"{bare}:{default}")))
    return list(dict.fromkeys(variants))


def signed_url_candidates(base: str, path_qs: str, *, websocket: bool) -> list[str]:
    """The full URLs Twilio may have signed for a request to ``path_qs`` on ``base``.

    ``base`` is the public origin plus any path prefix (``https://gw.example.com/voice``), as
    configured in ``VOICEGW_PUBLIC_URL``; ``path_qs`` is the raw path and query as received.
    Webhooks are signed over the ``https://`` (or ``http://``) URL. For the Media Streams
    upgrade, Twilio says the endpoint must validate the header but does not say which URL it
    signs; third-party implementations validate the ``wss://`` URL exactly as written in the
    TwiML. That evidence is second-hand, so for sockets we accept both the ``wss://`` and the
    ``https://`` forms of the same URL: either way the signer had to know the Auth Token.
    """
    parts = urlsplit(base)
    scheme = parts.scheme.lower()
    schemes = [_WS_SCHEME.get(scheme, scheme), _HTTP_SCHEME.get(scheme, scheme)] if websocket \
        else [_HTTP_SCHEME.get(scheme, scheme)]
    prefix = parts.path.rstrip("/")
    urls = [f"{s}://{parts.netloc}{prefix}{path_qs}" for s in dict.fromkeys(schemes)]
    return list(dict.fromkeys(v for u in urls for v in url_variants(u)))


def is_valid(token: str, urls: Iterable[str], params: Iterable[tuple[str, str]],
             signature: str | None) -> bool:
    """Whether ``signature`` is Twilio's for any of ``urls`` (see :func:`url_variants`)."""
    if not signature:
        return False
    given = signature.encode()
    pairs = list(params)
    # compare_digest on bytes: constant-time in the header's content, and a header with
    # non-ASCII characters is simply unequal rather than a TypeError.
    return any(hmac.compare_digest(compute_signature(token, url, pairs).encode(), given)
               for url in urls)
