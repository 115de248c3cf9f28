"""A quick Signature Version 4 check for the shape most SDK calls take, before moto's general one.

botocore signs a JSON or query-protocol call as a POST to ``/`` with no query string, every signed header sent
once, and the SHA-256 of the whole body (AWS General Reference, "Create a signed AWS API request":
https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html). For that shape the canonical request
is short to build, and the signing key is the same for every call a key makes in a day. ``matches`` answers True
only when the signature is right for exactly what the server reads (method, path, signed headers, body) and the
session token is the one issued; anything else, including a wrong signature, is left to moto's check, which
gives the service's own error.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Iterable

ALGORITHM = "AWS4-HMAC-SHA256"


@functools.lru_cache(maxsize=256)
def _signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = ("AWS4" + secret).encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def matches(
    method: str,
    path: str,
    query: str,
    headers: Iterable[tuple[str, str]],
    body: bytes,
    secret: str,
    session_token: str | None,
) -> bool:
    """True when this POST to ``/`` carries a valid SigV4 signature made with ``secret`` and ``session_token``."""
    sent: dict[str, list[str]] = {}
    for name, value in headers:
        sent.setdefault(name.lower(), []).append(value)
    auth = (sent.get("authorization") or [""])[0]
    if method != "POST" or path != "/" or query or not auth.startswith(ALGORITHM + " "):
        return False
    fields = dict(part.strip().partition("=")[::2] for part in auth[len(ALGORITHM) + 1 :].split(","))
    credential = fields.get("Credential", "").split("/")
    signed = fields.get("SignedHeaders", "").split(";")
    amz_date = (sent.get("x-amz-date") or [""])[0]
    if (
        len(credential) != 5
        or credential[4] != "aws4_request"
        or len(amz_date) < 8
        or sent.get("x-amz-security-token") != ([session_token] if session_token else None)
        or "host" not in signed
        or "x-amz-date" not in signed  # moto's check reads the date from the signed headers only
        or signed != sorted(set(signed))
        or "x-amz-content-sha256" in sent
        or any(len(sent.get(name, ())) != 1 for name in signed)
    ):
        return False
    _, _, region, service, _ = credential
    canonical_headers = "".join(f"{name}:{' '.join(sent[name][0].split())}\n" for name in signed)
    canonical = "\n".join([method, path, "", canonical_headers, ";".join(signed), hashlib.sha256(body).hexdigest()])
    scope = f"{amz_date[:8]}/{region}/{service}/aws4_request"
    to_sign = "\n".join([ALGORITHM, amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = _signing_key(secret, amz_date[:8], region, service)
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(signature, fields.get("Signature", ""))
