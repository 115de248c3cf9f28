"""Thousands of tasks through the offline pipeline while things go wrong: nothing lost, nothing stored twice.

The workshop's own stack (real zips and policies, ``tests/support/stack.py``) takes tasks through
API Gateway -> create_task -> SQS -> process_task -> DynamoDB while ``taskflow.offline.faults`` injects:

* transient DynamoDB failures: ~10% of process_task's PutItem calls answer
  ProvisionedThroughputExceededException (at most once per task);
* a handler crash mid-batch: process_task's worker is killed after its third log line of a batch;
* duplicate deliveries: some batches are delivered twice by the mapping, and some tasks are sent to the
  queue twice (as SQS may deliver a message more than once);
* poison messages sent straight to the queue, which process_task can never accept.

Botocore's retries are off for process_task (``AWS_MAX_ATTEMPTS=1`` in its environment). With the default
three attempts in standard mode, a 10% throttle would almost always be absorbed inside the invocation
(0.1% of writes would fail three times), so the path under test, batchItemFailures -> redelivery after the
visibility timeout -> a conditional put that never overwrites, would hardly run. Each injected failure
therefore reaches the handler, and a task is failed at most once so that with ``maxReceiveCount`` 5 a
valid task never reaches the dead-letter queue (one injected failure, one crash and a timeout at worst).

Afterwards: the table holds every valid task exactly once (and process_task never logged "task processed"
twice for one task: no conditional put succeeded twice), the dead-letter queue holds exactly the poison
messages, and the queue is empty.
The fast size runs in ``make test``; the larger one only with ``-m slow`` (``make bench``).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest

from taskflow import offline
from taskflow.offline import faults
from tests.support.stack import Stack

SEED = 20240607
CLIENTS = 8


@pytest.fixture(scope="module")
def offline_runtime() -> Iterator[None]:
    """The offline runtime for this module, with credentials that can only reach it."""
    with pytest.MonkeyPatch.context() as mp:
        for key in [k for k in os.environ if k.startswith("AWS_ENDPOINT_URL")] + ["AWS_PROFILE", "AWS_SESSION_TOKEN"]:
            mp.delenv(key, raising=False)
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        with offline.running():
            yield


def message(title: str) -> dict[str, Any]:
    """A valid task as create_task would queue it."""
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {
        "task_id": str(uuid.uuid4()),
        "title": title,
        "description": "sent straight to the queue",
        "priority": "normal",
        "created_at": now,
        "request_id": str(uuid.uuid4()),
        "schema_version": 1,
    }


def poison(index: int) -> str:
    """A message process_task can never accept, of five kinds."""
    kind = index % 5
    if kind == 0:
        return f"poison {index}: not JSON at all"
    if kind == 1:
        return json.dumps(["poison", index])
    body = message(f"poison {index}")
    if kind == 2:
        body["schema_version"] = 2
    elif kind == 3:
        body["priority"] = "urgent"
    else:
        body["task_id"] = f"poison-{index}"
    return json.dumps(body)


def drain_dlq(stack: Stack) -> dict[str, str]:
    """Every message in the dead-letter queue: message id -> body."""
    sqs, found = stack.client("sqs"), {}
    while True:
        batch = sqs.receive_message(QueueUrl=stack.dlq_url, MaxNumberOfMessages=10, VisibilityTimeout=300)
        if not batch.get("Messages"):
            return found
        found.update({m["MessageId"]: m["Body"] for m in batch["Messages"]})


def run_load(learner: str, api_tasks: int, direct_tasks: int, sent_twice: int, poisons: int, timeout: float) -> None:
    stack = Stack.day3(
        learner, visibility_timeout=2, max_receive_count=5, function_timeout=2, process_env={"AWS_MAX_ATTEMPTS": "1"}
    )
    process = stack.names.process_function
    direct = [message(f"direct {i}") for i in range(direct_tasks)]
    started = time.monotonic()
    with faults.injected(seed=SEED) as plan:
        plan.fail_writes(0.10, functions=(process,), tables=(stack.names.table,), max_per_item=1)
        plan.crash(process, times=1, after_logs=3)
        plan.duplicate_batches(process, times=max(1, api_tasks // 200), every=7)

        poison_ids = {stack.send_raw(body): body for body in map(poison, range(poisons))}
        for index, task in enumerate(direct):
            stack.send_raw(json.dumps(task))
            if index < sent_twice:
                stack.send_raw(json.dumps(task))  # the same task twice: SQS's at-least-once delivery

        def post(index: int) -> str:
            response = stack.post({"title": f"Load task {index}", "priority": ("low", "normal", "high")[index % 3]})
            assert response.status_code == 202, response.text
            return str(response.json()["task_id"])

        with ThreadPoolExecutor(max_workers=CLIENTS) as clients:
            accepted = list(clients.map(post, range(api_tasks)))
        offline.wait_idle(timeout)
    elapsed = time.monotonic() - started

    valid = set(accepted) | {t["task_id"] for t in direct}
    items = stack.items()
    stored = Counter(item["task_id"] for item in items)
    processed = Counter(
        r["task_id"] for r in stack.json_logs(process) if r["message"] == "task processed" and "task_id" in r
    )
    dead = drain_dlq(stack)
    retried = sum(1 for item in items if item["attempts"] > 1)
    unlogged = len(valid - set(processed))
    duplicates = stack.metric_sum("TasksDuplicate", process)
    print(
        f"\nload and faults ({learner}): {len(valid)} valid tasks ({api_tasks} through the API, {direct_tasks} "
        f"sent to the queue, {sent_twice} of them twice), {poisons} poison messages, in {elapsed:.1f} s; "
        f"injected: {plan.counts['write_failures']} failed writes of {plan.counts['write_calls']}, "
        f"{plan.counts['crashes']} crash, {plan.counts['duplicate_batches']} duplicate batches; "
        f"stored {len(items)} items ({retried} on a redelivery, {unlogged} by the crashed invocation without a "
        f"log line), {int(duplicates)} duplicate deliveries recognised, {len(dead)} messages in the dead-letter queue"
    )

    assert len(set(accepted)) == api_tasks, "every POST got its own task id"
    assert set(stored) == valid, "every valid task is stored, and nothing else"
    assert max(stored.values()) == 1 and len(items) == len(valid)
    # No task was written twice. The crashed invocation may have stored a task and died before logging it
    # (its put_item reached DynamoDB, the worker was killed before reading the answer): at most its batch.
    assert max(processed.values()) == 1 and set(processed) <= valid, "no task was ever written twice"
    assert unlogged <= 10
    assert dead == poison_ids, "the dead-letter queue holds exactly the poison messages"
    assert stack.depth() == 0
    # The faults happened, and the recovery paths ran.
    assert plan.counts["crashes"] == 1
    assert plan.counts["duplicate_batches"] == max(1, api_tasks // 200)
    assert 0.05 < plan.counts["write_failures"] / len(valid) < 0.15
    # A throttled task is stored on a later delivery, or by the second run of a duplicated batch (10 at most each).
    assert retried >= plan.counts["write_failures"] - 10 * plan.counts["duplicate_batches"] > 0
    assert duplicates >= sent_twice, "a task delivered twice is recognised, never overwritten"


@pytest.mark.usefixtures("offline_runtime")
def test_two_thousand_tasks_with_faults_lose_nothing_and_store_nothing_twice() -> None:
    run_load("load", api_tasks=1900, direct_tasks=100, sent_twice=50, poisons=5, timeout=120)


@pytest.mark.slow
@pytest.mark.usefixtures("offline_runtime")
def test_ten_thousand_tasks_with_faults(request: pytest.FixtureRequest) -> None:
    if "slow" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("the larger load runs with -m slow (make bench)")
    run_load("load-xl", api_tasks=9500, direct_tasks=500, sent_twice=250, poisons=25, timeout=900)
