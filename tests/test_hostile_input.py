"""Hostile input at POST /task, through the offline API proxy, against the deployed create_task (hypothesis).

Every request goes over HTTP (``requests.post`` to the stage URL) to one of two APIs, each in front of its own
create_task (the packaged zip) and queue: a text API, and one with ``binaryMediaTypes ["*/*"]`` so the function
gets ``isBase64Encoded`` bodies.
For any body, header set, Content-Type, encoding or size:

* never a 5xx;
* a 4xx has the documented shape ``{"error": str, "message": str, "details": [{"field", "problem"}]}``, and
  leaves the queue as it was;
* a 202 carries a task id, and exactly one message is queued: the task the body described, one that
  process_task accepts;
* the status, the error code and the fields named in ``details`` are the ones ``contract`` predicts: a model
  of the documented contract (in create_task's docstrings and messages) and of API Gateway's body handling.

Nothing consumes the queues, so each example sees exactly what it caused. ``make test`` runs 150 examples per
property; the ``slow`` variant runs 2,000.
"""

from __future__ import annotations

import fnmatch
import importlib
import importlib.util
import json
import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from requests.structures import CaseInsensitiveDict

from taskflow import offline
from taskflow.offline.account import REGION
from tests.support.stack import Stack

ROOT = Path(__file__).resolve().parents[1]
MAX_BODY = 16 * 1024
FIELDS = ("title", "description", "priority")
PRIORITIES = ("low", "normal", "high")
BUDGETS = [pytest.param(150, id="150"), pytest.param(2000, id="2000", marks=pytest.mark.slow)]


def _load_shared() -> Any:
    """lambdas/shared/taskflow_shared.py, for process_task's own check of a queued message."""
    spec = importlib.util.spec_from_file_location("hostile_taskflow_shared", ROOT / "lambdas/shared/taskflow_shared.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SHARED = _load_shared()


# --- the stack: two APIs, one queue each, nothing consuming them --------------------------------------------


@dataclass
class Api:
    """One API in front of create_task, and the queue that function sends to."""

    stack: Any
    binary: bool

    @property
    def url(self) -> str:
        return self.stack.api_url

    def queued(self) -> list[dict[str, Any]]:
        """Receive and delete every message in the queue; return their bodies."""
        sqs, found = self.stack.client("sqs"), []
        while True:
            batch = sqs.receive_message(QueueUrl=self.stack.queue_url, MaxNumberOfMessages=10).get("Messages", [])
            if not batch:
                return found
            for message in batch:
                sqs.delete_message(QueueUrl=self.stack.queue_url, ReceiptHandle=message["ReceiptHandle"])
                found.append(json.loads(message["Body"]))


def _build(learner: str, binary: bool) -> Api:
    stack = Stack(learner)
    stack.create_queues()
    stack.create_role(stack.names.create_role, "create_task")
    arn = stack.deploy(
        stack.names.create_function, "create_task", stack.names.create_role, {"SQS_QUEUE_URL": stack.queue_url}
    )
    stack.create_api(arn)
    if binary:
        apigw, api_id = stack.client("apigateway"), stack.api_url.split("//")[1].split(".")[0]
        # AWS reads the type from the path; moto 5.2.5 reads it from "value": give both.
        apigw.update_rest_api(
            restApiId=api_id, patchOperations=[{"op": "add", "path": "/binaryMediaTypes/*~1*", "value": "*~1*"}]
        )
        assert apigw.get_rest_api(restApiId=api_id)["binaryMediaTypes"] == ["*~1*"]
        apigw.create_deployment(restApiId=api_id, stageName=stack.names.stage)
    return Api(stack, binary)


@pytest.fixture(scope="module")
def apis() -> Iterator[dict[str, Api]]:
    """The offline runtime with a text API and a binary API, built once for the module."""
    with pytest.MonkeyPatch.context() as mp:
        for key in [k for k in os.environ if k.startswith("AWS_ENDPOINT_URL")] + ["AWS_PROFILE"]:
            mp.delenv(key, raising=False)
        mp.setenv("AWS_DEFAULT_REGION", REGION)
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        with offline.running():
            yield {"text": _build("hostile", binary=False), "binary": _build("hostilebin", binary=True)}


# --- the contract, as documented: what the API must answer for a request -------------------------------------


@dataclass(frozen=True)
class Expected:
    status: int
    error: str | None = None  # the error code of a 4xx
    fields: frozenset[str] | None = None  # the fields VALIDATION_FAILED must name
    task: dict[str, str] | None = None  # what a 202 must queue


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError("duplicate key")
    return dict(pairs)


def _no_constants(name: str) -> None:
    raise ValueError(name)


def _controls(text: str, allowed: str = "", separators: bool = False) -> bool:
    """C0 and C1 controls (and, for one-line text, U+2028/U+2029) outside ``allowed``."""
    line_breaks = "\u2028\u2029" if separators else ""
    return any((ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F or c in line_breaks) and c not in allowed for c in text)


def _surrogates(text: str) -> bool:
    return any(0xD800 <= ord(c) <= 0xDFFF for c in text)


def content_type_ok(value: str | None) -> bool:
    """``application/json``, any case, with no charset or a UTF-8 one; or no Content-Type at all."""
    if value is None or not value.strip():
        return True
    media, *params = (p.strip() for p in value.split(";"))
    charsets = [p.split("=", 1)[1].strip().strip('"').lower() for p in params if p.lower().startswith("charset=")]
    return media.lower() == "application/json" and (charsets or ["utf-8"])[0] in ("utf-8", "utf8")


def problem_fields(data: dict[str, Any]) -> set[str]:
    """The fields a task object gets a ``details`` entry for (empty when the task is valid)."""
    problems = {name[:100] for name in [n for n in data if n not in FIELDS][:10]}
    title = data.get("title")
    if (
        not isinstance(title, str)
        or not 1 <= len(title.strip()) <= 200
        or _controls(title.strip(), separators=True)
        or _surrogates(title)
    ):
        problems.add("title")
    description = data.get("description", "")
    if (
        not (isinstance(description, str) and len(description) <= 2000)
        or _controls(description, allowed="\t\n\r")
        or _surrogates(description)
    ):
        problems.add("description")
    if "priority" in data and not (isinstance(data["priority"], str) and data["priority"] in PRIORITIES):
        problems.add("priority")
    return problems


def contract(raw: bytes, headers: CaseInsensitiveDict[str], binary_api: bool) -> Expected:
    """What POST /task must answer for this body and these headers (API Gateway's own handling included).

    A text API hands the function the body decoded as UTF-8 with invalid bytes replaced by U+FFFD (as AWS
    does, see docs/offline-fidelity.md); a binary API hands it the exact bytes, base64-encoded.
    """
    content_type = headers.get("Content-Type")
    if not content_type_ok(content_type):
        return Expected(415, "UNSUPPORTED_MEDIA_TYPE")
    if (headers.get("Content-Encoding") or "").strip().lower() not in ("", "identity"):
        return Expected(415, "UNSUPPORTED_MEDIA_TYPE")
    media = (content_type or "").split(";")[0].strip()
    if not raw:
        return Expected(400, "MISSING_BODY")
    if binary_api and fnmatch.fnmatchcase(media, "*/*"):
        if len(raw) > MAX_BODY:
            return Expected(413, "PAYLOAD_TOO_LARGE")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return Expected(400, "INVALID_ENCODING")
    else:
        text = raw.decode("utf-8", errors="replace")
        if not text.strip():
            return Expected(400, "MISSING_BODY")
        if len(text.encode("utf-8")) > MAX_BODY:
            return Expected(413, "PAYLOAD_TOO_LARGE")
    try:
        data = json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_no_constants)
    except (ValueError, RecursionError):
        return Expected(400, "INVALID_JSON")
    if not isinstance(data, dict):
        return Expected(400, "BODY_NOT_OBJECT")
    problems = problem_fields(data)
    if problems:
        return Expected(400, "VALIDATION_FAILED", frozenset(problems))
    task = {
        "title": data["title"].strip(),
        "description": data.get("description", ""),
        "priority": data.get("priority", "normal"),
    }
    return Expected(202, task=task)


# --- sending a request and checking the answer against the contract -----------------------------------------


def check(api: Api, raw: bytes, headers: dict[str, str] | None = None) -> requests.Response:
    """POST ``raw`` with ``headers``; assert the answer and the queue are what the contract says."""
    sent = CaseInsensitiveDict(headers or {})
    expected = contract(raw, sent, api.binary)
    response = requests.post(api.url, data=raw, headers=sent, timeout=30)
    queued = api.queued()
    detail = f"{response.status_code} {response.text[:800]}"
    assert response.status_code < 500, detail
    assert response.headers["Content-Type"].startswith("application/json"), detail
    body = response.json()
    assert response.status_code == expected.status, f"expected {expected}, got {detail}"
    if expected.status == 202:
        assert set(body) == {"task_id", "status", "location"} and body["status"] == "QUEUED", detail
        assert uuid.UUID(body["task_id"]).version == 4
        assert response.headers["Location"] == body["location"] == f"/prod/task/{body['task_id']}"
        assert len(queued) == 1, f"a 202 must queue exactly one message, found {len(queued)}"
        message = queued[0]
        assert message["task_id"] == body["task_id"]
        assert {k: message[k] for k in FIELDS} == expected.task
        SHARED.parse_task_message(json.dumps(message))  # process_task will accept it, not dead-letter it
        return response
    assert queued == [], f"a rejected request queued {queued}"
    assert set(body) == {"error", "message", "details"}, detail
    assert isinstance(body["error"], str) and isinstance(body["message"], str) and body["message"], detail
    assert body["error"] == expected.error, f"expected {expected}, got {detail}"
    assert isinstance(body["details"], list) and body["details"], detail
    for item in body["details"]:
        assert isinstance(item, dict) and set(item) == {"field", "problem"}, detail
        assert isinstance(item["field"], str) and isinstance(item["problem"], str) and item["problem"], detail
    if expected.fields is not None:
        assert {d["field"] for d in body["details"]} == expected.fields, detail
    return response


# --- strategies ---------------------------------------------------------------------------------------------

TCHAR = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
FRAMING = {"content-type", "content-encoding", "content-length", "transfer-encoding", "host", "connection"}
_HEADER_VALUE = re.compile(r"^\S[^\r\n]*$|^$")  # what requests lets through (no folding, no CR/LF)


def any_case(word: str) -> st.SearchStrategy[str]:
    return st.lists(st.booleans(), min_size=len(word), max_size=len(word)).map(
        lambda flips: "".join(c.upper() if up else c.lower() for c, up in zip(word, flips, strict=True))
    )


header_names = st.one_of(
    st.text(TCHAR, min_size=1, max_size=24),
    st.sampled_from(["Accept", "Authorization", "Cookie", "X-Amz-Date", "X-Forwarded-For", "User-Agent", "Origin"]),
).filter(lambda name: name.lower() not in FRAMING)
header_values = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_categories=["Cc"]), max_size=60)
noise_headers = st.dictionaries(header_names, header_values.filter(_HEADER_VALUE.match), max_size=6)

charsets = st.one_of(
    any_case("utf-8"),
    any_case("utf8"),
    st.sampled_from(["latin-1", "ISO-8859-1", "utf-16", "us-ascii", "cp1252", "", "utf-8x"]),
)
charset_parameters = st.builds(lambda cs, q: f'charset="{cs}"' if q else f"charset={cs}", charsets, st.booleans())
parameters = st.one_of(charset_parameters, st.sampled_from(["boundary=x", "q=0.5", "version=2", "profile=task"]))
media_types = st.one_of(
    any_case("application/json"),
    st.sampled_from(
        [
            *("text/plain", "application/x-www-form-urlencoded", "multipart/form-data", "application/json-patch+json"),
            *("application/jsonx", "text/json", "application/vnd.api+json", "application", "*/*", "json", "/"),
        ]
    ),
    st.builds("{}/{}".format, st.text(TCHAR, min_size=1, max_size=10), st.text(TCHAR, min_size=1, max_size=10)),
)


def _content_type(media: str, params: list[str], space: str) -> str:
    return media + "".join(f"{space};{space}{p}" for p in params)


spaces = st.sampled_from(["", " "])
content_types = st.one_of(
    st.none(),
    st.just(""),
    st.builds(
        _content_type, any_case("application/json"), st.lists(charset_parameters, min_size=1, max_size=1), spaces
    ),
    st.builds(
        _content_type, media_types, st.lists(parameters, max_size=2, unique_by=lambda p: p.split("=")[0]), spaces
    ),
)
json_content_types = st.one_of(
    any_case("application/json"), st.builds("application/json; charset={}".format, any_case("utf-8"))
)
content_encodings = st.one_of(
    st.none(), any_case("identity"), st.sampled_from(["", "gzip", "deflate", "br", "x-gzip", "gzip, identity"])
)


@st.composite
def request_headers(draw: st.DrawFn, content_type: st.SearchStrategy[str | None] = content_types) -> dict[str, str]:
    """Random headers in random case, a Content-Type (JSON half the time) and, rarely, a Content-Encoding."""
    headers = dict(draw(noise_headers))
    name_case = draw(st.sampled_from([str, str.lower, str.upper]))
    value = draw(st.one_of(json_content_types, content_type))
    if value is not None:
        headers[name_case("Content-Type")] = value
    encoding = draw(content_encodings) if draw(st.integers(0, 9)) == 0 else None
    if encoding is not None:
        headers[name_case("Content-Encoding")] = encoding
    return headers


json_headers = request_headers(st.none())

NO_CONTROLS = st.characters(exclude_categories=["Cs", "Cc", "Zl", "Zp"])
padding = st.text(" \t\r\n", max_size=3)
titles = st.builds(
    lambda pre, core, post: pre + core + post,
    padding,
    st.text(NO_CONTROLS, min_size=1, max_size=200).filter(lambda t: t.strip() == t and t),
    padding,
)
descriptions = st.text(st.one_of(NO_CONTROLS, st.sampled_from("\t\n\r")), max_size=2000)
valid_tasks = st.fixed_dictionaries(
    {"title": titles}, optional={"description": descriptions, "priority": st.sampled_from(PRIORITIES)}
)

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
json_values = st.recursive(
    json_scalars | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
not_strings = json_scalars | st.lists(json_values, max_size=2) | st.dictionaries(st.text(max_size=5), json_values)


@st.composite
def near_valid_tasks(draw: st.DrawFn) -> dict[str, Any]:
    """A valid task with one to three defects: wrong types, wrong lengths, bad characters, extra fields."""
    task = dict(draw(valid_tasks))
    for _ in range(draw(st.integers(1, 3))):
        defect = draw(st.sampled_from(["type", "missing", "blank", "long", "control", "surrogate", "extra"]))
        field = draw(st.sampled_from(FIELDS))
        if defect == "type":
            task[field] = draw(not_strings)
        elif defect == "missing":
            task.pop("title", None)
        elif defect == "blank":
            task["title"] = draw(st.text(" \t\r\n\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0\u2003\u3000", max_size=6))
        elif defect == "long":
            limit = {"title": 200, "description": 2000, "priority": 6}[field]
            task[field] = "é" * draw(st.integers(limit + 1, limit + 50))
        elif defect in ("control", "surrogate"):
            bad = draw(st.characters(max_codepoint=0x1F, exclude_characters="\t\n\r") | st.just("\x7f"))
            if defect == "surrogate":
                bad = draw(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF, exclude_categories=[]))
            text = draw(st.text(NO_CONTROLS, min_size=2, max_size=20).filter(lambda t: t.strip() == t))
            task[field] = text[:1] + bad + text[1:]
        else:
            key = draw((st.text(max_size=12) | st.text(min_size=95, max_size=130)).filter(lambda k: k not in FIELDS))
            task[key] = draw(json_values)
    return task


def encode(value: Any, ensure_ascii: bool, compact: bool) -> bytes:
    """JSON text as UTF-8; a lone surrogate, which UTF-8 cannot carry, is written as its JSON escape."""
    text = json.dumps(value, ensure_ascii=ensure_ascii, separators=(",", ":") if compact else None)
    return text.encode("utf-8", errors="backslashreplace")


def serialized(values: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    return st.builds(encode, values, st.booleans(), st.booleans())


JSON_TRICKS = [
    b'{"title": "a", "title": "b"}',
    b'{"title": "a", "priority": NaN}',
    b'{"title": Infinity}',
    b'{"title": -Infinity}',
    b'{"title": "\\ud800"}',
    b'{"title": "\\udfff x"}',
    b'{"title": "ok", "description": "\\u0000"}',
    b"\xef\xbb\xbf" + b'{"title": "BOM first"}',
    b'{"title": "a"} {"title": "b"}',
    b'{"title": "a"}\x00',
    b'{"title": ' + b"7" * 5000 + b"}",
    b"[" * 20_000 + b"]" * 20_000,
    b"{" * 5_000,
    b'"\\u',
    b'{"title": "a",}',
    b"{'title': 'a'}",
    b"title=Ship+it",
    b"null",
    b"true",
    b"[]",
    b"{}",
]

bodies = st.one_of(
    st.binary(max_size=600),
    st.text(max_size=300).map(str.encode),
    serialized(json_values),
    serialized(st.dictionaries(st.sampled_from([*FIELDS, "Title", "owner", ""]), json_values, max_size=4)),
    serialized(valid_tasks),
    serialized(near_valid_tasks()),
    st.sampled_from(JSON_TRICKS),
    st.builds(lambda b, n: b.ljust(n), serialized(valid_tasks), st.integers(MAX_BODY - 100, MAX_BODY + 100)),
)


# --- properties ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("examples", BUDGETS)
@pytest.mark.parametrize("kind", ["text", "binary"])
def test_any_body_with_any_headers_gets_the_contracts_answer(apis: dict[str, Api], kind: str, examples: int) -> None:
    """Arbitrary bodies and headers: never a 5xx, a 202 only for a valid task, the error shape for the rest."""

    @settings(max_examples=examples, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(raw=bodies, headers=request_headers())
    @example(raw=b"", headers={})
    @example(raw=b"   \n", headers={"Content-Type": "application/json"})
    @example(raw=b'{"title": "caf\xe9"}', headers={})
    @example(raw=b'{"title": "caf\xe9"}', headers={"Content-Type": "application/json"})
    def run(raw: bytes, headers: dict[str, str]) -> None:
        check(apis[kind], raw, headers)

    run()


@pytest.mark.parametrize("examples", BUDGETS)
def test_near_valid_tasks_name_every_problem_and_queue_nothing(apis: dict[str, Api], examples: int) -> None:
    """A valid task with wrong types, lengths, characters or extra fields: 400 naming exactly those fields."""

    @settings(max_examples=examples, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(task=near_valid_tasks(), ensure_ascii=st.booleans(), kind=st.sampled_from(["text", "binary"]))
    def run(task: dict[str, Any], ensure_ascii: bool, kind: str) -> None:
        response = check(apis[kind], encode(task, ensure_ascii, False), {})
        assert response.status_code in (400, 413), response.text

    run()


@pytest.mark.parametrize("examples", BUDGETS)
def test_every_valid_task_is_queued_once_as_sent(apis: dict[str, Api], examples: int) -> None:
    """Any valid task, however serialized and whatever else the headers say, is accepted and queued intact."""

    @settings(max_examples=examples, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        task=valid_tasks,
        ensure_ascii=st.booleans(),
        compact=st.booleans(),
        headers=json_headers,
        kind=st.sampled_from(["text", "binary"]),
    )
    def run(task: dict[str, Any], ensure_ascii: bool, compact: bool, headers: dict[str, str], kind: str) -> None:
        raw = encode(task, ensure_ascii, compact)
        identity = (CaseInsensitiveDict(headers).get("Content-Encoding") or "").strip().lower() in ("", "identity")
        response = check(apis[kind], raw, headers)
        assert (response.status_code == 202) == (identity and len(raw) <= MAX_BODY), response.text

    run()


@pytest.mark.parametrize("examples", BUDGETS)
def test_content_types_and_text_encodings(apis: dict[str, Api], examples: int) -> None:
    """A valid task in another text encoding, under any Content-Type: accepted only as UTF-8 JSON (the contract)."""
    encodings = ["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-32", "latin-1", "cp1252", "ascii"]

    @settings(max_examples=examples, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        task=valid_tasks,
        codec=st.sampled_from(encodings),
        headers=request_headers(),
        kind=st.sampled_from(["text", "binary"]),
    )
    def run(task: dict[str, Any], codec: str, headers: dict[str, str], kind: str) -> None:
        try:
            raw = json.dumps(task, ensure_ascii=False).encode(codec)
        except UnicodeEncodeError:
            raw = json.dumps(task).encode(codec)  # \u escapes: ASCII, so any of these codecs can carry it
        check(apis[kind], raw, headers)

    run()


@pytest.mark.parametrize("kind", ["text", "binary"])
@pytest.mark.parametrize("size", [MAX_BODY - 1, MAX_BODY, MAX_BODY + 1, MAX_BODY + 3, 4 * MAX_BODY, 2**20])
def test_the_16_kib_limit_is_exact_on_both_apis(apis: dict[str, Api], kind: str, size: int) -> None:
    """A valid task padded to ``size`` bytes: accepted up to 16 KiB inclusive, 413 from one byte more."""
    body = json.dumps({"title": "Big", "description": "d" * 1990}).encode()
    response = check(apis[kind], body + b" " * (size - len(body)), {"Content-Type": "application/json"})
    assert response.status_code == (202 if size <= MAX_BODY else 413)


@pytest.mark.parametrize("kind", ["text", "binary"])
def test_invalid_utf8_is_refused_only_where_the_function_can_see_it(apis: dict[str, Api], kind: str) -> None:
    """Latin-1 JSON: the binary API gets the bytes and refuses them; the text API gets U+FFFD, as on AWS."""
    response = check(apis[kind], '{"title": "café"}'.encode("latin-1"), {"Content-Type": "application/json"})
    assert response.status_code == (400 if kind == "binary" else 202)


@pytest.mark.parametrize("title", ["a\x85b", "a\u2028b", "a\u2029b", "a\x9b[31mred"])
def test_a_title_with_a_line_break_or_c1_control_is_refused(apis: dict[str, Api], title: str) -> None:
    """NEL, LINE and PARAGRAPH SEPARATOR break a line; C1 controls (CSI...) are controls: all must be refused."""
    response = requests.post(apis["text"].url, json={"title": title}, timeout=30)
    apis["text"].queued()
    assert response.status_code == 400, response.text
