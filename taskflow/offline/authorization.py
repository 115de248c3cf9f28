"""Which IAM actions, on which resource ARNs, AWS checks for one API request.

The action is the operation's name when the Service Authorization Reference lists it (``service_authorization``);
the few operations authorized under another action are listed in ``ALIASES``, each as its service documents it.
The resource is ``*`` for an action the reference authorizes on no resource type (``sqs:ListQueues``), and
otherwise the ARN of the resource the request names, in the format the reference gives.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote, urlparse

from taskflow.offline import service_authorization
from taskflow.offline.account import ACCOUNT_ID
from taskflow.offline.model import SignedRequest

# Signing names whose IAM prefix differs.
PREFIX = {"monitoring": "cloudwatch", "tagging": "tag"}

# Operations authorized under another action's name (the Service Authorization Reference lists no action for
# them). Sources: SQS "Amazon SQS API permissions: Actions and resource reference" (the batch operations use
# their single-message actions); Lambda API reference, Invoke ("requires lambda:InvokeFunction") and
# InvokeWithResponseStream; GetLayerVersionByArn uses lambda:GetLayerVersion; DynamoDB "Using IAM with
# transactions": TransactGetItems needs GetItem, TransactWriteItems the action of each item's operation.
ALIASES: dict[tuple[str, str], str] = {
    ("sqs", "SendMessageBatch"): "SendMessage",
    ("sqs", "DeleteMessageBatch"): "DeleteMessage",
    ("sqs", "ChangeMessageVisibilityBatch"): "ChangeMessageVisibility",
    ("lambda", "Invoke"): "InvokeFunction",
    ("lambda", "InvokeWithResponseStream"): "InvokeFunction",
    ("lambda", "GetLayerVersionByArn"): "GetLayerVersion",
    ("dynamodb", "TransactGetItems"): "GetItem",
}
_TRANSACT_WRITE = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}


@dataclass(frozen=True)
class Check:
    """One thing IAM must allow for the request: an action on a resource."""

    action: str
    resource: str


def prefix(service: str) -> str:
    return PREFIX.get(service, service)


def action_name(service: str, operation: str) -> str:
    """The IAM action (without prefix) AWS authorizes ``operation`` with."""
    return ALIASES.get((service, operation), operation)


def checks(request: SignedRequest) -> list[Check]:
    """Every action-on-resource that must be allowed for ``request`` (all of them, as AWS checks each)."""
    service = prefix(request.service)
    if service == "apigateway":  # API Gateway's management API is authorized by HTTP method on the path
        return [Check(f"apigateway:{request.method.upper()}", f"arn:aws:apigateway:{request.region}::{request.path}")]
    if service == "dynamodb" and request.action == "TransactWriteItems":
        return _transact_writes(request)
    action = action_name(service, request.action)
    full = f"{service}:{action}"
    if not service_authorization.resource_scoped(service, action):
        return [Check(full, "*")]
    resolve = _RESOURCES.get(service)
    resources = (resolve(request, action) if resolve else None) or [request.resource]
    return [Check(full, r) for r in resources]


def _transact_writes(request: SignedRequest) -> list[Check]:
    found: list[Check] = []
    for item in request.json_body.get("TransactItems") or []:
        for kind, operation in item.items() if isinstance(item, dict) else []:
            if kind in _TRANSACT_WRITE and isinstance(operation, dict) and operation.get("TableName"):
                arn = f"arn:aws:dynamodb:{request.region}:{ACCOUNT_ID}:table/{operation['TableName']}"
                found.append(Check(f"dynamodb:{_TRANSACT_WRITE[kind]}", arn))
    return list(dict.fromkeys(found)) or [Check("dynamodb:TransactWriteItems", "*")]


# --- resource ARNs, per service ---------------------------------------------------------------------------


def _param(request: SignedRequest, name: str) -> str | None:
    value = request.json_body.get(name)
    if value is None:
        value = request.params.get(name)
    return str(value) if value not in (None, "") else None


def _sqs(request: SignedRequest, action: str) -> list[str] | None:
    if request.resource != "*":
        return [request.resource]
    source = _param(request, "SourceArn")  # StartMessageMoveTask, ListMessageMoveTasks: the dead-letter queue
    if source:
        return [source]
    name = _param(request, "QueueName")
    url = _param(request, "QueueUrl")
    if url:
        name = urlparse(url).path.rstrip("/").rsplit("/", 1)[-1]
    return [f"arn:aws:sqs:{request.region}:{ACCOUNT_ID}:{name}"] if name else None


def _lambda(request: SignedRequest, action: str) -> list[str] | None:
    parts = [unquote(p) for p in request.path.strip("/").split("/")]
    base = f"arn:aws:lambda:{request.region}:{ACCOUNT_ID}"
    if "event-source-mappings" in parts:
        index = parts.index("event-source-mappings")
        if len(parts) > index + 1:
            return [f"{base}:event-source-mapping:{parts[index + 1]}"]
        return None
    name = parts[parts.index("functions") + 1] if "functions" in parts[:-1] else _param(request, "FunctionName")
    if not name:
        return None
    qualifier = request.params.get("Qualifier")
    if name.startswith("arn:"):  # an ARN, possibly qualified
        fields = name.split(":")
        name, qualifier = fields[6], (fields[7] if len(fields) > 7 else qualifier)
    elif ":" in name:  # name:qualifier, or account:function:name
        fields = name.split(":")
        if len(fields) >= 3 and fields[1] == "function":
            name, qualifier = fields[2], (fields[3] if len(fields) > 3 else qualifier)
        else:
            name, qualifier = fields[0], fields[1]
    arn = f"{base}:function:{name}"
    return [f"{arn}:{qualifier}" if qualifier and qualifier != "$LATEST" else arn]


def _dynamodb(request: SignedRequest, action: str) -> list[str] | None:
    body = request.json_body
    table_arn = f"arn:aws:dynamodb:{request.region}:{ACCOUNT_ID}:table/"
    table = body.get("TableName") or body.get("TableArn")
    if isinstance(table, str) and table.startswith("arn:"):
        table = table.split("/", 1)[-1]
    if table:
        index = body.get("IndexName")  # a Query or Scan of an index acts on the index's ARN
        return [table_arn + str(table) + (f"/index/{index}" if index else "")]
    # BatchWriteItem / BatchGetItem name their tables as keys, TransactGetItems inside each item: AWS checks each.
    tables = list(body.get("RequestItems") or {})
    for item in body.get("TransactItems") or []:
        for operation in item.values() if isinstance(item, dict) else []:
            if isinstance(operation, dict) and operation.get("TableName"):
                tables.append(operation["TableName"])
    return [table_arn + name for name in dict.fromkeys(tables)] or None


def _logs(request: SignedRequest, action: str) -> list[str] | None:
    group = _param(request, "logGroupName") or _param(request, "logGroupIdentifier")
    if not group:
        return None
    if group.startswith("arn:"):
        group = group.split(":log-group:", 1)[-1].removesuffix(":*")
    arn = f"arn:aws:logs:{request.region}:{ACCOUNT_ID}:log-group:{group}"
    if "log-stream*" in service_authorization.privileges("logs").get(action, []):
        stream = _param(request, "logStreamName")
        if stream:
            return [f"{arn}:log-stream:{stream}"]
    return [f"{arn}:*"]


def _iam(request: SignedRequest, action: str) -> list[str] | None:
    base = f"arn:aws:iam::{ACCOUNT_ID}"
    for param, kind in (("RoleName", "role"), ("UserName", "user"), ("GroupName", "group")):
        name = _param(request, param)
        if name:
            return [f"{base}:{kind}/{name}"]
    for param in ("PolicyArn", "RoleArn"):
        arn = _param(request, param)
        if arn:
            return [arn]
    return None


def _sts(request: SignedRequest, action: str) -> list[str] | None:
    arn = _param(request, "RoleArn")
    return [arn] if arn else None


_RESOURCES: dict[str, Callable[[SignedRequest, str], list[str] | None]] = {
    "dynamodb": _dynamodb,
    "iam": _iam,
    "lambda": _lambda,
    "logs": _logs,
    "sqs": _sqs,
    "sts": _sts,
}
