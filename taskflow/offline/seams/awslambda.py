"""moto's Lambda: Invoke runs the deployed code (of the version its Qualifier names), CreateFunction,
UpdateFunctionConfiguration and CreateEventSourceMapping are checked as Lambda checks them, SQS mappings are
polled by the runtime instead of triggered inside SendMessage, and GetEventSourceMapping reports the poller's
LastProcessingResult. Plus the views of functions and mappings.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote

from moto.awslambda.exceptions import UnknownFunctionException
from moto.awslambda.models import lambda_backends
from moto.sqs.models import sqs_backends

from taskflow.arns import is_sqs_queue
from taskflow.offline.account import ACCOUNT_ID
from taskflow.offline.errors import AwsError
from taskflow.offline.model import Function, Mapping
from taskflow.offline.seams.core import moto_error, paged
from taskflow.offline.seams.records import Installation, Patch, Read


def function_view(fn: Any) -> Function:
    code = fn.code if isinstance(fn.code, dict) else {}
    return Function(
        name=fn.function_name,
        arn=fn.function_arn,
        region=fn.region,
        role=fn.role,
        handler=fn.handler,
        timeout=int(fn.timeout or 3),
        memory=int(fn.memory_size or 128),
        environment={str(k): str(v) for k, v in (fn.environment_vars or {}).items()},
        code_sha256=fn.code_sha_256,
        upload_id=code.get("UUID"),
        log_group=fn.logs_group_name,
        code_zip=fn.code_bytes,
        version=str(fn.version),
    )


def function(region: str, name_or_arn: str) -> Function | None:
    """The function, or None if there is none of that name or ARN."""
    try:
        return function_view(lambda_backends[ACCOUNT_ID][region].get_function(name_or_arn))
    except UnknownFunctionException:
        return None


def resource_policy(region: str, name_or_arn: str) -> list[dict[str, Any]]:
    """The statements of a function's resource-based policy (``add_permission``)."""
    fn = lambda_backends[ACCOUNT_ID][region].get_function(name_or_arn)
    return [json.loads(st) if isinstance(st, str) else st for st in fn.policy.statements]


def _mapping_view(esm: Any) -> Mapping:
    scaling = esm.scaling_config or {}
    return Mapping(
        uuid=esm.uuid,
        region=esm.region,
        source_arn=esm.event_source_arn,
        function_arn=esm.function_arn,
        enabled=bool(esm.enabled),
        batch_size=int(esm.batch_size or 10),
        batching_window=float(esm.max_batch_window or 0),
        response_types=tuple(esm.function_response_types or ()),
        max_concurrency=int(scaling["MaximumConcurrency"]) if scaling.get("MaximumConcurrency") else None,
    )


def mapping(region: str, uuid: str) -> Mapping | None:
    """The mapping's current settings, or None once it is deleted."""
    esm = lambda_backends[ACCOUNT_ID][region]._event_source_mappings.get(uuid)
    return None if esm is None else _mapping_view(esm)


# --- patches -----------------------------------------------------------------------------------------------


def _invoke(original: Any, inst: Installation) -> Any:
    """Invocations moto makes itself (InvokeAsync, other services' triggers) run the deployed code too."""

    def invoke(fn: Any, body: Any, request_headers: Any, response_headers: Any) -> bytes:
        headers = {str(k).lower(): v for k, v in (request_headers or {}).items()}
        kind = headers.get("x-amz-invocation-type", "RequestResponse")
        try:
            reply = inst.handlers.invoke(function_view(fn), body, kind, fn.function_arn)
        except AwsError as err:
            raise moto_error(err) from None
        response_headers.update(reply.headers)
        return bytes(reply.payload)

    return invoke


def _named_qualifier(name: str) -> str | None:
    """The qualifier inside a function name, partial ARN or ARN (``name:prod``, ``...:function:name:1``)."""
    parts = name.split(":")
    if name.startswith("arn:"):
        return parts[7] if len(parts) > 7 else None
    if len(parts) >= 3 and parts[1] == "function":
        return parts[3] if len(parts) > 3 else None
    return parts[1] if len(parts) == 2 else None


def _invoke_response(original: Any, inst: Installation) -> Any:
    """The Invoke API: the Qualifier picks the version (moto reads a lower-case parameter botocore never sends),
    an unknown one is ResourceNotFoundException, and payload limits are the runtime's (moto's is approximate).
    """

    def invoke(self: Any) -> tuple[int, dict[str, str], bytes]:
        name = unquote(self.path.rsplit("/", 2)[-2])
        qualifier = self.querystring.get("Qualifier", [None])[0] or _named_qualifier(name)
        fn = self.backend.get_function(name, qualifier)  # UnknownFunctionException: 404, as on Lambda
        view = function_view(fn)
        base = f"arn:aws:lambda:{view.region}:{ACCOUNT_ID}:function:{view.name}"
        invoked_arn = f"{base}:{qualifier}" if qualifier else base
        kind = self.headers.get("X-Amz-Invocation-Type", "RequestResponse")
        try:
            reply = inst.handlers.invoke(view, self.body, kind, invoked_arn)
        except AwsError as err:
            raise moto_error(err) from None
        payload = bytes(reply.payload)
        headers = {"content-type": "application/json", **reply.headers, "Content-Length": str(len(payload))}
        if kind == "Event":
            return 202, {**headers, "status": "202"}, payload
        if kind == "DryRun":
            return 204, {**headers, "status": "204"}, payload
        if self.headers.get("X-Amz-Log-Type") != "Tail":
            headers.pop("x-amz-log-result", None)
        return 200, headers, payload

    return invoke


def _keep_request_id(original: Any, inst: Installation) -> Any:
    """A response that names its request id keeps it (Invoke's is the invocation's, as the function logs it);
    moto would draw a new one for every response."""
    enrich = original.__func__

    def enrich_response(headers: dict[str, str], body: Any) -> tuple[dict[str, str], Any]:
        own = headers.get("x-amzn-requestid")
        headers, body = enrich(headers, body)
        if own is not None:
            headers["x-amzn-requestid"] = own
        return headers, body

    return staticmethod(enrich_response)


def _create_function(original: Any, inst: Installation) -> Any:
    def create_function(backend: Any, spec: dict[str, Any]) -> Any:
        try:
            inst.handlers.configuring_environment(dict((spec.get("Environment") or {}).get("Variables") or {}))
            inst.handlers.creating_function(spec.get("Role", ""))
        except AwsError as err:
            raise moto_error(err) from None
        return original(backend, spec)

    return create_function


def _update_function_configuration(original: Any, inst: Installation) -> Any:
    def update_function_configuration(backend: Any, function_name: str, qualifier: Any, body: dict[str, Any]) -> Any:
        environment = body.get("Environment")
        if environment is not None:
            try:
                inst.handlers.configuring_environment(dict(environment.get("Variables") or {}))
            except AwsError as err:
                raise moto_error(err) from None
        return original(backend, function_name, qualifier, body)

    return update_function_configuration


def _create_event_source_mapping(original: Any, inst: Installation) -> Any:
    def create_event_source_mapping(backend: Any, spec: dict[str, Any]) -> Any:
        source = spec.get("EventSourceArn", "")
        fn = backend.get_function(spec.get("FunctionName", ""))
        try:
            inst.handlers.creating_mapping(function_view(fn), source)
        except AwsError as err:
            raise moto_error(err) from None
        esm = original(backend, spec)
        if is_sqs_queue(source):
            for queue in sqs_backends[ACCOUNT_ID][backend.region_name].queues.values():
                queue.lambda_event_source_mappings.pop(esm.function_arn, None)  # no trigger inside SendMessage
            inst.handlers.mapping_created(_mapping_view(esm))
        return esm

    return create_event_source_mapping


def _get_configuration(original: Any, inst: Installation) -> Any:
    def get_configuration(esm: Any) -> dict[str, Any]:
        config: dict[str, Any] = original(esm)
        result = inst.handlers.mapping_result(esm.uuid)
        if result is not None:
            config["LastProcessingResult"] = result
        return config

    return get_configuration


def _list_functions_paged(original: Any, inst: Installation) -> Any:
    """ListFunctions answers at most 50 functions per call, whatever MaxItems asks (botocore's model says so)."""
    return paged(
        original,
        items="Functions",
        token_in="Marker",
        token_out="NextMarker",
        size_in="MaxItems",
        default=50,
        largest=50,
    )


def _list_mappings_paged(original: Any, inst: Installation) -> Any:
    """ListEventSourceMappings answers at most 100 mappings per call."""
    return paged(
        original,
        items="EventSourceMappings",
        token_in="Marker",
        token_out="NextMarker",
        size_in="MaxItems",
        default=100,
        largest=100,
    )


PATCHES = (
    Patch(
        "moto.awslambda.responses",
        "LambdaResponse",
        "list_functions",
        "page ListFunctions as Lambda does",
        _list_functions_paged,
        ("self",),
    ),
    Patch(
        "moto.awslambda.responses",
        "LambdaResponse",
        "list_event_source_mappings",
        "page ListEventSourceMappings as Lambda does",
        _list_mappings_paged,
        ("self",),
    ),
    Patch(
        "moto.awslambda.models",
        "LambdaFunction",
        "invoke",
        "run the deployed code on invoke",
        _invoke,
        ("self", "body", "request_headers", "response_headers"),
    ),
    Patch(
        "moto.awslambda.responses",
        "LambdaResponse",
        "invoke",
        "answer Invoke for the qualified version, with Lambda's payload limits",
        _invoke_response,
        ("self",),
    ),
    Patch(
        "moto.core.responses",
        "BaseResponse",
        "_enrich_response",
        "keep the invocation's id as the Invoke response's request id",
        _keep_request_id,
        ("headers", "body"),
    ),
    Patch(
        "moto.awslambda.models",
        "LambdaBackend",
        "create_function",
        "check the environment variables and the trust policy on create_function",
        _create_function,
        ("self", "spec"),
    ),
    Patch(
        "moto.awslambda.models",
        "LambdaBackend",
        "update_function_configuration",
        "check the environment variables on update_function_configuration",
        _update_function_configuration,
        ("self", "function_name", "qualifier", "body"),
    ),
    Patch(
        "moto.awslambda.models",
        "LambdaBackend",
        "create_event_source_mapping",
        "check a mapping's role and queue, and poll SQS instead of triggering inside SendMessage",
        _create_event_source_mapping,
        ("self", "spec"),
    ),
    Patch(
        "moto.awslambda.models",
        "EventSourceMapping",
        "get_configuration",
        "report the poller's LastProcessingResult",
        _get_configuration,
        ("self",),
    ),
)

READS = (
    Read("moto.awslambda.models", "lambda_backends", "the backends of Lambda"),
    Read(
        "moto.awslambda.models",
        "LambdaBackend.get_function",
        "find functions by name or ARN",
        ("self", "function_name_or_arn", "qualifier"),
    ),
    Read("moto.awslambda.models", "LambdaBackend.region_name", "a backend's region"),
    Read("moto.awslambda.responses", "LambdaResponse.backend", "the Lambda backend of a request"),
    Read("moto.awslambda.models", "LambdaBackend._event_source_mappings", "read event source mappings"),
    Read("moto.awslambda.exceptions", "UnknownFunctionException", "a function that does not exist"),
    *(
        Read("moto.awslambda.models", f"LambdaFunction.{name}", f"a function's {what}")
        for name, what in (
            ("function_name", "name"),
            ("function_arn", "ARN"),
            ("region", "region"),
            ("role", "execution role"),
            ("handler", "handler"),
            ("timeout", "timeout"),
            ("memory_size", "memory size"),
            ("environment_vars", "environment variables"),
            ("code_sha_256", "CodeSha256"),
            ("code", "upload (its UUID)"),
            ("code_bytes", "zip"),
            ("logs_group_name", "log group"),
            ("policy", "resource-based policy"),
            ("version", "version ($LATEST or a number)"),
        )
    ),
    Read("moto.awslambda.policy", "Policy.statements", "a resource-based policy's statements"),
    *(
        Read("moto.awslambda.models", f"EventSourceMapping.{name}", f"a mapping's {what}")
        for name, what in (
            ("uuid", "UUID"),
            ("region", "region"),
            ("event_source_arn", "source"),
            ("function_arn", "function"),
            ("enabled", "state"),
            ("batch_size", "BatchSize"),
            ("max_batch_window", "MaximumBatchingWindowInSeconds"),
            ("function_response_types", "FunctionResponseTypes"),
            ("scaling_config", "ScalingConfig"),
        )
    ),
    Read("moto.sqs.models", "Queue.lambda_event_source_mappings", "remove the trigger inside SendMessage"),
)
