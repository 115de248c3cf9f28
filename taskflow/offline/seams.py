"""The moto internals the offline runtime patches or calls, checked in one place.

moto is pinned exactly (requirements.txt). If an upgrade moves or reshapes any of these, ``check()``
fails with a message naming the seam, instead of the runtime misbehaving in a confusing way later.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass

PINNED_MOTO = "5.2.5"


class MotoSeamError(RuntimeError):
    """A moto internal the offline runtime relies on has moved or changed shape."""


@dataclass(frozen=True)
class Seam:
    """One moto internal: where it lives and the parameters we call it with."""

    why: str
    module: str
    attribute: str  # "Class.method" or "Class" or "name"
    parameters: tuple[str, ...] | None = None  # leading parameter names, checked in order

    @property
    def where(self) -> str:
        return f"{self.module}.{self.attribute}"


SEAMS: tuple[Seam, ...] = (
    Seam(
        "run Lambda code on invoke",
        "moto.awslambda.models",
        "LambdaFunction.invoke",
        ("self", "body", "request_headers", "response_headers"),
    ),
    Seam(
        "check the trust policy on create_function",
        "moto.awslambda.models",
        "LambdaBackend.create_function",
        ("self", "spec"),
    ),
    Seam(
        "replace the synchronous SQS trigger with a poller",
        "moto.awslambda.models",
        "LambdaBackend.create_event_source_mapping",
        ("self", "spec"),
    ),
    Seam("read event source mappings", "moto.awslambda.models", "LambdaBackend._event_source_mappings"),
    Seam(
        "report the poller's LastProcessingResult",
        "moto.awslambda.models",
        "EventSourceMapping.get_configuration",
        ("self",),
    ),
    Seam(
        "find functions by name or ARN",
        "moto.awslambda.models",
        "LambdaBackend.get_function",
        ("self", "function_name_or_arn"),
    ),
    Seam("the backends of Lambda", "moto.awslambda.models", "lambda_backends"),
    Seam(
        "route API Gateway stage URLs",
        "moto.apigateway.models",
        "RestAPI.update_integration_mocks",
        ("self", "stage_name"),
    ),
    Seam(
        "non-proxy integrations keep moto's behaviour",
        "moto.apigateway.models",
        "Resource.get_response",
        ("self", "request"),
    ),
    Seam("the backends of API Gateway", "moto.apigateway.models", "apigateway_backends"),
    Seam("the requests mock API Gateway URLs are registered with", "moto.core.models", "responses_mock"),
    Seam(
        "match stage URLs before moto's ~190 service patterns",
        "moto.core.responses_custom_registry",
        "CustomRegistry.find",
        ("self", "request"),
    ),
    Seam(
        "confine each function to its role",
        "moto.core.authorization",
        "ActionAuthenticatorMixin._authenticate_and_authorize_action",
        ("self", "iam_request_cls", "resource"),
    ),
    Seam("verify signatures of worker requests", "moto.iam.access_control", "IAMRequest"),
    Seam(
        "evaluate IAM policy documents",
        "moto.iam.access_control",
        "IAMPolicy.is_action_permitted",
        ("self", "action", "resource"),
    ),
    Seam("the backends of IAM", "moto.iam.models", "iam_backends"),
    Seam(
        "issue STS credentials to workers",
        "moto.sts.models",
        "STSBackend.assume_role",
        ("self", "region_name", "role_session_name", "role_arn", "policy", "duration", "external_id"),
    ),
    Seam("the backends of STS", "moto.sts.models", "sts_backends"),
    Seam(
        "poll queues",
        "moto.sqs.models",
        "SQSBackend.receive_message",
        ("self", "queue_name", "count", "wait_seconds_timeout", "visibility_timeout"),
    ),
    Seam(
        "delete processed messages",
        "moto.sqs.models",
        "SQSBackend.delete_message",
        ("self", "queue_name", "receipt_handle"),
    ),
    Seam(
        "receive without a pass over the queue per message",
        "moto.sqs.models",
        "SQSBackend.is_message_valid_based_on_retention_period",
        ("self", "queue_name", "message"),
    ),
    Seam("serialize deletes with sends", "moto.sqs.models", "Queue._messages_lock"),
    Seam("the clock SQS messages are stamped with", "moto.core.utils", "unix_time"),
    Seam("count sent messages", "moto.sqs.models", "SQSBackend.send_message", ("self", "queue_name", "message_body")),
    Seam("wake pollers when a message arrives", "moto.sqs.models", "Queue.wait_for_messages", ("self", "timeout")),
    Seam("the backends of SQS", "moto.sqs.models", "sqs_backends"),
    Seam(
        "write function logs",
        "moto.logs.models",
        "LogsBackend.put_log_events",
        ("self", "log_group_name", "log_stream_name", "log_events"),
    ),
    Seam(
        "create log streams",
        "moto.logs.models",
        "LogsBackend.create_log_stream",
        ("self", "log_group_name", "log_stream_name"),
    ),
    Seam("create log groups", "moto.logs.models", "LogsBackend.create_log_group", ("self", "log_group_name", "tags")),
    Seam("the backends of CloudWatch Logs", "moto.logs.models", "logs_backends"),
    Seam(
        "publish AWS/Lambda and AWS/SQS metrics",
        "moto.cloudwatch.models",
        "CloudWatchBackend.put_metric_data",
        ("self", "namespace", "metric_data"),
    ),
    Seam("the backends of CloudWatch", "moto.cloudwatch.models", "cloudwatch_backends"),
    Seam("the DynamoDB request handler (resource ARNs for IAM)", "moto.dynamodb.responses", "DynamoHandler"),
    Seam(
        "AccessDenied for IAM and STS (query protocol)",
        "moto.core.exceptions",
        "AccessDeniedError.__init__",
        ("self", "user_arn", "action"),
    ),
    Seam("the backends of DynamoDB (fault injection keys items)", "moto.dynamodb.models", "dynamodb_backends"),
    Seam("find a table", "moto.dynamodb.models", "DynamoDBBackend.get_table", ("self", "table_name")),
    Seam("a table's partition key", "moto.dynamodb.models.table", "Table.hash_key_attr"),
    Seam("a table's sort key", "moto.dynamodb.models.table", "Table.range_key_attr"),
    Seam("count a table's items from a snapshot", "moto.dynamodb.models.table", "Table.__len__", ("self",)),
    Seam("list a table's items from a snapshot", "moto.dynamodb.models.table", "Table.all_items", ("self",)),
    Seam("a table's items by key", "moto.dynamodb.models.table", "Table.items"),
    Seam("does a table have a sort key", "moto.dynamodb.models.table", "Table.has_range_key"),
    Seam("the in-process and server-mode mocks", "moto", "mock_aws"),
    Seam("serve moto to worker processes over loopback", "moto.server", "ThreadedMotoServer"),
    # speedups.py: faster equivalents of moto internals (same results, less work).
    Seam("count visible messages with one clock read", "moto.sqs.models", "Queue.messages"),
    Seam("count in-flight messages", "moto.sqs.models", "Queue.approximate_number_of_messages_not_visible"),
    Seam("count delayed messages", "moto.sqs.models", "Queue.approximate_number_of_messages_delayed"),
    Seam("the messages of a queue", "moto.sqs.models", "Queue._messages"),
    Seam("when a message becomes visible again", "moto.sqs.models", "Message.visible_at"),
    Seam("until when a message is delayed", "moto.sqs.models", "Message.delayed_until"),
    Seam("a message's earlier receipt handles", "moto.sqs.models", "Message._old_receipt_handles"),
    Seam("the clock message visibility is measured with", "moto.core.utils", "unix_time_millis"),
    Seam("delete a message in one pass", "moto.sqs.models", "Queue.delete_message", ("self", "receipt_handle")),
    Seam("receipt handles already deleted", "moto.sqs.models", "Queue.deleted_messages"),
    Seam("messages received and not yet deleted", "moto.sqs.models", "Queue.pending_messages"),
    Seam("an unknown receipt handle", "moto.sqs.exceptions", "ReceiptHandleIsInvalid"),
    Seam("draw receipt handles in one call", "moto.sqs.models", "generate_receipt_handle", ()),
    Seam("the seedable generator moto draws ids from", "moto.moto_api._internal", "mock_random"),
    Seam(
        "draw request ids in one call",
        "moto.moto_api._internal.moto_random",
        "MotoRandom.get_random_string",
        ("self", "length", "include_digits", "lower_case"),
    ),
    Seam("memoize attribute names", "moto.sqs.models", "camelcase_to_underscores", ("argument",)),
    Seam("memoize action names", "moto.core.responses", "camelcase_to_underscores", ("argument",)),
    Seam("memoize each handler's method names", "moto.core.responses", "method_names_from_class", ("clazz",)),
    Seam(
        "look up a known account's backends without the global lock",
        "moto.core.base_backend",
        "BackendDict._create_account_specific_backend",
        ("self", "account_id"),
    ),
    Seam(
        "route loopback requests without a directory listing each",
        "moto.moto_server.werkzeug_app",
        "DomainDispatcherApplication.get_backend_for_host",
        ("self", "host"),
    ),
)


def resolve(seam: Seam) -> object:
    """Import and return the object a seam names, or raise MotoSeamError naming it."""
    try:
        obj: object = importlib.import_module(seam.module)
        for part in seam.attribute.split("."):
            if isinstance(obj, type) and not hasattr(obj, part):
                # An instance attribute: check the class's constructor assigns it.
                if f"self.{part}" not in inspect.getsource(obj.__init__):
                    raise AttributeError(f"{obj.__name__}.__init__ no longer sets {part}")
                return obj
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as err:
        raise MotoSeamError(_message(seam, f"it no longer exists ({err})")) from err
    if seam.parameters is not None:
        found = tuple(inspect.signature(obj).parameters)  # type: ignore[arg-type]
        if found[: len(seam.parameters)] != seam.parameters:
            raise MotoSeamError(_message(seam, f"its parameters changed from {seam.parameters} to {found}"))
    return obj


def _message(seam: Seam, problem: str) -> str:
    import moto

    return (
        f"moto {moto.__version__} moved the seam '{seam.why}' ({seam.where}): {problem}. "
        f"taskflow.offline is written against moto {PINNED_MOTO}; pin moto=={PINNED_MOTO} in "
        "requirements.txt or adapt taskflow/offline to the new internals."
    )


def check() -> None:
    """Resolve every seam; raise MotoSeamError for the first that moved."""
    for seam in SEAMS:
        resolve(seam)
