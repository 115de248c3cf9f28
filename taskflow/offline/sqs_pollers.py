"""SQS event source mappings offline: background pollers that behave like Lambda's.

moto triggers a mapping synchronously inside ``send_message``, one message per invoke, and ignores
``batchItemFailures``. Here each enabled mapping has poller threads that receive batches (``BatchSize``,
``MaximumBatchingWindowInSeconds``), invoke the function, and delete only what succeeded; failed messages
reappear after the visibility timeout, and moto's redrive moves them to the dead-letter queue after
``maxReceiveCount`` receives.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from taskflow.arns import Arn, is_sqs_queue
from taskflow.offline import seams
from taskflow.offline.errors import AwsError
from taskflow.offline.functions import Functions, Invocation, Throttled
from taskflow.offline.hooks import Hooks
from taskflow.offline.iam import Iam
from taskflow.offline.model import Function, Mapping, Message, Queue

DEFAULT_POLLERS = int(os.environ.get("TASKFLOW_OFFLINE_POLLERS", "2"))
IDLE_WAIT = 0.05
NO_RECORDS = "No records processed"  # Lambda's LastProcessingResult before the first batch
# What Lambda's poller calls with the function's role; CreateEventSourceMapping checks each.
POLLER_ACTIONS = ("ReceiveMessage", "DeleteMessage", "GetQueueAttributes")


def _message_attribute(value: dict[str, Any]) -> dict[str, Any]:
    """A message attribute in the event's lowerCamelCase shape: only the value its type carries (a binary one
    base64-encoded), and the list values Lambda always includes, empty."""
    shaped: dict[str, Any] = {}
    if value.get("StringValue") is not None:
        shaped["stringValue"] = value["StringValue"]
    if value.get("BinaryValue") is not None:
        shaped["binaryValue"] = value["BinaryValue"]
    return {**shaped, "stringListValues": [], "binaryListValues": [], "dataType": value.get("DataType")}


def record(message: Message, queue: Queue) -> dict[str, Any]:
    """One record of the event Lambda sends for an SQS batch."""
    attributes = {
        "ApproximateReceiveCount": str(message.receive_count),
        "SentTimestamp": str(message.sent_timestamp),
        "SenderId": message.sender_id,
        "ApproximateFirstReceiveTimestamp": str(message.first_receive_timestamp),
    }
    if queue.fifo:
        attributes.update(
            SequenceNumber=message.sequence_number,
            MessageGroupId=message.group_id,
            MessageDeduplicationId=message.deduplication_id,
        )
    return {
        "messageId": message.id,
        "receiptHandle": message.receipt_handle,
        "body": message.body,
        "attributes": attributes,
        "messageAttributes": {name: _message_attribute(v) for name, v in message.message_attributes.items()},
        "md5OfBody": message.body_md5,
        **({"md5OfMessageAttributes": message.attributes_md5} if message.attributes_md5 else {}),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue.arn,
        "awsRegion": queue.region,
    }


def failed_ids(payload: bytes, batch_ids: set[str]) -> set[str] | None:
    """The message ids a ReportBatchItemFailures response names, or None if the whole batch failed.

    As Lambda does: an empty or null list means all succeeded; a malformed response, or an
    identifier that is empty or not in the batch, fails the whole batch.
    """
    try:
        response = json.loads(payload or b"null")
    except ValueError:
        return None
    if response is None or not isinstance(response, dict):
        return set()
    failures = response.get("batchItemFailures")
    if failures is None:
        return set()
    if not isinstance(failures, list):
        return None
    ids = set()
    for item in failures:
        ident = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not ident or ident not in batch_ids:
            return None
        ids.add(ident)
    return ids


class SqsPollers:
    """Every SQS event source mapping's pollers, and what they last reported."""

    def __init__(
        self, functions: Functions, iam: Iam, hooks: Callable[[], Hooks], initial_pollers: int | None = None
    ) -> None:
        self.functions = functions
        self.iam = iam
        self._hooks = hooks
        self.initial_pollers = initial_pollers or DEFAULT_POLLERS  # without ScalingConfig.MaximumConcurrency
        self._mappings: dict[str, MappingPollers] = {}
        self._receive_locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()
        self.results: dict[str, str] = {}  # mapping UUID -> LastProcessingResult

    def creating(self, fn: Function, source_arn: str) -> None:
        """CreateEventSourceMapping checks the role's SQS permissions and the queue's visibility timeout."""
        queue = seams.sqs.queue(source_arn) if is_sqs_queue(source_arn) else None
        if queue is None:
            return
        for action in POLLER_ACTIONS:
            if not self.iam.role_allows(fn.role, f"sqs:{action}", source_arn):
                raise AwsError(
                    "InvalidParameterValueException",
                    f"The provided execution role does not have permissions to call {action} on SQS",
                )
        if queue.visibility_timeout < fn.timeout:
            raise AwsError(
                "InvalidParameterValueException",
                f"Queue visibility timeout: {queue.visibility_timeout} seconds is less than "
                f"Function timeout: {fn.timeout} seconds",
            )

    def created(self, mapping: Mapping) -> None:
        self.results[mapping.uuid] = NO_RECORDS
        self._mappings[mapping.uuid] = MappingPollers(self, mapping)

    def result(self, uuid: str) -> str | None:
        return self.results.get(uuid)

    def receive_lock(self, queue_arn: str) -> threading.Lock:
        """One receive at a time per queue: moto's receive is not thread-safe between pollers."""
        with self._locks_lock:
            return self._receive_locks.setdefault(queue_arn, threading.Lock())

    @property
    def busy(self) -> bool:
        return any(m.busy for m in list(self._mappings.values()))

    def describe_busy(self) -> list[str]:
        return [
            f"mapping {m.uuid} ({m.source_arn}) still has messages" for m in list(self._mappings.values()) if m.busy
        ]

    def stop(self) -> None:
        """Tell every poller to stop (each ends after its current pass; ``join`` waits for that)."""
        for mapping in list(self._mappings.values()):
            mapping.stop()

    def join(self, timeout: float = 5.0) -> None:
        for mapping in list(self._mappings.values()):
            mapping.join(timeout)
        self._mappings.clear()
        self._receive_locks.clear()
        self.results.clear()


class MappingPollers:
    """The poller threads of one event source mapping, reading its settings on every pass."""

    def __init__(self, pollers: SqsPollers, mapping: Mapping) -> None:
        self.pollers = pollers
        self.uuid = mapping.uuid
        self.region = mapping.region
        self.source_arn = mapping.source_arn
        self._stop = threading.Event()
        count = mapping.max_concurrency or pollers.initial_pollers
        self._threads = [
            threading.Thread(target=self._poll, daemon=True, name=f"esm-{self.uuid[:8]}-{i}") for i in range(count)
        ]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float) -> None:
        for thread in self._threads:
            thread.join(timeout)

    def _report(self, result: str) -> None:
        self.pollers.results[self.uuid] = result

    def _poll(self) -> None:
        while not self._stop.is_set():
            mapping = seams.awslambda.mapping(self.region, self.uuid)
            if mapping is None:
                return  # the mapping was deleted
            queue = seams.sqs.queue(mapping.source_arn)
            if not mapping.enabled or queue is None:
                self._stop.wait(IDLE_WAIT * 4)
                continue
            try:
                self._poll_once(mapping, queue)
            except Exception as exc:  # noqa: BLE001 - a poller keeps polling, as Lambda's does
                self._report(f"PROBLEM: {exc}")
                self._stop.wait(IDLE_WAIT * 4)

    def _receive_batch(self, mapping: Mapping, queue: Queue) -> list[Message]:
        """Up to BatchSize messages, waiting at most the batching window for more once one has arrived."""
        messages: list[Message] = []
        deadline = time.monotonic() + mapping.batching_window
        while len(messages) < mapping.batch_size:
            with self.pollers.receive_lock(queue.arn):
                got = seams.sqs.receive(
                    queue.region, queue.name, mapping.batch_size - len(messages), queue.visibility_timeout
                )
            messages += got
            if not got and (not messages or time.monotonic() >= deadline):
                break
            if not got:
                seams.sqs.wait_for_messages(
                    queue.region, queue.name, max(0.0, min(IDLE_WAIT, deadline - time.monotonic()))
                )
        return messages

    def _poll_once(self, mapping: Mapping, queue: Queue) -> None:
        fn = seams.awslambda.function(self.region, mapping.function_arn)
        if fn is None:
            self._report("PROBLEM: Function not found")
            self._stop.wait(1.0)
            return
        # Lambda polls with the function's role: without these permissions the mapping stalls.
        for action in POLLER_ACTIONS:
            if not self.pollers.iam.role_allows(fn.role, f"sqs:{action}", queue.arn):
                self._report(
                    f"PROBLEM: Function execution role does not have permission to call {action} on {queue.arn}"
                )
                self._stop.wait(1.0)
                return
        started = time.perf_counter()
        messages = self._receive_batch(mapping, queue)
        if not messages:
            seams.sqs.wait_for_messages(queue.region, queue.name, IDLE_WAIT)
            return
        event = json.dumps({"Records": [record(m, queue) for m in messages]})
        ids = {m.id for m in messages}
        hooks = self.pollers._hooks()
        failed: set[str] | None = None
        invoke_ms = 0.0
        for _ in range(hooks.deliveries(fn.name)):  # a duplicate delivery: deleted if either run processed it
            invoke_started = time.perf_counter()
            try:
                invocation = self.pollers.functions.invoke(fn, event)
            except Throttled:
                # No concurrency left: the batch is not deleted, so it returns after the visibility timeout and
                # this receive counts towards maxReceiveCount, as Lambda's poller does.
                self._report("PROBLEM: Function call failed: the function was throttled")
                return
            invoke_ms += (time.perf_counter() - invoke_started) * 1000
            outcome = self._failures(mapping, invocation, ids)
            if outcome is not None:
                failed = outcome if failed is None else failed & outcome
        if failed is None:
            self._report("PROBLEM: Function call failed")
        else:
            for message in messages:
                if message.id not in failed:
                    seams.sqs.delete(queue.region, queue.name, message.receipt_handle)
            self._report("OK")
        waits = [float(m.first_receive_timestamp - m.sent_timestamp) for m in messages]
        hooks.timing(
            "sqs.batch", (time.perf_counter() - started) * 1000, function=fn.name, invoke_ms=invoke_ms, waits_ms=waits
        )

    @staticmethod
    def _failures(mapping: Mapping, invocation: Invocation, ids: set[str]) -> set[str] | None:
        """The ids of the batch to leave in the queue, or None if the whole batch failed."""
        if invocation.function_error:
            return None  # the whole batch returns after the visibility timeout
        if "ReportBatchItemFailures" in mapping.response_types:
            return failed_ids(invocation.payload, ids)
        return set()

    @property
    def busy(self) -> bool:
        """True while the queue holds any message: visible, in flight, or waiting to reappear.

        A message stays in the queue until the poller deletes it after a successful invoke (whose
        logs and metrics are written by then), or until redrive moves it to the dead-letter queue.
        """
        mapping = seams.awslambda.mapping(self.region, self.uuid)
        if mapping is None or not mapping.enabled:
            return False
        source = Arn.parse(mapping.source_arn)
        return seams.sqs.holds_messages(source.region, source.resource)
