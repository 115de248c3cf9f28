"""IAM for the offline runtime: each function's calls are authorized against its own role.

moto can enforce IAM, but only globally, and with gaps (DynamoDB ignores table ARNs). Here the
check applies only to requests signed with credentials this runtime issued to a function's worker;
the learner's own calls from the notebook stay unrestricted, as an administrator's would be.
Conditions in policies are not evaluated (see docs/offline-fidelity.md).
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlencode

from moto.core.exceptions import AccessDeniedError, JsonRESTError
from moto.iam.access_control import IAMPolicy, PermissionResult
from moto.iam.models import iam_backends
from moto.sts.models import sts_backends

from taskflow.offline import faults

ACCOUNT = "123456789012"
PARTITION = "aws"
LAMBDA_PRINCIPAL = "lambda.amazonaws.com"


@dataclass(frozen=True)
class Credentials:
    """Temporary credentials for a function's execution role, as Lambda hands them to a container."""

    access_key_id: str
    secret_access_key: str
    session_token: str
    role_arn: str
    session_arn: str

    @property
    def function_name(self) -> str:
        """The function the keys were issued to (the role session is named after it)."""
        return self.session_arn.rsplit("/", 1)[-1]


_issued: dict[str, Credentials] = {}
_lock = threading.Lock()


def issue_credentials(role_arn: str, session_name: str, region: str) -> Credentials:
    """Assume ``role_arn`` in moto's STS and remember the keys as belonging to a function."""
    sts = sts_backends[ACCOUNT][PARTITION]
    assumed = sts.assume_role(
        region_name=region,
        role_session_name=session_name,
        role_arn=role_arn,
        policy="",
        duration=43200,
        external_id="",
    )
    role_name = role_arn.split("/")[-1]
    creds = Credentials(
        access_key_id=assumed.access_key_id,
        secret_access_key=assumed.secret_access_key,
        session_token=assumed.session_token,
        role_arn=role_arn,
        session_arn=f"arn:aws:sts::{ACCOUNT}:assumed-role/{role_name}/{session_name}",
    )
    with _lock:
        _issued[creds.access_key_id] = creds
    return creds


def forget_credentials() -> None:
    with _lock:
        _issued.clear()


def role_policies(role_name: str) -> list[Any]:
    """The inline and attached policies of a role, as moto stores them (empty if the role is gone)."""
    iam = iam_backends[ACCOUNT][PARTITION]
    try:
        inline = [iam.get_role_policy(role_name, name)[1] for name in iam.list_role_policies(role_name)]
        attached, _ = iam.list_attached_role_policies(role_name)
    except Exception:  # noqa: BLE001 - a deleted role simply grants nothing
        return []
    return inline + list(attached)


def role_allows(role_arn: str, action: str, resource: str) -> bool:
    """True when the role's policies allow ``action`` on ``resource`` and nothing denies it."""
    allowed = False
    for policy in role_policies(role_arn.split("/")[-1]):
        result = IAMPolicy(policy).is_action_permitted(action, resource)
        if result == PermissionResult.DENIED:
            return False
        allowed = allowed or result == PermissionResult.PERMITTED
    return allowed


def lambda_can_assume(role_arn: str) -> bool:
    """True when the role exists and its trust policy lets lambda.amazonaws.com assume it."""
    iam = iam_backends[ACCOUNT][PARTITION]
    try:
        role = iam.get_role_by_arn(role_arn)
    except Exception:  # noqa: BLE001
        return False
    doc = role.assume_role_policy_document
    doc = json.loads(unquote(doc)) if isinstance(doc, str) else doc
    statements = doc.get("Statement", [])
    statements = statements if isinstance(statements, list) else [statements]
    for st in statements:
        if st.get("Effect") != "Allow":
            continue
        actions = st.get("Action", [])
        actions = actions if isinstance(actions, list) else [actions]
        if not any(a in ("sts:AssumeRole", "sts:*", "*") for a in actions):
            continue
        principal = st.get("Principal", {})
        services = principal.get("Service", []) if isinstance(principal, dict) else []
        services = services if isinstance(services, list) else [services]
        if LAMBDA_PRINCIPAL in services:
            return True
    return False


# --- the request-time check, installed over moto's ActionAuthenticatorMixin ------------------------

_CREDENTIAL_RE = re.compile(r"Credential=([^/]+)/")


def _json_body(handler: Any) -> dict[str, Any]:
    """The request's JSON body (moto parses some protocols' bodies into dicts already)."""
    body = handler.body
    if isinstance(body, dict):
        return body
    try:
        parsed = json.loads(handler.raw_body or body or "{}")
    except (TypeError, ValueError):
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _service_resources(handler: Any, service: str, default: str) -> list[str]:
    """The resource ARNs a request acts on (each must be allowed), where moto does not determine them itself."""
    region = handler.region
    if service == "dynamodb":
        body = _json_body(handler)
        table_arn = f"arn:aws:dynamodb:{region}:{ACCOUNT}:table/"
        table = body.get("TableName")
        if table:
            index = body.get("IndexName")  # a Query or Scan of an index acts on the index's ARN
            return [table_arn + table + (f"/index/{index}" if index else "")]
        # BatchWriteItem / BatchGetItem name their tables as keys, TransactWriteItems / TransactGetItems
        # inside each item: AWS checks every table named.
        tables = list(body.get("RequestItems") or {})
        for item in body.get("TransactItems") or []:
            for operation in item.values() if isinstance(item, dict) else []:
                if isinstance(operation, dict) and operation.get("TableName"):
                    tables.append(operation["TableName"])
        if tables:
            return [table_arn + name for name in dict.fromkeys(tables)]
    if service == "logs":
        body = _json_body(handler)
        group = body.get("logGroupName")
        if group:
            return [f"arn:aws:logs:{region}:{ACCOUNT}:log-group:{group}:*"]
    return [default]


# Services that speak the query protocol (form-encoded POST, XML errors).
QUERY_SERVICES = frozenset({"iam", "sts"})


def _denied(service: str, principal: str, action: str, resource: str) -> Exception:
    """An AccessDenied error worded and typed as the service itself sends it."""
    message = (
        f"User: {principal} is not authorized to perform: {action} on resource: {resource} "
        f"because no identity-based policy allows the {action} action"
    )
    if service in QUERY_SERVICES:
        # XML <ErrorResponse> with code AccessDenied and HTTP 403; moto words it "User: {arn} is not
        # authorized to perform: {action}", so the rest of AWS's sentence rides along with the action.
        return AccessDeniedError(principal, message.split(" is not authorized to perform: ", 1)[1])
    if service == "sqs":
        err = JsonRESTError("AccessDenied", message)
        err.code = 403
        # SQS speaks JSON but keeps its query-API error codes; botocore reads them from this header.
        err.headers = {**getattr(err, "headers", {}), "x-amzn-query-error": "AccessDenied;Sender"}
        return err
    err = JsonRESTError("AccessDeniedException", message)
    err.code = 400 if service == "dynamodb" else 403
    return err


def _signed_payload(handler: Any) -> Any:
    """What the client hashed into its signature, rebuilt from what moto kept of the request.

    moto signs ``body or data``. With an empty body (a GET to a REST-JSON API such as Lambda's
    GetFunction) it would hash the parsed query and headers instead; a form-encoded POST (IAM, STS:
    the query protocol) reaches the loopback server with its body already parsed into ``form``.
    Both gave SignatureDoesNotMatch. The form is re-encoded as botocore encodes it, in order.
    """
    if handler.raw_body:
        return handler.data
    request = getattr(handler, "normalized_request", None)
    form = getattr(request, "form", None)
    if form:
        return urlencode(list(form.items(multi=True)))
    return {}


def authorize(original: Any) -> Any:
    """Wrap moto's authorizer so it only confines requests made with a function's credentials."""

    def _authenticate_and_authorize_action(self: Any, iam_request_cls: type, resource: str = "*") -> None:
        match = _CREDENTIAL_RE.search(self.headers.get("Authorization", "") or "")
        creds = _issued.get(match.group(1)) if match else None
        if creds is None:
            return  # the learner's own call: unrestricted, like an administrator's
        request = iam_request_cls(
            account_id=self.current_account,
            method=self.method,
            path=self.raw_path + (("?" + self.uri.split("?", 1)[1]) if "?" in self.uri else ""),
            data=_signed_payload(self),
            body=self.raw_body,
            headers=self.headers,
            action=self._get_action(),
        )
        request.check_signature()
        service, _, action_name = request._action.partition(":")
        action = f"{service}:{action_name}"
        if action == "sts:GetCallerIdentity":
            return  # always allowed, whatever the policies say, as on AWS
        for target in _service_resources(self, service, resource):
            if not role_allows(creds.role_arn, action, target):
                raise _denied(service, creds.session_arn, action, target)
        faults.check_call(creds.function_name, service, action_name, self)  # off unless a test switched it on

    _authenticate_and_authorize_action.__wrapped__ = original  # type: ignore[attr-defined]
    return _authenticate_and_authorize_action
