"""moto's request object for a request botocore prepared, built without werkzeug's test client.

Every request moto answers in-process becomes a werkzeug ``Request`` through ``EnvironBuilder``
(``moto.core.request.normalize_request``): about a sixth of the kernel's time answering a function's call. For the
shape botocore sends (a body of bytes; a plain lower-case host, and a path and query in ASCII with nothing
percent-encoded, to be quoted or dropped; no header value spanning lines) this builds the same WSGI environ
directly. Anything else is moto's own ``normalize_request``. ``tests/offline/test_request_environ.py`` compares
the two environs key by key.
"""

from __future__ import annotations

import io
import re
import sys
from collections import defaultdict
from typing import Any
from urllib.parse import urlsplit

from botocore.awsrequest import AWSPreparedRequest
from moto.core.request import (
    PRESERVED_HEADER_NAMES_ENVIRON_KEY,
    Request,
    environ_key_for_header,
    normalize_request,
    should_preserve_original_header_name,
)

from taskflow.offline.seams.records import Read

# werkzeug lower-cases a host, IDNA-encodes it (refusing empty labels and labels over 63 characters) and
# normalizes its port; moto's urlparse drops ";parameters" from a path's last segment.
_HOST = re.compile(r"(?:[a-z0-9-]{1,63}\.)*[a-z0-9-]{1,63}(?::[1-9][0-9]{0,3})?")
_PATH = re.compile(r"/(?!/)[A-Za-z0-9_.~!$&'()*+,/:=@-]*")  # nothing iri_to_uri would quote or unquote
_QUERY = re.compile(r"[\x21-\x7e]*")  # ASCII: its WSGI encoding is itself
_NEWLINE = re.compile(r"[\r\n]")
_DROPPED = frozenset({"transfer-encoding", "content-type", "content-length"})


def request_for(request: Any) -> Any:
    """The ``Request`` moto's handlers take, as ``normalize_request(request)`` builds it."""
    if type(request) is not AWSPreparedRequest or type(request.body) is not bytes or not request.body:
        return normalize_request(request)
    scheme, netloc, path, query, fragment = urlsplit(request.url)
    if (
        scheme not in ("http", "https")
        or fragment
        or not _HOST.fullmatch(netloc)
        or not _PATH.fullmatch(path)
        or not _QUERY.fullmatch(query)
    ):
        return normalize_request(request)
    header_items = []
    for key, value in request.headers.items():
        text = value.decode("utf-8") if isinstance(value, bytes) else value
        if not isinstance(text, str) or _NEWLINE.search(text) or not key.isascii():
            return normalize_request(request)
        header_items.append((key, text))
    body = request.body
    name, _, port = netloc.partition(":")
    environ: dict[str, Any] = {
        "REQUEST_METHOD": request.method,
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "REQUEST_URI": path,
        "RAW_URI": path,
        "SERVER_NAME": name,
        "SERVER_PORT": port or ("443" if scheme == "https" else "80"),
        "HTTP_HOST": netloc,
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scheme,
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    content_type = next((v for k, v in header_items if k.lower() == "content-type"), None)
    if content_type is not None:
        environ["CONTENT_TYPE"] = content_type
    environ["CONTENT_LENGTH"] = str(len(body))
    combined: defaultdict[str, list[str]] = defaultdict(list)
    for key, value in header_items:
        if key.lower() not in _DROPPED:
            combined[f"HTTP_{key.upper().replace('-', '_')}"].append(value)
    for key, values in combined.items():
        environ[key] = ", ".join(values)
    environ[PRESERVED_HEADER_NAMES_ENVIRON_KEY] = {
        environ_key_for_header(key): key
        for key, _ in header_items
        if key.lower() != "transfer-encoding" and should_preserve_original_header_name(key)
    }
    return Request(environ)


READS = (
    Read("moto.core.request", "normalize_request", "the request object moto's handlers take", ("request",)),
    Read("moto.core.request", "Request", "the request object moto's handlers take (a werkzeug Request)"),
    Read("moto.core.request", "PRESERVED_HEADER_NAMES_ENVIRON_KEY", "where moto keeps headers' original names"),
    Read("moto.core.request", "environ_key_for_header", "a header's WSGI environ key", ("header_name",)),
    Read(
        "moto.core.request",
        "should_preserve_original_header_name",
        "headers whose names moto keeps as sent",
        ("header_name",),
    ),
    Read("moto.core.request", "Request.from_primitives", "the builder this mirrors"),
)
