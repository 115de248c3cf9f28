"""Fidelity of the offline Lambda runtime, judged against AWS's documentation of the Python runtime.

Each test cites the page (or, where AWS documents the behaviour only in its runtime's source, awslambdaric's file)
it checks, and deploys a purpose-built function of a few lines. One offline AWS serves the whole module, so every
test names its functions uniquely.
"""

from __future__ import annotations

import base64
import decimal
import json
import os
import re
import uuid
from importlib import metadata
from typing import Any

import pytest
from botocore.exceptions import ClientError

from taskflow.offline.functions import RESERVED_VARIABLES

from .conftest import ACCOUNT, REGION, Aws, zip_source

ENVVARS = "https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html"
CONTEXT = "https://docs.aws.amazon.com/lambda/latest/dg/python-context.html"
ERRORS = "https://docs.aws.amazon.com/lambda/latest/dg/python-exceptions.html"
QUOTAS = "https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html"
INVOKE = "https://docs.aws.amazon.com/lambda/latest/dg/API_Invoke.html"
RIC = "https://github.com/aws/aws-lambda-python-runtime-interface-client/blob/main/awslambdaric/"

ECHO_ENV = """
import os

def handler(event, context):
    return dict(os.environ)
"""


@pytest.fixture(scope="module")
def aws(module_aws: Aws) -> Aws:
    """One offline AWS for the module (a fresh one per test would cost more than the tests)."""
    module_aws.role("fidelity-role")
    return module_aws


def _role() -> str:
    return f"arn:aws:iam::{ACCOUNT}:role/fidelity-role"


def _deploy(aws: Aws, source: str, **kwargs: Any) -> str:
    """Deploy ``source`` under a fresh name; return the name."""
    name = f"fid-{uuid.uuid4().hex[:10]}"
    aws.function(name, source, role=_role(), **kwargs)
    return name


def _raw(aws: Aws, name: str, payload: bytes = b"{}", **kwargs: Any) -> tuple[dict[str, Any], bytes]:
    response = aws.lambda_.invoke(FunctionName=name, Payload=payload, **kwargs)
    return response, response["Payload"].read()


def _error_of(call: Any) -> dict[str, Any]:
    with pytest.raises(ClientError) as info:
        call()
    return {**info.value.response["Error"], "status": info.value.response["ResponseMetadata"]["HTTPStatusCode"]}


# --- isolation: what function code can import, and where it can write -----------------------------------------


@pytest.mark.parametrize("module", ["requests", "moto", "taskflow"])
def test_a_package_the_zip_does_not_ship_cannot_be_imported(aws: Aws, module: str) -> None:
    """https://docs.aws.amazon.com/lambda/latest/dg/python-package.html: the runtime has the standard library and
    the SDK; any other dependency must be in the deployment package, or the import fails with
    Runtime.ImportModuleError (``requests``, ``moto`` and ``taskflow`` are all installed in the kernel's venv)."""
    name = _deploy(aws, f"import {module}\n\ndef handler(event, context):\n    return 'imported'\n")
    response, raw = _raw(aws, name, LogType="Tail")
    message = f"Unable to import module 'app': No module named '{module}'"
    assert json.loads(raw) == {
        "errorMessage": message,
        "errorType": "Runtime.ImportModuleError",
        "requestId": "",
        "stackTrace": [],
    }
    assert response["FunctionError"] == "Unhandled"
    assert f"[ERROR] Runtime.ImportModuleError: {message}\nTraceback (most recent call last):" in aws.log_tail(response)


def test_the_sdk_comes_from_the_runtime_directory_after_the_code(aws: Aws) -> None:
    """https://docs.aws.amazon.com/lambda/latest/dg/lambda-python.html (Runtime-included SDK versions) and
    https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html (LAMBDA_TASK_ROOT, LAMBDA_RUNTIME_DIR):
    boto3 and its dependencies are the runtime's; the code directory is first on sys.path."""
    source = """
    import os, sys
    import boto3, botocore, dateutil, jmespath, s3transfer, six, urllib3

    def handler(event, context):
        return {
            "path": sys.path,
            "task_root": os.environ["LAMBDA_TASK_ROOT"],
            "runtime_dir": os.environ["LAMBDA_RUNTIME_DIR"],
            "boto3": boto3.__version__,
            "files": [m.__file__ for m in (boto3, botocore, dateutil, jmespath, s3transfer, six, urllib3)],
        }
    """
    seen = aws.invoke(_deploy(aws, source))[1]
    assert seen["path"][:2] == [seen["task_root"], seen["runtime_dir"]]
    assert not [p for p in seen["path"] if "site-packages" in p], seen["path"]
    assert seen["boto3"] == metadata.version("boto3")
    assert all(f.startswith(seen["runtime_dir"] + os.sep) for f in seen["files"]), seen["files"]


def test_a_module_in_the_zip_shadows_the_runtimes(aws: Aws) -> None:
    """https://docs.aws.amazon.com/lambda/latest/dg/python-package.html: a library included in the package
    (a newer SDK, say) is used instead of the runtime's, because the code directory comes first."""
    source = "import six\n\ndef handler(event, context):\n    return six.WHO\n"
    name = _deploy(aws, source, files={"six.py": "WHO = 'shipped in the zip'\n"})
    assert aws.invoke(name)[1] == "shipped in the zip"


def test_the_code_directory_is_read_only_and_tmp_is_writable(aws: Aws) -> None:
    """https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtime-environment.html: only /tmp is writable; the
    deployed code is on a read-only file system (EROFS, errno 30)."""
    source = """
    import errno, os, tempfile

    def handler(event, context):
        outcomes = {}
        for what, attempt in {
            "create": lambda: open("new.txt", "w"),
            "append": lambda: open(os.path.join(os.environ["LAMBDA_TASK_ROOT"], "app.py"), "a"),
            "delete": lambda: os.remove("app.py"),
            "mkdir": lambda: os.mkdir("cache"),
        }.items():
            try:
                attempt()
                outcomes[what] = "written"
            except OSError as exc:
                outcomes[what] = errno.errorcode.get(exc.errno, str(exc.errno))
        with tempfile.NamedTemporaryFile("w", delete=True) as scratch:
            scratch.write("fine")
        outcomes["tmp"] = "written"
        outcomes["still_there"] = os.path.exists("app.py")
        return outcomes
    """
    outcomes = aws.invoke(_deploy(aws, source))[1]
    assert outcomes == {
        "create": "EROFS",
        "append": "EROFS",
        "delete": "EROFS",
        "mkdir": "EROFS",
        "tmp": "written",
        "still_there": True,
    }


# --- environment variables ---------------------------------------------------------------------------------------


def _reserved_message(*keys: str) -> str:
    return (
        "Lambda was unable to configure your environment variables because the environment variables you have "
        "provided contains reserved keys that are currently not supported for modification. "
        f"Reserved keys used in this request: {', '.join(keys)}"
    )


def _create(aws: Aws, env: dict[str, str]) -> None:
    aws.function(f"fid-{uuid.uuid4().hex[:10]}", "def handler(e, c):\n    return 1\n", role=_role(), env=env)


@pytest.mark.parametrize("key", sorted(k for k in RESERVED_VARIABLES if not k.startswith("_")))
def test_create_function_refuses_each_reserved_variable(aws: Aws, key: str) -> None:
    """https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html (Defined runtime environment
    variables): these keys are reserved and cannot be set in the function configuration. (``_HANDLER`` and
    ``_X_AMZN_TRACE_ID`` never get that far: API_Environment.html's key pattern refuses a leading underscore.)"""
    error = _error_of(lambda: _create(aws, {"TABLE_NAME": "tasks", key: "mine"}))
    assert (error["Code"], error["Message"], error["status"]) == (
        "InvalidParameterValueException",
        _reserved_message(key),
        400,
    )


def test_the_documented_reserved_list_is_the_one_enforced() -> None:
    """https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html: the reserved keys as listed there
    (TZ, LANG, PATH, LD_LIBRARY_PATH and PYTHONPATH are not reserved)."""
    documented = [
        *("_HANDLER", "_X_AMZN_TRACE_ID", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_EXECUTION_ENV"),
        *("AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION"),
        *("AWS_LAMBDA_INITIALIZATION_TYPE", "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME"),
        *("AWS_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"),
        *("AWS_LAMBDA_RUNTIME_API", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR"),
    ]
    assert set(documented) == RESERVED_VARIABLES


def test_update_function_configuration_refuses_reserved_variables_and_keeps_the_old_ones(aws: Aws) -> None:
    """https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html: the same rule on update; every
    reserved key of the request is named."""
    name = _deploy(aws, ECHO_ENV, env={"TABLE_NAME": "tasks"})
    variables = {"AWS_ACCESS_KEY_ID": "x", "TABLE_NAME": "t2", "AWS_SECRET_ACCESS_KEY": "y"}
    error = _error_of(
        lambda: aws.lambda_.update_function_configuration(FunctionName=name, Environment={"Variables": variables})
    )
    assert error["Code"] == "InvalidParameterValueException"
    assert error["Message"] == _reserved_message("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
    config = aws.lambda_.get_function_configuration(FunctionName=name)
    assert config["Environment"]["Variables"]["TABLE_NAME"] == "tasks"


def test_environment_variables_are_limited_to_4_kb_in_total(aws: Aws) -> None:
    """https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html: "The total size of all environment
    variables doesn't exceed 4 KB"; Lambda measures the variables as JSON and quotes that string when refusing."""
    overhead = len(json.dumps({"OUT_DIR": str(aws.out_dir), "BIG": ""}, separators=(",", ":")))
    _create(aws, {"BIG": "x" * (4096 - overhead)})  # exactly 4096 bytes: accepted
    too_big = {"BIG": "x" * (4097 - overhead)}
    error = _error_of(lambda: _create(aws, too_big))
    measured = json.dumps({"OUT_DIR": str(aws.out_dir), **too_big}, separators=(",", ":"))
    assert error["Code"] == "InvalidParameterValueException"
    assert error["Message"] == (
        "Lambda was unable to configure your environment variables because the environment variables you have "
        f"provided exceeded the 4KB limit. String measured: {measured}"
    )


@pytest.mark.parametrize("key", ["A", "MY-VAR", "1ST", "ÄPFEL", "_HANDLER", "_X_AMZN_TRACE_ID"])
def test_variable_names_must_match_the_documented_pattern(aws: Aws, key: str) -> None:
    """https://docs.aws.amazon.com/lambda/latest/dg/API_Environment.html: keys match ``[a-zA-Z]([a-zA-Z0-9_])+``
    (a letter, then at least one letter, digit or underscore)."""
    error = _error_of(lambda: _create(aws, {key: "v"}))
    assert error["Code"] == "ValidationException"
    assert "Map keys must satisfy constraint: [Member must satisfy regular expression pattern" in error["Message"]


def test_runtime_variables_as_the_python_runtime_sets_them(aws: Aws) -> None:
    """https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html: AWS_EXECUTION_ENV,
    AWS_LAMBDA_INITIALIZATION_TYPE, LAMBDA_RUNTIME_DIR, TZ, LANG and LD_LIBRARY_PATH (with the code directory and its
    lib/), a fresh _X_AMZN_TRACE_ID per invocation, and nothing the offline runtime uses for itself."""
    name = _deploy(aws, ECHO_ENV)
    first, second = aws.invoke(name)[1], aws.invoke(name)[1]
    assert first["AWS_EXECUTION_ENV"] == "AWS_Lambda_python3.13"
    assert first["AWS_LAMBDA_INITIALIZATION_TYPE"] == "on-demand"
    assert first["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST"
    assert first["TZ"] == ":UTC" and first["LANG"] == "en_US.UTF-8"
    assert os.path.isdir(first["LAMBDA_RUNTIME_DIR"])
    libs = first["LD_LIBRARY_PATH"].split(os.pathsep)
    assert first["LAMBDA_TASK_ROOT"] in libs and os.path.join(first["LAMBDA_TASK_ROOT"], "lib") in libs
    trace = re.compile(r"Root=1-[0-9a-f]{8}-[0-9a-f]{24};Parent=[0-9a-f]{16};Sampled=[01]")
    assert trace.fullmatch(first["_X_AMZN_TRACE_ID"]) and first["_X_AMZN_TRACE_ID"] != second["_X_AMZN_TRACE_ID"]
    assert not [k for k in first if k.startswith(("TASKFLOW", "PYTHON"))], sorted(first)


def test_unreserved_runtime_variables_can_be_replaced(aws: Aws) -> None:
    """https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html: TZ, LANG and LD_LIBRARY_PATH are
    not reserved; the function's configuration sets them."""
    name = _deploy(aws, ECHO_ENV, env={"TZ": "Europe/Paris", "LANG": "C.UTF-8", "LD_LIBRARY_PATH": "/opt/lib"})
    env = aws.invoke(name)[1]
    assert (env["TZ"], env["LANG"], env["LD_LIBRARY_PATH"]) == ("Europe/Paris", "C.UTF-8", "/opt/lib")


# --- the response: marshalling -------------------------------------------------------------------------------------


def test_a_decimal_is_returned_as_a_json_number(aws: Aws) -> None:
    """https://github.com/aws/aws-lambda-python-runtime-interface-client/blob/main/awslambdaric/lambda_runtime_marshaller.py:
    the runtime writes a Decimal (what a DynamoDB read gives) as the number it holds, digits as written."""
    source = """
    from decimal import Decimal

    def handler(event, context):
        return {"price": Decimal("1.10"), "count": Decimal("3"), "items": [Decimal("-0.5"), Decimal("1E+2")]}
    """
    response, raw = _raw(aws, _deploy(aws, source))
    assert "FunctionError" not in response
    assert raw == b'{"price": 1.10, "count": 3, "items": [-0.5, 1E+2]}'
    assert json.loads(raw, parse_float=decimal.Decimal) == {
        "price": decimal.Decimal("1.10"),
        "count": 3,
        "items": [decimal.Decimal("-0.5"), decimal.Decimal("1E+2")],
    }


def test_an_unserializable_response_is_a_marshal_error(aws: Aws) -> None:
    """https://docs.aws.amazon.com/lambda/latest/dg/python-exceptions.html and awslambdaric's
    lambda_runtime_marshaller.py: Runtime.MarshalError, "Unable to marshal response: ...", logged as an error."""
    response, raw = _raw(aws, _deploy(aws, "def handler(event, context):\n    return {1, 2}\n"), LogType="Tail")
    payload = json.loads(raw)
    message = "Unable to marshal response: Object of type set is not JSON serializable"
    assert payload == {
        "errorMessage": message,
        "errorType": "Runtime.MarshalError",
        "requestId": response["ResponseMetadata"]["RequestId"],
        "stackTrace": [],
    }
    assert response["FunctionError"] == "Unhandled"
    assert f"[ERROR] Runtime.MarshalError: {message}" in aws.log_tail(response)


def test_text_is_returned_unescaped_and_bytes_as_they_are(aws: Aws) -> None:
    """https://github.com/aws/aws-lambda-python-runtime-interface-client/blob/main/awslambdaric/lambda_runtime_marshaller.py:
    for python3.12 and later the JSON keeps non-ASCII characters as UTF-8 (no \\u escapes); bytes a handler returns
    are the payload unchanged."""
    text = _raw(aws, _deploy(aws, "def handler(event, context):\n    return {'café': 'naïve ✓'}\n"))[1]
    assert text == '{"café": "naïve ✓"}'.encode()
    raw = _raw(aws, _deploy(aws, "def handler(event, context):\n    return b'\\x00not json'\n"))[1]
    assert raw == b"\x00not json"


# --- errors the runtime reports -----------------------------------------------------------------------------------


def _init_error(aws: Aws, source: str, handler: str = "app.handler") -> dict[str, Any]:
    response, raw = _raw(aws, _deploy(aws, source, handler=handler))
    assert response["FunctionError"] == "Unhandled"
    payload: dict[str, Any] = json.loads(raw)
    return payload


def test_a_missing_handler_function(aws: Aws) -> None:
    """https://docs.aws.amazon.com/lambda/latest/dg/python-exceptions.html and awslambdaric's bootstrap.py:
    Runtime.HandlerNotFound, "Handler 'x' missing on module 'app'"."""
    assert _init_error(aws, "def main(event, context):\n    return 1\n") == {
        "errorMessage": "Handler 'handler' missing on module 'app'",
        "errorType": "Runtime.HandlerNotFound",
        "requestId": "",
        "stackTrace": [],
    }


def test_a_syntax_error_in_the_module(aws: Aws) -> None:
    """awslambdaric's bootstrap.py (``_get_handler``): Runtime.UserCodeSyntaxError, "Syntax error in module
    'app': ...", with one frame naming the file and line."""
    payload = _init_error(aws, "def handler(event, context)\n    return 1\n")
    assert payload["errorType"] == "Runtime.UserCodeSyntaxError"
    assert payload["errorMessage"].startswith("Syntax error in module 'app': ")
    assert payload["errorMessage"].endswith("(app.py, line 1)")
    [frame] = payload["stackTrace"]
    assert re.fullmatch(r'  File ".*app\.py" Line 1\n    def handler\(event, context\)\n', frame), frame


def test_a_handler_setting_without_a_function_name(aws: Aws) -> None:
    """awslambdaric's bootstrap.py: a handler that is not ``module.function`` is Runtime.MalformedHandlerName."""
    payload = _init_error(aws, "def handler(event, context):\n    return 1\n", handler="app")
    assert payload == {
        "errorMessage": "Bad handler 'app': not enough values to unpack (expected 2, got 1)",
        "errorType": "Runtime.MalformedHandlerName",
        "requestId": "",
        "stackTrace": [],
    }


def test_a_handler_module_named_like_a_built_in_module(aws: Aws) -> None:
    """awslambdaric's bootstrap.py: a handler module named like a built-in module (``sys``) is
    Runtime.BuiltInModuleConflict."""
    payload = _init_error(aws, "", handler="sys.handler")
    assert payload["errorType"] == "Runtime.BuiltInModuleConflict"
    assert payload["errorMessage"] == "Cannot use built-in module sys as a handler module"


def test_an_exception_at_import_time_keeps_its_own_type(aws: Aws) -> None:
    """https://docs.aws.amazon.com/lambda/latest/dg/python-exceptions.html and awslambdaric's bootstrap.py: module
    code that raises is reported with the exception's type and message (not as an import error)."""
    payload = _init_error(aws, "raise KeyError('TABLE_NAME')\n\ndef handler(event, context):\n    return 1\n")
    assert (payload["errorType"], payload["errorMessage"]) == ("KeyError", "'TABLE_NAME'")
    assert any("app.py" in frame and "line 1" in frame for frame in payload["stackTrace"])


def test_the_init_error_is_logged_in_the_init_phase_and_again_by_each_invocation(aws: Aws) -> None:
    """https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtime-environment.html (init errors: Lambda retries
    the init phase when the function is invoked): the [ERROR] entry appears before START and inside it."""
    name = _deploy(aws, "import not_shipped\n\ndef handler(event, context):\n    return 1\n")
    _raw(aws, name)
    messages = aws.log_messages(name)
    starts = [i for i, m in enumerate(messages) if m.startswith("START ")]
    errors = [i for i, m in enumerate(messages) if m.startswith("[ERROR] Runtime.ImportModuleError")]
    assert len(errors) == 2 and errors[0] < starts[0] < errors[1], messages


def test_an_unhandled_exception_is_logged_with_the_runtimes_traceback(aws: Aws) -> None:
    """https://docs.aws.amazon.com/lambda/latest/dg/python-exceptions.html: the error is logged as ``[ERROR]
    type: message`` and the traceback, one log event; awslambdaric indents its lines with no-break spaces."""
    source = "def handler(event, context):\n    raise ValueError('no such task')\n"
    response, raw = _raw(aws, _deploy(aws, source), LogType="Tail")
    payload = json.loads(raw)
    assert (payload["errorType"], payload["errorMessage"]) == ("ValueError", "no such task")
    assert payload["requestId"] == response["ResponseMetadata"]["RequestId"]
    tail = aws.log_tail(response)
    assert "[ERROR] ValueError: no such task\nTraceback (most recent call last):\n\u00a0\u00a0File " in tail
    assert "\n\u00a0\u00a0\u00a0\u00a0raise ValueError('no such task')" in tail


# --- the context object -------------------------------------------------------------------------------------------


CONTEXT_SOURCE = """
def handler(event, context):
    return {
        "aws_request_id": context.aws_request_id,
        "function_version": context.function_version,
        "invoked_function_arn": context.invoked_function_arn,
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "log_group_name": context.log_group_name,
        "identity": [context.identity.cognito_identity_id, context.identity.cognito_identity_pool_id],
        "client_context": context.client_context,
        "tenant_id": context.tenant_id,
        "remaining": context.get_remaining_time_in_millis(),
    }
"""


def test_the_context_object(aws: Aws) -> None:
    """https://docs.aws.amazon.com/lambda/latest/dg/python-context.html and awslambdaric's lambda_context.py:
    identity is always an object (its ids None without Cognito), client_context None, memory_limit_in_mb the string
    of AWS_LAMBDA_FUNCTION_MEMORY_SIZE, and aws_request_id the Invoke response's request id."""
    name = _deploy(aws, CONTEXT_SOURCE, memory=256)
    response, raw = _raw(aws, name)
    ctx = json.loads(raw)
    assert ctx["aws_request_id"] == response["ResponseMetadata"]["RequestId"]
    assert uuid.UUID(ctx["aws_request_id"]).version == 4
    assert ctx["function_version"] == "$LATEST" and ctx["memory_limit_in_mb"] == "256"
    assert ctx["invoked_function_arn"] == f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"
    assert ctx["log_group_name"] == f"/aws/lambda/{name}"
    assert ctx["identity"] == [None, None] and ctx["client_context"] is None and ctx["tenant_id"] is None
    assert isinstance(ctx["remaining"], int) and 0 < ctx["remaining"] <= 3000


def test_invoked_function_arn_names_the_qualifier_the_caller_used(aws: Aws) -> None:
    """https://docs.aws.amazon.com/lambda/latest/dg/python-context.html: invoked_function_arn "indicates if the
    invoker specified a version number or alias"."""
    name = _deploy(aws, CONTEXT_SOURCE)
    arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"
    assert aws.invoke(name, Qualifier="$LATEST")[1]["invoked_function_arn"] == f"{arn}:$LATEST"
    assert aws.invoke(f"{arn}:$LATEST")[1]["invoked_function_arn"] == f"{arn}:$LATEST"
    assert aws.invoke(arn)[1]["invoked_function_arn"] == arn


# --- Invoke: qualifiers and payload limits -------------------------------------------------------------------------


def test_a_published_version_and_an_alias_run_that_versions_code(aws: Aws) -> None:
    """https://docs.aws.amazon.com/lambda/latest/dg/API_Invoke.html (Qualifier, X-Amz-Executed-Version) and
    https://docs.aws.amazon.com/lambda/latest/dg/configuration-versions.html: a version keeps its code."""
    source = "import os\n\ndef handler(e, c):\n    return ['one', os.environ['AWS_LAMBDA_FUNCTION_VERSION']]\n"
    name = _deploy(aws, source)
    version = aws.lambda_.publish_version(FunctionName=name)["Version"]
    aws.lambda_.create_alias(FunctionName=name, Name="live", FunctionVersion=version)
    files = Aws.files("def handler(e, c):\n    return ['two', '$LATEST']\n")
    aws.lambda_.update_function_code(FunctionName=name, ZipFile=zip_source(files))
    for qualifier, expected in (
        ("$LATEST", ["two", "$LATEST"]),
        (version, ["one", version]),
        ("live", ["one", version]),
    ):
        response, raw = _raw(aws, name, Qualifier=qualifier)
        assert json.loads(raw) == expected, qualifier
        assert response["ExecutedVersion"] == expected[1]


def test_an_unknown_qualifier_is_resource_not_found(aws: Aws) -> None:
    """https://docs.aws.amazon.com/lambda/latest/dg/API_Invoke.html (Errors: ResourceNotFoundException, 404)."""
    name = _deploy(aws, "def handler(e, c):\n    return 1\n")
    error = _error_of(lambda: _raw(aws, name, Qualifier="7"))
    assert (error["Code"], error["status"]) == ("ResourceNotFoundException", 404)
    assert error["Message"] == f"Function not found: arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}:7"


def test_a_synchronous_request_is_limited_to_6_mb(aws: Aws) -> None:
    """https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html (Invocation payload: 6 MB each for
    request and response, synchronous) and API_Invoke.html (RequestEntityTooLargeException, 413)."""
    name = _deploy(aws, "def handler(event, context):\n    return len(event)\n")
    filler = 6_291_456 - len(json.dumps("x")) + 1
    assert aws.invoke(name, "x" * filler)[1] == filler  # exactly 6291456 bytes: accepted
    error = _error_of(lambda: _raw(aws, name, json.dumps("x" * (filler + 1)).encode()))
    assert (error["Code"], error["status"]) == ("RequestEntityTooLargeException", 413)
    assert error["Message"] == "Request must be smaller than 6291456 bytes for the InvokeFunction operation"


def test_an_asynchronous_request_is_limited_to_1_mb(aws: Aws) -> None:
    """https://docs.aws.amazon.com/lambda/latest/dg/API_Invoke.html: "For asynchronous invocations, the maximum
    payload size is 1 MB"."""
    name = _deploy(aws, "def handler(event, context):\n    return 1\n")
    payload = json.dumps("x" * 1_048_576).encode()
    error = _error_of(lambda: _raw(aws, name, payload, InvocationType="Event"))
    assert (error["Code"], error["status"]) == ("RequestEntityTooLargeException", 413)
    limit = "(limit 1048576 bytes)"
    assert error["Message"] == f"{len(payload)} byte payload is too large for the Event invocation type {limit}"


def test_a_response_is_limited_to_6_mb(aws: Aws) -> None:
    """https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html: a response of up to 6 MB comes back
    (6,100,000 bytes here); a larger one is Function.ResponseSizeTooLarge, a function error."""
    source = "def handler(event, context):\n    return 'x' * event['n']\n"
    name = _deploy(aws, source)
    assert len(_raw(aws, name, b'{"n": 6100000}')[1]) == 6_100_002
    response, raw = _raw(aws, name, b'{"n": 6291555}')  # 6291557 bytes with the quotes
    assert response["FunctionError"] == "Unhandled"
    assert json.loads(raw) == {
        "errorMessage": "Response payload size exceeded maximum allowed payload size (6291556 bytes).",
        "errorType": "Function.ResponseSizeTooLarge",
    }


def test_log_result_is_the_tail_of_the_invocations_log(aws: Aws) -> None:
    """https://docs.aws.amazon.com/lambda/latest/dg/API_Invoke.html (X-Amz-Log-Result: the last 4 KB of the
    execution log, base64) is returned only for LogType Tail."""
    name = _deploy(aws, "def handler(event, context):\n    print('hello from the handler')\n")
    assert "LogResult" not in aws.lambda_.invoke(FunctionName=name)
    response = aws.lambda_.invoke(FunctionName=name, LogType="Tail")
    tail = base64.b64decode(response["LogResult"])
    assert len(tail) <= 4096 and b"hello from the handler" in tail
