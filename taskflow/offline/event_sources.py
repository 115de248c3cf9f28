"""SQS event source mappings offline: background pollers that behave like Lambda's.

moto triggers a mapping synchronously inside ``send_message``, one message per invoke, and ignores
``batchItemFailures``. Here each enabled mapping has poller threads that receive batches
(``BatchSize``, ``MaximumBatchingWindowInSeconds``), invoke the function, and delete only what
succeeded; failed messages reappear after the visibility timeout and moto's redrive moves them to
the dead-letter queue after ``maxReceiveCount`` receives.
"""

from __future__ import annotations

import json
import os
import threading
import time
from typing import TYPE_CHECKING, Any

from moto.sqs.models import sqs_backends

from taskflow.offline import faults, iam

if TYPE_CHECKING:
    from taskflow.offline.functions import FunctionRunner

DEFAULT_POLLERS = int(os.environ.get("TASKFLOW_OFFLINE_POLLERS", "2"))
IDLE_WAIT = 0.05
NO_RECORDS = "No records processed"  # Lambda's LastProcessingResult before the first batch
_receive_locks: dict[str, threading.Lock] = {}


def _receive_lock(queue_arn: str) -> threading.Lock:
    """One receive at a time per queue: moto's receive is not thread-safe between pollers."""
    return _receive_locks.setdefault(queue_arn, threading.Lock())


def _record(message: Any, queue: Any, region: str) -> dict[str, Any]:
    attributes = {
        "ApproximateReceiveCount": str(message.approximate_receive_count),
        "SentTimestamp": str(message.sent_timestamp),
        "SenderId": str(message.sender_id),
        "ApproximateFirstReceiveTimestamp": str(message.approximate_first_receive_timestamp),
    }
    if queue.fifo_queue:
        attributes.update(MessageGroupId=message.group_id, MessageDeduplicationId=message.deduplication_id)
    message_attributes = {
        name: {
            "stringValue": value.get("StringValue"),
            "binaryValue": value.get("BinaryValue"),
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": value.get("DataType"),
        }
        for name, value in (message.message_attributes or {}).items()
    }
    return {
        "messageId": message.id,
        "receiptHandle": message.receipt_handle,
        "body": message.body,
        "attributes": attributes,
        "messageAttributes": message_attributes,
        "md5OfBody": message.body_md5,
        **({"md5OfMessageAttributes": message.attribute_md5} if message.message_attributes else {}),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue.queue_arn,
        "awsRegion": region,
    }


def with_last_processing_result(original: Any) -> Any:
    """Wrap ``EventSourceMapping.get_configuration``: report what the poller last saw (moto says None)."""

    def get_configuration(esm: Any) -> dict[str, Any]:
        config: dict[str, Any] = original(esm)
        result = getattr(esm, "last_processing_result", None)
        if result:
            config["LastProcessingResult"] = result
        return config

    get_configuration.__wrapped__ = original  # type: ignore[attr-defined]
    return get_configuration


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


class SqsMapping:
    """The pollers of one event source mapping, reading its settings from moto on every loop."""

    def __init__(self, uuid: str, lambda_backend: Any, runner: FunctionRunner) -> None:
        self.uuid = uuid
        self.backend = lambda_backend
        self.runner = runner
        self._stop = threading.Event()
        esm = lambda_backend._event_source_mappings[uuid]
        esm.last_processing_result = NO_RECORDS
        scaling = esm.scaling_config or {}
        count = int(scaling.get("MaximumConcurrency") or DEFAULT_POLLERS)
        self._threads = [
            threading.Thread(target=self._poll, daemon=True, name=f"esm-{uuid[:8]}-{i}") for i in range(count)
        ]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()

    @property
    def esm(self) -> Any:
        return self.backend._event_source_mappings.get(self.uuid)

    def _queue(self, esm: Any) -> Any:
        region, name = esm.event_source_arn.split(":")[3], esm.event_source_arn.split(":")[5]
        return sqs_backends[iam.ACCOUNT][region].queues.get(name)

    def _poll(self) -> None:
        while not self._stop.is_set():
            esm = self.esm
            if esm is None:
                return  # the mapping was deleted
            queue = self._queue(esm)
            if not esm.enabled or queue is None:
                self._stop.wait(IDLE_WAIT * 4)
                continue
            try:
                self._poll_once(esm, queue)
            except Exception as exc:  # noqa: BLE001 - a poller keeps polling, as Lambda's does
                esm.last_processing_result = f"PROBLEM: {exc}"
                self._stop.wait(IDLE_WAIT * 4)

    def _poll_once(self, esm: Any, queue: Any) -> None:
        fn = self.backend.get_function(esm.function_arn)
        region = queue.region
        # Lambda polls with the function's role: without these permissions the mapping stalls.
        for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"):
            if not iam.role_allows(fn.role, action, queue.queue_arn):
                esm.last_processing_result = (
                    f"PROBLEM: Function execution role does not have permission to call {action.split(':')[1]} "
                    f"on {queue.queue_arn}"
                )
                self._stop.wait(1.0)
                return
        sqs = sqs_backends[iam.ACCOUNT][region]
        batch_size = int(esm.batch_size or 10)
        window = float(esm.max_batch_window or 0)
        messages: list[Any] = []
        deadline = time.monotonic() + window
        while len(messages) < batch_size:
            with _receive_lock(queue.queue_arn):
                got = sqs.receive_message(
                    queue.name, batch_size - len(messages), 0, queue.visibility_timeout, message_attribute_names=["All"]
                )
            messages += got
            if not got and (not messages or time.monotonic() >= deadline):
                break
            if not got:
                queue.wait_for_messages(max(0.0, min(IDLE_WAIT, deadline - time.monotonic())))
        if not messages:
            queue.wait_for_messages(IDLE_WAIT)
            return
        records = [_record(m, queue, region) for m in messages]
        event = json.dumps({"Records": records})
        ids = {m.id for m in messages}
        plan = faults.active()
        deliveries = 2 if plan is not None and plan.duplicate(fn.function_name) else 1
        failed: set[str] | None = None
        for _ in range(deliveries):  # a duplicate delivery: a message is deleted if either run processed it
            outcome = self._failures(esm, self.runner.invoke(fn, event), ids)
            if outcome is not None:
                failed = outcome if failed is None else failed & outcome
        if failed is None:
            esm.last_processing_result = "PROBLEM: Function call failed"
            return
        for message in messages:
            if message.id not in failed:
                sqs.delete_message(queue.name, message.receipt_handle)
        esm.last_processing_result = "OK"

    @staticmethod
    def _failures(esm: Any, invocation: Any, ids: set[str]) -> set[str] | None:
        """The ids of the batch to leave in the queue, or None if the whole batch failed."""
        if invocation.function_error:
            return None  # the whole batch returns after the visibility timeout
        if "ReportBatchItemFailures" in (esm.function_response_types or []):
            return failed_ids(invocation.payload, ids)
        return set()

    @property
    def busy(self) -> bool:
        """True while the queue holds any message: visible, in flight, or waiting to reappear.

        A message stays in the queue until the poller deletes it after a successful invoke (whose
        logs and metrics are written by then), or until redrive moves it to the dead-letter queue.
        """
        esm = self.esm
        if esm is None or not esm.enabled:
            return False
        queue = self._queue(esm)
        return queue is not None and bool(queue._messages)
