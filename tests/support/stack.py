"""One learner's workshop, built in the offline runtime with the real zips and the rendered policies.

The tests that prove the pipeline and the policies build it the way the notebooks do: a table, a queue with
a dead-letter queue, one role per function (trust policy plus exactly its inline policy), the functions
from ``build_zip``, a REST API with ``POST /task`` as a Lambda proxy, and the SQS event source mapping with
``ReportBatchItemFailures``. Each stack uses its own learner suffix, so several coexist in one runtime.
"""

from __future__ import annotations

import base64
import io
import json
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import boto3
import requests
from boto3.dynamodb.types import TypeDeserializer

from taskflow.naming import Names
from taskflow.offline.account import ACCOUNT_ID as ACCOUNT
from taskflow.offline.account import REGION
from taskflow.packaging import build_zip
from taskflow.policies import render
from taskflow.polling import wait_until

HANDLER = "lambda_function.lambda_handler"
_deserialize = TypeDeserializer().deserialize

# The policy each role gets, by function folder.
POLICY_FOR = {"create_task_direct": "create_task_day1", "create_task": "create_task", "process_task": "process_task"}

PROBE_CODE = '''
"""Make one AWS call named by the event, with this function's role, and say whether IAM allowed it."""
import boto3
from botocore.exceptions import ClientError

def handler(event, context):
    client = boto3.client(event["service"])
    try:
        getattr(client, event["operation"])(**event.get("params", {}))
    except ClientError as err:
        code = err.response["Error"]["Code"]
        outcome = "denied" if code in ("AccessDenied", "AccessDeniedException") else "failed"
        return {"outcome": outcome, "code": code, "message": str(err)}
    return {"outcome": "allowed"}
'''


@dataclass
class Stack:
    """A learner's resources in the offline runtime, and helpers to use and inspect them."""

    learner: str
    visibility_timeout: int = 2
    max_receive_count: int = 2
    function_timeout: int = 2
    names: Names = field(init=False)
    target: Any = field(init=False)
    clients: dict[str, Any] = field(init=False, default_factory=dict)
    queue_url: str = ""
    queue_arn: str = ""
    dlq_url: str = ""
    api_url: str = ""
    mapping_uuid: str = ""
    role_arns: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.names = Names(self.learner)
        self.target = SimpleNamespace(region=REGION, account_id=ACCOUNT, names=self.names)

    def client(self, service: str) -> Any:
        if service not in self.clients:
            self.clients[service] = boto3.client(service, region_name=REGION)
        return self.clients[service]

    # -- building ---------------------------------------------------------------------------------------

    def create_table(self) -> None:
        self.client("dynamodb").create_table(
            TableName=self.names.table,
            AttributeDefinitions=[{"AttributeName": "task_id", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "task_id", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )

    def create_queues(self) -> None:
        sqs = self.client("sqs")
        self.dlq_url = sqs.create_queue(QueueName=self.names.dlq)["QueueUrl"]
        dlq_arn = self.queue_attribute(self.dlq_url, "QueueArn")
        redrive = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(self.max_receive_count)}
        self.queue_url = sqs.create_queue(
            QueueName=self.names.queue,
            Attributes={"VisibilityTimeout": str(self.visibility_timeout), "RedrivePolicy": json.dumps(redrive)},
        )["QueueUrl"]
        self.queue_arn = self.queue_attribute(self.queue_url, "QueueArn")

    def policy(self, name: str) -> dict[str, Any]:
        return render(name, self.target)

    def create_role(self, role_name: str, policy_name: str) -> str:
        iam = self.client("iam")
        arn = iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=json.dumps(self.policy("lambda-trust")))
        iam.put_role_policy(
            RoleName=role_name, PolicyName=policy_name, PolicyDocument=json.dumps(self.policy(policy_name))
        )
        self.role_arns[role_name] = arn["Role"]["Arn"]
        return self.role_arns[role_name]

    def set_policy(self, role_name: str, policy_name: str, document: dict[str, Any]) -> None:
        self.client("iam").put_role_policy(
            RoleName=role_name, PolicyName=policy_name, PolicyDocument=json.dumps(document)
        )

    def deploy(
        self, function_name: str, folder: str, role_name: str, env: dict[str, str], zip_bytes: bytes | None = None
    ) -> str:
        config = self.client("lambda").create_function(
            FunctionName=function_name,
            Runtime="python3.13",
            Role=self.role_arns[role_name],
            Handler=HANDLER if zip_bytes is None else "probe.handler",
            Code={"ZipFile": zip_bytes or build_zip(folder)},
            Timeout=self.function_timeout,
            Environment={"Variables": env},
        )
        return config["FunctionArn"]

    def deploy_probe(self, function_name: str, role_name: str) -> None:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("probe.py", PROBE_CODE)
        self.deploy(function_name, "", role_name, {}, zip_bytes=buffer.getvalue())

    def create_api(self, function_arn: str) -> None:
        apigw, lam = self.client("apigateway"), self.client("lambda")
        api_id = apigw.create_rest_api(name=self.names.api)["id"]
        root = apigw.get_resources(restApiId=api_id)["items"][0]["id"]
        resource = apigw.create_resource(restApiId=api_id, parentId=root, pathPart="task")["id"]
        apigw.put_method(restApiId=api_id, resourceId=resource, httpMethod="POST", authorizationType="NONE")
        apigw.put_integration(
            restApiId=api_id,
            resourceId=resource,
            httpMethod="POST",
            type="AWS_PROXY",
            integrationHttpMethod="POST",
            uri=f"arn:aws:apigateway:{REGION}:lambda:path/2015-03-31/functions/{function_arn}/invocations",
        )
        lam.add_permission(
            FunctionName=function_arn,
            StatementId="apigateway-post-task",
            Action="lambda:InvokeFunction",
            Principal="apigateway.amazonaws.com",
            SourceArn=f"arn:aws:execute-api:{REGION}:{ACCOUNT}:{api_id}/*/POST/task",
        )
        apigw.create_deployment(restApiId=api_id, stageName=self.names.stage)
        self.api_url = f"https://{api_id}.execute-api.{REGION}.amazonaws.com/{self.names.stage}/task"

    def connect_queue(self, enabled: bool = True) -> None:
        self.mapping_uuid = self.client("lambda").create_event_source_mapping(
            EventSourceArn=self.queue_arn,
            FunctionName=self.names.process_function,
            BatchSize=10,
            MaximumBatchingWindowInSeconds=0,
            FunctionResponseTypes=["ReportBatchItemFailures"],
            Enabled=enabled,
        )["UUID"]

    def set_mapping_enabled(self, enabled: bool) -> None:
        self.client("lambda").update_event_source_mapping(UUID=self.mapping_uuid, Enabled=enabled)

    @classmethod
    def day1(cls, learner: str) -> Stack:
        """Day 1: API -> create_task (direct) -> table."""
        stack = cls(learner)
        stack.create_table()
        stack.create_role(stack.names.create_role, "create_task_day1")
        arn = stack.deploy(
            stack.names.create_function,
            "create_task_direct",
            stack.names.create_role,
            {"TABLE_NAME": stack.names.table},
        )
        stack.create_api(arn)
        return stack

    @classmethod
    def day3(cls, learner: str, *, process_env: dict[str, str] | None = None, **options: Any) -> Stack:
        """Day 3: API -> create_task -> queue -> process_task (mapping) -> table."""
        stack = cls(learner, **options)
        stack.create_table()
        stack.create_queues()
        stack.create_role(stack.names.create_role, "create_task")
        stack.create_role(stack.names.process_role, "process_task")
        arn = stack.deploy(
            stack.names.create_function, "create_task", stack.names.create_role, {"SQS_QUEUE_URL": stack.queue_url}
        )
        stack.deploy(
            stack.names.process_function,
            "process_task",
            stack.names.process_role,
            {"TABLE_NAME": stack.names.table, **(process_env or {})},
        )
        stack.create_api(arn)
        stack.connect_queue()
        return stack

    # -- using ---------------------------------------------------------------------------------------------

    def post(self, task: Any) -> requests.Response:
        return requests.post(self.api_url, json=task, timeout=10)

    def send_raw(self, body: str) -> str:
        return self.client("sqs").send_message(QueueUrl=self.queue_url, MessageBody=body)["MessageId"]

    @contextmanager
    def one_batch(self) -> Iterator[None]:
        """Messages sent inside the block reach process_task together, as one batch."""
        self.set_mapping_enabled(False)
        try:
            yield
        finally:
            self.set_mapping_enabled(True)

    def invoke(self, function_name: str, event: dict[str, Any]) -> tuple[dict[str, Any], str]:
        """Invoke directly; return the function's result and the tail of its log."""
        response = self.client("lambda").invoke(FunctionName=function_name, Payload=json.dumps(event), LogType="Tail")
        assert "FunctionError" not in response, response["Payload"].read()
        return json.loads(response["Payload"].read()), base64.b64decode(response["LogResult"]).decode()

    def probe(self, function_name: str, service: str, operation: str, **params: Any) -> dict[str, Any]:
        result, _ = self.invoke(function_name, {"service": service, "operation": operation, "params": params})
        return result

    # -- inspecting -------------------------------------------------------------------------------------

    def queue_attribute(self, url: str, name: str) -> str:
        return self.client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=[name])["Attributes"][name]

    def depth(self, url: str | None = None) -> int:
        """Messages in a queue, visible or in flight."""
        attrs = self.client("sqs").get_queue_attributes(
            QueueUrl=url or self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])

    def dlq_messages(self) -> list[dict[str, Any]]:
        return (
            self.client("sqs")
            .receive_message(QueueUrl=self.dlq_url, MaxNumberOfMessages=10, VisibilityTimeout=0, AttributeNames=["All"])
            .get("Messages", [])
        )

    def items(self) -> list[dict[str, Any]]:
        pages = self.client("dynamodb").get_paginator("scan").paginate(TableName=self.names.table)
        return [{k: _deserialize(v) for k, v in item.items()} for page in pages for item in page["Items"]]

    def item(self, task_id: str) -> dict[str, Any] | None:
        found = self.client("dynamodb").get_item(TableName=self.names.table, Key={"task_id": {"S": task_id}})
        return {k: _deserialize(v) for k, v in found["Item"].items()} if "Item" in found else None

    def log_lines(self, function_name: str) -> list[str]:
        """Every log event of a function in CloudWatch Logs (empty when the group does not exist)."""
        logs = self.client("logs")
        group = Names.log_group(function_name)
        if not logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]:
            return []
        pages = logs.get_paginator("filter_log_events").paginate(logGroupName=group)
        return [e["message"] for page in pages for e in page["events"]]

    def json_logs(self, function_name: str) -> list[dict[str, Any]]:
        """The function's own log records (the JSON lines), without Lambda's START/END/REPORT lines."""
        return [json.loads(line) for line in self.log_lines(function_name) if line.startswith("{")]

    def delete_log_group(self, function_name: str) -> None:
        logs = self.client("logs")
        group = Names.log_group(function_name)
        if logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]:
            logs.delete_log_group(logGroupName=group)

    def metric_sum(self, name: str, function_name: str) -> float:
        now = time.time()
        points = self.client("cloudwatch").get_metric_statistics(
            Namespace="Taskflow",
            MetricName=name,
            Dimensions=[{"Name": "FunctionName", "Value": function_name}],
            StartTime=now - 600,
            EndTime=now + 60,
            Period=60,
            Statistics=["Sum"],
        )["Datapoints"]
        return sum(p["Sum"] for p in points)


def wait_for(check: Callable[[], Any], timeout: float = 10.0, what: str = "the condition") -> Any:
    """Poll ``check`` until it returns something truthy (bounded); fail saying what never happened."""
    return wait_until(check, timeout=timeout, interval=0.02, what=what)
