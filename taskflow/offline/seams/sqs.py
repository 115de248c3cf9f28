"""moto's SQS: counted sends, receives and deletes (for AWS/SQS metrics), deletes serialised with sends,
faster equivalents of its per-message passes, and views of queues and received messages.

The speed-ups give the same results and errors as moto's own code, with less work (profiled in
``benchmarks/pipeline.py``): moto asks every message "visible? delayed?", each answer reading the clock through
two datetime conversions, and ``send_message`` computes every queue attribute (three such passes) just to read
one (~40 ms per send at a depth of 1,000); here one clock read per pass. A receipt handle is 185 calls to
``random.choice``: here one. Deleting a message scanned the queue twice; here once.
"""

from __future__ import annotations

import base64
import functools
import itertools
import json
import string
from typing import Any

from moto.core.utils import unix_time, unix_time_millis
from moto.moto_api._internal import mock_random
from moto.sqs.exceptions import ReceiptHandleIsInvalid
from moto.sqs.models import Queue as MotoQueue
from moto.sqs.models import sqs_backends

from taskflow.arns import Arn
from taskflow.offline.account import ACCOUNT_ID
from taskflow.offline.errors import AwsError
from taskflow.offline.model import Message, Queue
from taskflow.offline.seams.core import moto_error
from taskflow.offline.seams.records import Installation, Patch, Read

RECEIPT_HANDLE_LENGTH = 185  # as moto.sqs.utils.generate_receipt_handle
# FIFO sequence numbers: 20 digits, as SQS's, increasing with every message sent (moto draws random ones).
_SEQUENCE = itertools.count(10_000_000_000_000_000_000)


def _example_queue() -> Any:
    """A queue built for the seam check: moto sets its attributes under names computed from the API's."""
    return MotoQueue("seam-check", region="us-east-1", account_id=ACCOUNT_ID)


def _queue(region: str, name: str) -> Any:
    return sqs_backends[ACCOUNT_ID][region].queues.get(name)


def queue(arn: str) -> Queue | None:
    """The queue an SQS ARN names, or None if it does not exist."""
    parsed = Arn.parse(arn)
    found = _queue(parsed.region, parsed.resource)
    if found is None:
        return None
    return Queue(found.name, found.region, found.queue_arn, int(found.visibility_timeout), bool(found.fifo_queue))


def source_queues(dlq_arn: str) -> list[str]:
    """The ARNs of the queues whose RedrivePolicy names this dead-letter queue ([] if it does not exist)."""
    parsed = Arn.parse(dlq_arn)
    backend = sqs_backends[ACCOUNT_ID][parsed.region]
    if parsed.resource not in backend.queues:
        return []
    return [str(q.queue_arn) for q in backend.list_dead_letter_source_queues(parsed.resource)]


def _attribute_view(value: dict[str, Any]) -> dict[str, Any]:
    """A message attribute as SendMessage took it, with a binary value base64-encoded (moto keeps the bytes)."""
    view = dict(value)
    binary = view.get("BinaryValue")
    if isinstance(binary, (bytes, bytearray)):
        view["BinaryValue"] = base64.b64encode(binary).decode()
    return view


def _message_view(message: Any) -> Message:
    return Message(
        id=message.id,
        receipt_handle=message.receipt_handle,
        body=message.body,
        body_md5=message.body_md5,
        attributes_md5=message.attribute_md5 if message.message_attributes else None,
        receive_count=int(message.approximate_receive_count),
        sent_timestamp=int(message.sent_timestamp),
        sender_id=str(message.sender_id),
        first_receive_timestamp=int(message.approximate_first_receive_timestamp),
        group_id=message.group_id,
        deduplication_id=message.deduplication_id,
        message_attributes={k: _attribute_view(v) for k, v in (message.message_attributes or {}).items()},
        sequence_number=message.sequence_number,
    )


def receive(region: str, name: str, count: int, visibility_timeout: int) -> list[Message]:
    """Receive up to ``count`` visible messages (no wait), with all their attributes."""
    got = sqs_backends[ACCOUNT_ID][region].receive_message(
        name, count, 0, visibility_timeout, message_attribute_names=["All"], taskflow_poller=True
    )
    return [_message_view(m) for m in got]


def delete(region: str, name: str, receipt_handle: str) -> None:
    sqs_backends[ACCOUNT_ID][region].delete_message(name, receipt_handle)


def wait_for_messages(region: str, name: str, timeout: float) -> None:
    """Block until the queue has a visible message, or ``timeout`` seconds pass."""
    found = _queue(region, name)
    if found is not None:
        found.wait_for_messages(timeout)


def holds_messages(region: str, name: str) -> bool:
    """True while the queue holds any message: visible, in flight, or delayed."""
    found = _queue(region, name)
    return found is not None and bool(found._messages)


def visible_counts(region: str) -> dict[str, int]:
    """Visible messages per queue of the region (ApproximateNumberOfMessagesVisible)."""
    return {q.name: len(q.messages) for q in list(sqs_backends[ACCOUNT_ID][region].queues.values())}


# --- patches -----------------------------------------------------------------------------------------------


def _counted_send(original: Any, inst: Installation) -> Any:
    def send_message(backend: Any, queue_name: str, message_body: str, *args: Any, **kwargs: Any) -> Any:
        message = original(backend, queue_name, message_body, *args, **kwargs)
        inst.handlers.sqs_counted(backend.region_name, queue_name, "NumberOfMessagesSent", 1)
        return message

    return send_message


def _sampled_counted_receive(original: Any, inst: Installation) -> Any:
    """A client's short poll (no WaitTimeSeconds) asks the weather how many of the visible messages the servers
    it samples hold; Lambda's poller (``taskflow_poller``) long-polls, so it sees them all. Both are counted."""

    def receive_message(
        backend: Any,
        queue_name: str,
        count: int,
        wait_seconds_timeout: int,
        visibility_timeout: int,
        *args: Any,
        taskflow_poller: bool = False,
        **kwargs: Any,
    ) -> Any:
        if not taskflow_poller and not wait_seconds_timeout:
            visible = len(backend.get_queue(queue_name).messages)
            count = inst.handlers.short_poll(backend.region_name, queue_name, int(count), visible)
            if count <= 0:
                return []
        messages = original(backend, queue_name, count, wait_seconds_timeout, visibility_timeout, *args, **kwargs)
        if messages:
            inst.handlers.sqs_counted(backend.region_name, queue_name, "NumberOfMessagesReceived", len(messages))
        return messages

    return receive_message


APPROXIMATE = (
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
)


def _lagging_counts(original: Any, inst: Installation) -> Any:
    """GetQueueAttributes' approximate counts, as the weather says a client sees them (they may lag)."""

    def get_queue_attributes(backend: Any, queue_name: str, attribute_names: list[str]) -> dict[str, Any]:
        attributes: dict[str, Any] = original(backend, queue_name, attribute_names)
        counts = {name: attributes[name] for name in APPROXIMATE if name in attributes}
        if counts:
            attributes.update(inst.handlers.queue_counts(backend.region_name, queue_name, counts))
        return attributes

    return get_queue_attributes


def _sequenced_add(original: Any, inst: Installation) -> Any:
    """SQS gives each FIFO message a sequence number that increases within its group; moto draws a random one,
    and none at all under content-based deduplication. Numbered before the message is visible to a receive."""

    def add_message(q: Any, message: Any) -> None:
        if q.fifo_queue:
            message.sequence_number = str(next(_SEQUENCE))
        original(q, message)

    return add_message


def _remembered_create(original: Any, inst: Installation) -> Any:
    def create_queue(backend: Any, name: str, tags: Any = None, **kwargs: Any) -> Any:
        if name not in backend.queues:
            try:
                inst.handlers.creating_queue(backend.region_name, name)
            except AwsError as err:
                raise moto_error(err, "sqs") from None
        return original(backend, name, tags, **kwargs)

    return create_queue


def _remembered_delete(original: Any, inst: Installation) -> Any:
    def delete_queue(backend: Any, queue_name: str) -> None:
        original(backend, queue_name)
        inst.handlers.queue_deleted(backend.region_name, queue_name)

    return delete_queue


def _locked_counted_delete(original: Any, inst: Installation) -> Any:
    """moto rebuilds the queue's message list without its lock: a message sent (or deleted by another poller)
    at the same moment would be lost (or come back). Hold the lock send uses."""

    def delete_message(backend: Any, queue_name: str, receipt_handle: str) -> None:
        with backend.get_queue(queue_name)._messages_lock:
            original(backend, queue_name, receipt_handle)
        inst.handlers.sqs_counted(backend.region_name, queue_name, "NumberOfMessagesDeleted", 1)

    return delete_message


def _retention_in_constant_time(original: Any, inst: Installation) -> Any:
    """moto recomputes every queue attribute, a pass over the whole queue, for each message received:
    receiving 10 from a backlog of 1,000 took ~100 ms. Same rule, O(1)."""

    def is_message_valid_based_on_retention_period(backend: Any, queue_name: str, message: Any) -> bool:
        period = getattr(backend.get_queue(queue_name), "message_retention_period", None)
        if period is None:
            return bool(original(backend, queue_name, message))
        return int(period) + message.sent_timestamp / 1000 > unix_time()

    return is_message_valid_based_on_retention_period


def _visible(original: Any, inst: Installation) -> Any:
    def messages(q: Any) -> list[Any]:
        now = unix_time_millis()
        return [m for m in q._messages if now > m.visible_at and not now < m.delayed_until]

    return property(messages)


def _not_visible(original: Any, inst: Installation) -> Any:
    def approximate_number_of_messages_not_visible(q: Any) -> int:
        now = unix_time_millis()
        return sum(1 for m in q._messages if not now > m.visible_at)

    return property(approximate_number_of_messages_not_visible)


def _delayed(original: Any, inst: Installation) -> Any:
    def approximate_number_of_messages_delayed(q: Any) -> int:
        now = unix_time_millis()
        return sum(1 for m in q._messages if now < m.delayed_until)

    return property(approximate_number_of_messages_delayed)


def _delete_in_one_pass(original: Any, inst: Installation) -> Any:
    def delete_message(q: Any, receipt_handle: str) -> None:
        if receipt_handle in q.deleted_messages:
            return  # already deleted: deleting again succeeds, as on SQS
        messages = q._messages
        index = next(
            (
                i
                for i, m in enumerate(messages)
                if m.receipt_handle == receipt_handle or receipt_handle in m._old_receipt_handles
            ),
            None,
        )
        if index is None:
            raise ReceiptHandleIsInvalid()
        message = messages[index]
        q.pending_messages.discard(message)
        q.deleted_messages.update(message.all_receipt_handles)
        q._messages = messages[:index] + messages[index + 1 :]  # a new list, as moto builds one

    return delete_message


def _receipt_handle(original: Any, inst: Installation) -> Any:
    def generate_receipt_handle() -> str:
        return "".join(mock_random.choices(string.ascii_lowercase, k=RECEIPT_HANDLE_LENGTH))

    return generate_receipt_handle


def _memoized(original: Any, inst: Installation) -> Any:
    return functools.lru_cache(maxsize=4096)(original)


def _redrive_allowed(original: Any, inst: Installation) -> Any:
    """A queue may name a dead-letter queue only if that queue's RedriveAllowPolicy lets it: ``allowAll`` (the
    default), ``denyAll``, or ``byQueue`` with the source's ARN in ``sourceQueueArns``
    (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SetQueueAttributes.html).
    moto stores the attribute and ignores it, so a learner's queue could redrive into a classmate's."""

    def setup_dlq(queue: Any, policy: Any) -> None:
        before = (vars(queue).get("redrive_policy"), vars(queue).get("dead_letter_queue"))  # unset on creation
        original(queue, policy)
        target = queue.dead_letter_queue
        allow = _json_attribute(vars(target).get("redrive_allow_policy")) if target is not None else {}
        permission = allow.get("redrivePermission", "allowAll")
        if permission == "allowAll" or (
            permission == "byQueue" and queue.queue_arn in (allow.get("sourceQueueArns") or [])
        ):
            return
        queue.redrive_policy, queue.dead_letter_queue = before
        raise moto_error(
            AwsError(
                "InvalidParameterValue",
                f"Value {json.dumps(policy) if not isinstance(policy, str) else policy} for parameter RedrivePolicy "
                f"is invalid. Reason: the dead-letter queue {target.queue_arn} does not allow {queue.queue_arn} "
                "as a source queue (its RedriveAllowPolicy).",
                query_code="InvalidParameterValue;Sender",
            ),
            "sqs",
        )

    return setup_dlq


def _json_attribute(value: Any) -> dict[str, Any]:
    """A queue attribute holding a JSON object ({} when unset or not an object)."""
    if isinstance(value, dict):
        return value
    try:
        parsed = json.loads(value) if isinstance(value, str) and value else {}
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


_BACKEND = ("moto.sqs.models", "SQSBackend")
_QUEUE = ("moto.sqs.models", "Queue")

PATCHES = (
    Patch(
        *_BACKEND,
        "send_message",
        "count sent messages",
        _counted_send,
        ("self", "queue_name", "message_body"),
    ),
    Patch(
        *_BACKEND,
        "receive_message",
        "sample short polls, and count received messages",
        _sampled_counted_receive,
        ("self", "queue_name", "count", "wait_seconds_timeout", "visibility_timeout", "message_attribute_names"),
    ),
    Patch(
        *_BACKEND,
        "delete_message",
        "serialize deletes with sends, and count them",
        _locked_counted_delete,
        ("self", "queue_name", "receipt_handle"),
    ),
    Patch(
        *_BACKEND,
        "is_message_valid_based_on_retention_period",
        "receive without a pass over the queue per message",
        _retention_in_constant_time,
        ("self", "queue_name", "message"),
    ),
    Patch(
        *_BACKEND,
        "get_queue_attributes",
        "approximate counts that may lag",
        _lagging_counts,
        ("self", "queue_name", "attribute_names"),
    ),
    Patch(*_BACKEND, "create_queue", "keep a deleted queue's name taken", _remembered_create, ("self", "name", "tags")),
    Patch(*_BACKEND, "delete_queue", "remember when a queue was deleted", _remembered_delete, ("self", "queue_name")),
    Patch(*_QUEUE, "messages", "count visible messages with one clock read", _visible, ("self",)),
    Patch(
        *_QUEUE,
        "approximate_number_of_messages_not_visible",
        "count in-flight messages with one clock read",
        _not_visible,
        ("self",),
    ),
    Patch(
        *_QUEUE,
        "approximate_number_of_messages_delayed",
        "count delayed messages with one clock read",
        _delayed,
        ("self",),
    ),
    Patch(*_QUEUE, "add_message", "number FIFO messages in order", _sequenced_add, ("self", "message")),
    Patch(
        *_QUEUE, "_setup_dlq", "honour a dead-letter queue's RedriveAllowPolicy", _redrive_allowed, ("self", "policy")
    ),
    Patch(*_QUEUE, "delete_message", "delete a message in one pass", _delete_in_one_pass, ("self", "receipt_handle")),
    Patch("moto.sqs.models", None, "generate_receipt_handle", "draw receipt handles in one call", _receipt_handle, ()),
    Patch("moto.sqs.models", None, "camelcase_to_underscores", "memoize attribute names", _memoized, ("argument",)),
)

READS = (
    Read("moto.sqs.models", "sqs_backends", "the backends of SQS"),
    Read("moto.sqs.models", "SQSBackend.queues", "the queues of a region"),
    Read("moto.sqs.models", "SQSBackend.region_name", "a backend's region"),
    Read("moto.sqs.models", "SQSBackend.get_queue", "find a queue", ("self", "queue_name")),
    Read("moto.sqs.models", "Queue.visibility_timeout", "a queue's visibility timeout", example=_example_queue),
    Read("moto.sqs.models", "Queue.message_retention_period", "a queue's retention period", example=_example_queue),
    *(
        Read("moto.sqs.models", f"Queue.{name}", why)
        for name, why in (
            ("name", "a queue's name"),
            ("region", "a queue's region"),
            ("queue_arn", "a queue's ARN"),
            ("redrive_policy", "a queue's redrive policy"),
            ("dead_letter_queue", "a queue's dead-letter queue"),
            ("fifo_queue", "is a queue FIFO"),
            ("_messages", "the messages of a queue"),
            ("_messages_lock", "the lock sends hold"),
            ("deleted_messages", "receipt handles already deleted"),
            ("pending_messages", "messages received and not yet deleted"),
        )
    ),
    Read("moto.sqs.models", "Queue.wait_for_messages", "wake pollers when a message arrives", ("self", "timeout")),
    *(
        Read("moto.sqs.models", f"Message.{name}", why)
        for name, why in (
            ("id", "a message's id"),
            ("receipt_handle", "a message's current receipt handle"),
            ("_old_receipt_handles", "a message's earlier receipt handles"),
            ("all_receipt_handles", "every receipt handle of a message"),
            ("body", "a message's body"),
            ("body_md5", "a message body's MD5"),
            ("attribute_md5", "a message's attributes' MD5"),
            ("message_attributes", "a message's attributes"),
            ("approximate_receive_count", "how often a message was received"),
            ("sent_timestamp", "when a message was sent"),
            ("sender_id", "who sent a message"),
            ("approximate_first_receive_timestamp", "when a message was first received"),
            ("group_id", "a FIFO message's group"),
            ("deduplication_id", "a FIFO message's deduplication id"),
            ("sequence_number", "a FIFO message's sequence number"),
            ("visible_at", "when a message becomes visible again"),
            ("delayed_until", "until when a message is delayed"),
        )
    ),
    Read("moto.sqs.exceptions", "ReceiptHandleIsInvalid", "an unknown receipt handle"),
    Read("moto.core.utils", "unix_time", "the clock SQS messages are stamped with"),
    Read("moto.core.utils", "unix_time_millis", "the clock message visibility is measured with"),
    Read("moto.moto_api._internal", "mock_random", "the seedable generator moto draws ids from"),
)
