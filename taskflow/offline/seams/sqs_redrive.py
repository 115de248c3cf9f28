"""SQS dead-letter queue redrive (StartMessageMoveTask, ListMessageMoveTasks, CancelMessageMoveTask), which
moto 5.2.5 does not implement: added to moto's SQS API, moving messages through moto's own SQS backend.

As AWS documents (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_StartMessageMoveTask.html):
the source must be a dead-letter queue of some queue; without ``DestinationArn`` messages go back to their source
queue; one active task per source queue; the task runs in the background, and ``ListMessageMoveTasks`` reports
it (``RUNNING``, then ``COMPLETED``, ``CANCELLED`` or ``FAILED``) with ``ApproximateNumberOfMessagesMoved``,
most recent first, at most 10. A moved message is sent anew: a new message id, its receive count reset.
Where the dead-letter queue serves several source queues, AWS remembers each message's origin; moto does not,
so offline every message goes to the first of them (docs/offline-fidelity.md).
"""

from __future__ import annotations

from typing import Any

from moto.sqs.models import sqs_backends
from moto.sqs.responses import ActionResult

from taskflow.offline.account import ACCOUNT_ID
from taskflow.offline.errors import AwsError
from taskflow.offline.seams.core import moto_error
from taskflow.offline.seams.records import Installation, Patch, Read

_NOT_FOUND = AwsError(
    "ResourceNotFoundException",
    "One or more specified resources don't exist.",
    400,
    query_code="ResourceNotFoundException;Sender",
)


def _queue_name(arn: str | None) -> str | None:
    if not arn or not arn.startswith("arn:") or arn.count(":") != 5:
        return None
    return arn.rsplit(":", 1)[-1]


def _start(original: Any, inst: Installation) -> Any:
    def start_message_move_task(handler: Any) -> Any:
        backend = sqs_backends[ACCOUNT_ID][handler.region]
        source_arn = handler._get_param("SourceArn")
        destination_arn = handler._get_param("DestinationArn")
        rate = handler._get_param("MaxNumberOfMessagesPerSecond")
        source = _queue_name(source_arn)
        if source is None or source not in backend.queues:
            raise moto_error(_NOT_FOUND, "sqs")
        if destination_arn is None:
            origins = backend.list_dead_letter_source_queues(source)
            if not origins:
                raise moto_error(
                    AwsError(
                        "InvalidParameterValue",
                        "Source queue must be configured as a Dead Letter Queue.",
                        400,
                        query_code="InvalidParameterValue;Sender",
                    ),
                    "sqs",
                )
            destination = origins[0].name
        else:
            destination = _queue_name(destination_arn) or ""
            if destination not in backend.queues:
                raise moto_error(_NOT_FOUND, "sqs")
        if inst.handlers.move_task_running(source_arn):
            raise moto_error(
                AwsError(
                    "UnsupportedOperation",
                    "There is already a task running. Only one active task is allowed for each source queue arn at "
                    "a given time.",
                    400,
                    query_code="AWS.SimpleQueueService.UnsupportedOperation;Sender",
                ),
                "sqs",
            )
        visible = int(backend.get_queue(source).approximate_number_of_messages)

        def move() -> int:
            # A long poll (1 s): a short one samples servers, and under AWS weather can come back empty too soon.
            batch = backend.receive_message(source, 10, 1, 30, ["All"])
            for message in batch:
                backend.send_message(destination, message.body, message_attributes=message.message_attributes)
                backend.delete_message(source, message.receipt_handle)
            return len(batch)

        handle = inst.handlers.start_move_task(source_arn, destination_arn, int(rate) if rate else None, visible, move)
        return ActionResult({"TaskHandle": handle})

    return start_message_move_task


def _list(original: Any, inst: Installation) -> Any:
    def list_message_move_tasks(handler: Any) -> Any:
        backend = sqs_backends[ACCOUNT_ID][handler.region]
        source_arn = handler._get_param("SourceArn")
        if _queue_name(source_arn) not in backend.queues:
            raise moto_error(_NOT_FOUND, "sqs")
        limit = int(handler._get_param("MaxResults") or 1)
        return ActionResult({"Results": inst.handlers.move_tasks(source_arn, limit)})

    return list_message_move_tasks


def _cancel(original: Any, inst: Installation) -> Any:
    def cancel_message_move_task(handler: Any) -> Any:
        moved = inst.handlers.cancel_move_task(handler._get_param("TaskHandle"))
        if moved is None:
            raise moto_error(_NOT_FOUND, "sqs")
        return ActionResult({"ApproximateNumberOfMessagesMoved": moved})

    return cancel_message_move_task


_RESPONSE = ("moto.sqs.responses", "SQSResponse")
PATCHES = (
    Patch(*_RESPONSE, "start_message_move_task", "redrive a dead-letter queue", _start, adds=True),
    Patch(*_RESPONSE, "list_message_move_tasks", "report redrive tasks", _list, adds=True),
    Patch(*_RESPONSE, "cancel_message_move_task", "cancel a redrive task", _cancel, adds=True),
)
READS = (
    Read("moto.sqs.responses", "ActionResult", "an SQS response serialised from the operation's model"),
    Read("moto.sqs.responses", "SQSResponse._get_param", "a request parameter", ("self", "param_name")),
    Read("moto.sqs.responses", "SQSResponse.region", "a request's region"),
    Read(
        "moto.sqs.models",
        "SQSBackend.list_dead_letter_source_queues",
        "the queues a dead-letter queue serves",
        ("self", "queue_name"),
    ),
    Read("moto.sqs.models", "Queue.approximate_number_of_messages", "how many messages a task will move"),
)
