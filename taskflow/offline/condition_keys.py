"""The request's own condition keys AWS sets for a learner's call, and the checks a call implies beyond its action.

What the learner policy and the class boundary rely on, as the Service Authorization Reference lists the keys
(https://docs.aws.amazon.com/service-authorization/latest/reference/list_awsidentityandaccessmanagementiam.html,
..._awslambda.html, ..._amazonapigatewaymanagement.html):

- ``iam:PermissionsBoundary``: the boundary a CreateRole or PutRolePermissionsBoundary sets; for the other role
  actions that list the key, the boundary the role already has
  (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_iam-condition-keys.html#ck_PermissionsBoundary);
- ``aws:RequestTag/<key>`` and ``aws:TagKeys``: the tags CreateRole, TagRole or API Gateway's ``POST /restapis``
  carries;
- ``aws:ResourceTag/<key>``: under ``/restapis/{id}``, the REST API's tags, which its resources, methods,
  deployments and stages inherit for IAM (apigateway-tagging-supported-resources.html);
- ``lambda:FunctionArn``: the function CreateEventSourceMapping names, or the function of the mapping acted on;
  ``lambda:Principal``: the principal AddPermission grants;
- ``iam:PassRole`` on a function's role, with ``iam:PassedToService`` ``lambda.amazonaws.com``, for CreateFunction
  and an UpdateFunctionConfiguration that sets ``Role``
  (https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_use_passrole.html); and a message move task's
  receive, delete and send permissions.
A key the request does not carry is absent, so a condition on it does not match (see ``policy_evaluation``).
"""

from __future__ import annotations

import re
from urllib.parse import unquote

from taskflow.offline import seams
from taskflow.offline.account import ACCOUNT_ID
from taskflow.offline.authorization import Check
from taskflow.offline.model import SignedRequest

Context = dict[str, str | list[str]]

# Role actions whose iam:PermissionsBoundary is the boundary the role has (the reference lists the key for them).
BOUNDARY_OF_THE_ROLE = frozenset(
    {"PutRolePolicy", "DeleteRolePolicy", "AttachRolePolicy", "DetachRolePolicy", "DeleteRolePermissionsBoundary"}
)
# Role actions whose iam:PermissionsBoundary is the boundary the request sets.
BOUNDARY_IN_THE_REQUEST = frozenset({"CreateRole", "PutRolePermissionsBoundary"})
_REST_API = re.compile(r"^/restapis/([^/]+)")
_MAPPING = re.compile(r"/event-source-mappings/([^/?]+)")
LAMBDA_SERVICE = "lambda.amazonaws.com"


def of(request: SignedRequest) -> Context:
    """The request-specific condition keys of ``request`` (global keys are the principal's: see ``iam``)."""
    service = request.service
    if service == "iam":
        return _iam(request)
    if service == "apigateway":
        return _apigateway(request)
    if service == "lambda":
        return _lambda(request)
    return {}


def implied(request: SignedRequest) -> list[tuple[Check, Context]]:
    """Checks AWS makes for ``request`` besides its own action: passing a role to Lambda, and what a message move
    task does with the caller's permissions."""
    if request.service == "sqs" and request.action == "StartMessageMoveTask":
        return _move_task(request)
    if request.service != "lambda" or request.action not in ("CreateFunction", "UpdateFunctionConfiguration"):
        return []
    role = request.json_body.get("Role")
    if not isinstance(role, str) or not role:
        return []
    return [(Check("iam:PassRole", role), {"iam:PassedToService": LAMBDA_SERVICE})]


def _move_task(request: SignedRequest) -> list[tuple[Check, Context]]:
    """StartMessageMoveTask also needs ReceiveMessage, DeleteMessage and GetQueueAttributes on the dead-letter queue
    and SendMessage on the destination: ``DestinationArn``, or else every queue that redrives to it
    (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-api-permissions-reference.html)."""
    source = request.json_body.get("SourceArn")
    if not isinstance(source, str) or not source:
        return []
    checks = [(Check(f"sqs:{a}", source), {}) for a in ("ReceiveMessage", "DeleteMessage", "GetQueueAttributes")]
    destination = request.json_body.get("DestinationArn")
    targets = [destination] if isinstance(destination, str) and destination else seams.sqs.source_queues(source)
    return checks + [(Check("sqs:SendMessage", arn), {}) for arn in targets]


def _tags(pairs: dict[str, str]) -> Context:
    context: Context = {f"aws:RequestTag/{key}": value for key, value in pairs.items()}
    if pairs:
        context["aws:TagKeys"] = list(pairs)
    return context


def _query_tags(request: SignedRequest) -> dict[str, str]:
    """Tags in a query-protocol request: ``Tags.member.N.Key`` and ``Tags.member.N.Value``."""
    params = request.params
    found = {}
    for name, key in params.items():
        match = re.fullmatch(r"Tags\.member\.(\d+)\.Key", name)
        if match:
            found[key] = params.get(f"Tags.member.{match.group(1)}.Value", "")
    return found


def _iam(request: SignedRequest) -> Context:
    context: Context = {}
    if request.action in ("CreateRole", "TagRole"):
        context.update(_tags(_query_tags(request)))
    if request.action in BOUNDARY_IN_THE_REQUEST:
        boundary = request.params.get("PermissionsBoundary")
    elif request.action in BOUNDARY_OF_THE_ROLE:
        boundary = seams.iam.role_boundary_arn(request.params.get("RoleName", ""))
    else:
        boundary = None
    if boundary:
        context["iam:PermissionsBoundary"] = boundary
    return context


def _apigateway(request: SignedRequest) -> Context:
    path = unquote(request.path)
    if path.rstrip("/") == "/restapis" and request.method.upper() == "POST":
        tags = request.json_body.get("tags")
        return _tags({str(k): str(v) for k, v in tags.items()}) if isinstance(tags, dict) else {}
    match = _REST_API.match(path)
    if match is None:
        return {}
    tags = seams.apigateway.rest_api_tags(request.region, match.group(1)) or {}
    return {f"aws:ResourceTag/{key}": value for key, value in tags.items()}


def _lambda(request: SignedRequest) -> Context:
    if request.action == "AddPermission":
        principal = request.json_body.get("Principal")
        return {"lambda:Principal": principal} if isinstance(principal, str) and principal else {}
    if request.action == "CreateEventSourceMapping":
        name = request.json_body.get("FunctionName")
        if not isinstance(name, str) or not name:
            return {}
        if not name.startswith("arn:"):
            name = f"arn:aws:lambda:{request.region}:{ACCOUNT_ID}:function:{name}"
        return {"lambda:FunctionArn": name}
    match = _MAPPING.search(request.path)
    if match is None:
        return {}
    mapping = seams.awslambda.mapping(request.region, unquote(match.group(1)))
    return {} if mapping is None else {"lambda:FunctionArn": mapping.function_arn}
