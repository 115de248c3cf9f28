"""DynamoDB's conditional writes are atomic offline too: of racing writers, exactly one wins.

https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/WorkingWithItems.html#WorkingWithItems.ConditionalUpdate
("Conditional writes": the condition is checked and the write made as one operation; "if multiple users attempt
to modify the same item", only the one whose condition still holds succeeds), and
https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/DynamoDBMapper.OptimisticLocking.html
(optimistic locking with a version number relies on it).

process_task stores each task with ``attribute_not_exists(task_id)`` so that a message delivered twice is stored
once; two workers handling the two deliveries at the same moment must not both succeed. The writers here call the
loopback server that function workers use, each request served in its own thread, with Python's thread switch
interval shortened so that a check-then-store race shows up in a few dozen rounds (without the seam's lock,
about one key in ten got two winners).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config

from taskflow.offline.account import REGION
from taskflow.offline.runtime import Runtime

WRITERS = 8
ROUNDS = 80


@pytest.fixture
def switch_often() -> Iterator[None]:
    """Let threads switch every microsecond, as a loaded machine does at its worst, then restore the interval."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(interval)


@pytest.fixture
def table(rt: Runtime) -> str:
    ddb = boto3.client("dynamodb", region_name=REGION)
    ddb.create_table(
        TableName="race",
        KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return "race"


def winners_per_round(rt: Runtime, write: Callable[[Any, int], None]) -> list[int]:
    """Run ``write(client, round)`` from every writer at once, ROUNDS times: how many succeeded in each round."""
    clients = [
        boto3.client(
            "dynamodb",
            region_name=REGION,
            endpoint_url=rt.endpoint_url,
            config=Config(retries={"mode": "standard", "max_attempts": 1}),
        )
        for _ in range(WRITERS)
    ]
    counts = []
    for number in range(ROUNDS):
        barrier, won = threading.Barrier(WRITERS), [False] * WRITERS

        def attempt(
            index: int, number: int = number, barrier: threading.Barrier = barrier, won: list[bool] = won
        ) -> None:
            client = clients[index]
            barrier.wait()
            try:
                write(client, number)
            except client.exceptions.ConditionalCheckFailedException:
                return
            won[index] = True

        threads = [threading.Thread(target=attempt, args=(i,)) for i in range(WRITERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        counts.append(sum(won))
    return counts


@pytest.mark.usefixtures("switch_often")
def test_of_racing_conditional_puts_of_a_new_key_exactly_one_succeeds(rt: Runtime, table: str) -> None:
    def put(client: Any, number: int) -> None:
        client.put_item(
            TableName=table, Item={"k": {"S": f"task-{number}"}}, ConditionExpression="attribute_not_exists(k)"
        )

    counts = winners_per_round(rt, put)
    assert counts == [1] * ROUNDS, f"rounds with other than one winner: {[c for c in counts if c != 1]}"


@pytest.mark.usefixtures("switch_often")
def test_of_racing_version_checked_updates_exactly_one_succeeds(rt: Runtime, table: str) -> None:
    ddb = boto3.client("dynamodb", region_name=REGION)
    ddb.put_item(TableName=table, Item={"k": {"S": "counter"}, "version": {"N": "0"}})

    def bump(client: Any, number: int) -> None:
        client.update_item(
            TableName=table,
            Key={"k": {"S": "counter"}},
            UpdateExpression="SET version = :next",
            ConditionExpression="version = :seen",
            ExpressionAttributeValues={":seen": {"N": str(number)}, ":next": {"N": str(number + 1)}},
        )

    counts = winners_per_round(rt, bump)
    assert counts == [1] * ROUNDS, f"rounds with other than one winner: {[c for c in counts if c != 1]}"
    version = ddb.get_item(TableName=table, Key={"k": {"S": "counter"}})["Item"]["version"]["N"]
    assert version == str(ROUNDS)
