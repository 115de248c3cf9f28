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

from taskflow import offline
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


@pytest.mark.parametrize("spare", [-2, -1, 0, 1, 2])
def test_an_item_is_refused_over_the_size_limit_exactly_where_moto_refuses_it(spare: int) -> None:
    """The item size check, made once per item offline, refuses exactly the items moto's per-attribute check does.

    DynamoDB's maximum item size counts attribute names and values together (ServiceQuotas.html#limits-items).
    """
    from moto.dynamodb.exceptions import ItemSizeTooLarge
    from moto.dynamodb.models.dynamo_type import DynamoType, Item, LimitedSizeDict

    from taskflow.offline.seams.dynamodb import ITEM_SIZE_LIMIT

    filler = ITEM_SIZE_LIMIT - len("pk") - len("k1") - len("data") + spare
    attrs = {"pk": {"S": "k1"}, "data": {"S": "x" * filler}}
    moto_refuses = False
    checked = LimitedSizeDict()
    try:
        for key, value in attrs.items():
            checked[key] = DynamoType(value)  # moto's own check, attribute by attribute
    except ItemSizeTooLarge:
        moto_refuses = True
    with offline.running():
        try:
            Item(DynamoType(attrs["pk"]), None, attrs)
            refused = False
        except ItemSizeTooLarge:
            refused = True
    assert refused == moto_refuses == (spare > 0)


def test_a_parsed_condition_is_reused_only_for_the_same_expression_names_and_values(table: str) -> None:
    """Conditions are evaluated against each request's own item, with its own values
    (Expressions.ConditionExpressions.html), however often the same expression is sent."""
    from botocore.exceptions import ClientError

    ddb = boto3.client("dynamodb", region_name=REGION)

    def put(key: str, version: int, expected: int | None) -> str:
        condition = (
            {"ConditionExpression": "attribute_not_exists(k)"}
            if expected is None
            else {
                "ConditionExpression": "#v = :expected",
                "ExpressionAttributeNames": {"#v": "version"},
                "ExpressionAttributeValues": {":expected": {"N": str(expected)}},
            }
        )
        try:
            ddb.put_item(TableName=table, Item={"k": {"S": key}, "version": {"N": str(version)}}, **condition)
        except ClientError as err:
            return str(err.response["Error"]["Code"])
        return "OK"

    assert [put("a", 1, None), put("b", 1, None), put("a", 2, None)] == ["OK", "OK", "ConditionalCheckFailedException"]
    assert [put("a", 2, 1), put("a", 3, 1), put("a", 3, 2), put("b", 2, 2)] == [
        "OK",
        "ConditionalCheckFailedException",
        "OK",
        "ConditionalCheckFailedException",
    ]
