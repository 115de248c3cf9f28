"""A crowded class account: other learners' workshop resources, and what an account already holds.

With ``WORKSHOP_WEATHER=crowded`` the offline account starts as a class's shared account does on Day 1:
thirty other learners' tables, queues, roles, functions, log groups and REST APIs (named and tagged as the
workshop names them, ``TaskTable-peer07`` and so on) next to the account's own unrelated resources. There
are enough of each that the list calls the workshop uses answer in several pages: a learner's own resources
are found only by name, or by reading every page.
"""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import boto3

from taskflow.naming import Names, tags_for
from taskflow.offline.account import REGION
from taskflow.policies import render

PEERS = tuple(f"peer{n:02d}" for n in range(1, 31))
UNRELATED = 75  # the account's own functions, roles and tables: with the peers', every list needs a second page
_CODE = "def handler(event, context):\n    return None\n"


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("lambda_function.py", _CODE)
    return buffer.getvalue()


def populate(region: str = REGION) -> dict[str, int]:
    """Create the other learners' and the account's resources; return how many of each kind."""
    session = boto3.Session(aws_access_key_id="crowd", aws_secret_access_key="crowd", region_name=region)
    ddb, sqs, iam, lam, logs, apigw = (
        session.client(s) for s in ("dynamodb", "sqs", "iam", "lambda", "logs", "apigateway")
    )
    trust = json.dumps(render("lambda-trust", {}))
    code = _zip()
    counts: dict[str, int] = {}

    def count(kind: str) -> None:
        counts[kind] = counts.get(kind, 0) + 1

    def role(name: str, tags: list[dict[str, str]]) -> str:
        count("roles")
        arn: str = iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust, Tags=tags)["Role"]["Arn"]
        return arn

    def function(name: str, role_arn: str, tags: dict[str, str]) -> str:
        count("functions")
        logs.create_log_group(logGroupName=Names.log_group(name))
        count("log groups")
        arn: str = lam.create_function(
            FunctionName=name,
            Runtime="python3.13",
            Role=role_arn,
            Handler="lambda_function.handler",
            Code={"ZipFile": code},
            Tags=tags,
        )["FunctionArn"]
        return arn

    def table(name: str, tags: list[dict[str, str]]) -> None:
        count("tables")
        ddb.create_table(
            TableName=name,
            AttributeDefinitions=[{"AttributeName": "task_id", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "task_id", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
            Tags=tags,
        )

    for peer in PEERS:
        names, tags = Names(peer), tags_for(peer)
        tag_list = [{"Key": k, "Value": v} for k, v in tags.items()]
        table(names.table, tag_list)
        for queue in (names.dlq, names.queue):
            sqs.create_queue(QueueName=queue, tags=tags)
            count("queues")
        for fn, role_name in zip(names.functions, names.roles, strict=True):
            function(fn, role(role_name, tag_list), tags)
        _api(apigw, names, tags)
        count("rest apis")
    for n in range(1, UNRELATED + 1):
        service = f"orders-service-{n:02d}"
        function(service, role(f"{service}-role", []), {})
        table(f"orders-{n:02d}", [])
    return counts


def _api(apigw: Any, names: Names, tags: dict[str, str]) -> None:
    api = apigw.create_rest_api(name=names.api, endpointConfiguration={"types": ["REGIONAL"]}, tags=tags)["id"]
    root = apigw.get_resources(restApiId=api)["items"][0]["id"]
    apigw.create_resource(restApiId=api, parentId=root, pathPart="task")
