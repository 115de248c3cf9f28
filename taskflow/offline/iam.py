"""IAM offline: each function's calls are authorized against its own role, and a learner principal's against its
user's policies; nobody else's are confined.

moto can enforce IAM, but only globally and with gaps (DynamoDB ignores table ARNs). Here the check applies
to requests signed with credentials issued to a function's worker, and to those signed with the key of an IAM
user the runtime was told to confine (``WORKSHOP_PRINCIPAL=learner``); otherwise the learner's own calls from
the notebook stay unrestricted, as an administrator's would be. Which actions and resources a request needs comes
from ``authorization`` (the Service Authorization Reference); policies are evaluated by ``policy_evaluation``.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from taskflow.offline import authorization, condition_keys, policy_evaluation, seams
from taskflow.offline.account import ACCOUNT_ID
from taskflow.offline.errors import AwsError
from taskflow.offline.hooks import Hooks
from taskflow.offline.model import SignedRequest
from taskflow.offline.weather import Weather

LAMBDA_PRINCIPAL = "lambda.amazonaws.com"
TRACE_VARIABLE = "TASKFLOW_OFFLINE_IAM_TRACE"  # a file: each check a confined user's request passed, as JSON
_ASSUME_ACTIONS = ("sts:AssumeRole", "sts:*", "*")


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


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def verdict(documents: list[str], action: str, resource: str, context: policy_evaluation.Context | None = None) -> str:
    """The documents' combined verdict: DENIED if any denies, ALLOWED if any allows, else NOT_MATCHED."""
    allowed = False
    for document in documents:
        result = policy_evaluation.evaluate(document, action, resource, context)
        if result == policy_evaluation.DENIED:
            return result
        allowed = allowed or result == policy_evaluation.ALLOWED
    return policy_evaluation.ALLOWED if allowed else policy_evaluation.NOT_MATCHED


@dataclass(frozen=True)
class PolicySet:
    """A principal's policies as IAM applies them: identity-based documents, capped by a permissions boundary.

    With a boundary, a request is allowed only if both an identity-based policy and the boundary allow it, and an
    explicit deny in either wins (https://docs.aws.amazon.com/IAM/latest/UserGuide/access_policies_boundaries.html,
    reference_policies_evaluation-logic.html).
    """

    identity: tuple[str, ...] = ()
    boundary: str | None = None

    def refusal(self, action: str, resource: str, context: policy_evaluation.Context | None = None) -> str | None:
        """None when the request is allowed; otherwise why not, in the words AWS ends AccessDenied with
        (https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_access-denied.html)."""
        identity = verdict(list(self.identity), action, resource, context)
        bounded = policy_evaluation.ALLOWED
        if self.boundary is not None:
            bounded = verdict([self.boundary], action, resource, context)
        if identity == policy_evaluation.DENIED:
            return "with an explicit deny in an identity-based policy"
        if bounded == policy_evaluation.DENIED:
            return "with an explicit deny in a permissions boundary"
        if identity != policy_evaluation.ALLOWED:
            return f"because no identity-based policy allows the {action} action"
        if bounded != policy_evaluation.ALLOWED:
            return f"because no permissions boundary allows the {action} action"
        return None

    def allows(self, action: str, resource: str, context: policy_evaluation.Context | None = None) -> bool:
        return self.refusal(action, resource, context) is None


def trusts(trust: dict[str, Any] | None, kind: str, principal: str) -> bool:
    """True when a trust policy lets ``principal`` of ``kind`` (``Service``, ``AWS``) assume the role."""
    for st in _listed((trust or {}).get("Statement", [])):
        if not isinstance(st, dict) or st.get("Effect") != "Allow":
            continue
        if not any(a in _ASSUME_ACTIONS for a in _listed(st.get("Action", []))):
            continue
        named = st.get("Principal", {})
        if isinstance(named, dict) and principal in _listed(named.get(kind, [])):
            return True
    return False


def trust_lets_lambda_assume(trust: dict[str, Any] | None) -> bool:
    """True when a trust policy lets lambda.amazonaws.com assume the role."""
    return trusts(trust, "Service", LAMBDA_PRINCIPAL)


def _role_arn(role_name: str) -> str:
    return f"arn:aws:iam::{ACCOUNT_ID}:role/{role_name}"


def denied(service: str, principal: str, action: str, resource: str, reason: str) -> AwsError:
    """AccessDenied, worded and typed as the service itself sends it, ending with ``reason`` (PolicySet.refusal)."""
    message = f"User: {principal} is not authorized to perform: {action} on resource: {resource} {reason}"
    if service in ("iam", "sts"):
        return AwsError("AccessDenied", message, 403)  # XML <ErrorResponse>, as the query protocol sends it
    if service == "sqs":
        return AwsError("AccessDenied", message, 403, query_code="AccessDenied;Sender")
    return AwsError("AccessDeniedException", message, 400 if service == "dynamodb" else 403)


@dataclass(frozen=True)
class _Seen:
    """What the rest of AWS still sees of a role until a change has propagated."""

    policies: PolicySet | None  # None: no such role
    trust: dict[str, Any] | None
    until: float


class Iam:
    """The credentials issued to function workers, the check each of their requests gets, and how late the rest
    of AWS sees a change to a role (IAM is eventually consistent: with weather, changes apply after a delay)."""

    def __init__(self, hooks: Callable[[], Hooks], weather: Weather) -> None:
        self._hooks = hooks
        self.weather = weather
        self._issued: dict[str, Credentials] = {}
        self._users: dict[str, str] = {}  # access key id -> the IAM user whose policies confine it
        self._seen: dict[str, _Seen] = {}
        self._lock = threading.Lock()

    # -- eventual consistency -------------------------------------------------------------------------------

    def role_changing(self, role_name: str) -> None:
        """Before a change to a role: until it propagates, calls still see the role as it is now."""
        if self.weather.calm:
            return
        now = time.monotonic()
        delay = self.weather.uniform(self.weather.forecast.iam_delay)
        with self._lock:
            earlier = self._seen.get(role_name)
            if earlier is not None and earlier.until > now:
                self._seen[role_name] = _Seen(earlier.policies, earlier.trust, max(earlier.until, now + delay))
                return
        policies = _role_policies(role_name)
        trust = seams.iam.trust_policy(_role_arn(role_name)) if policies is not None else None
        with self._lock:
            self._seen[role_name] = _Seen(policies, trust, now + delay)

    def _stale(self, role_name: str) -> _Seen | None:
        seen = self._seen.get(role_name)
        if seen is None:
            return None
        if seen.until <= time.monotonic():
            with self._lock:
                self._seen.pop(role_name, None)
            return None
        return seen

    def policies(self, role_arn: str) -> PolicySet:
        """The role's policies and boundary as AWS applies them right now (none for no role)."""
        name = role_arn.split("/")[-1]
        seen = self._stale(name)
        if seen is not None:
            return seen.policies or PolicySet()
        return _role_policies(name) or PolicySet()

    def role_allows(self, role_arn: str, action: str, resource: str) -> bool:
        """True when the role's policies and boundary (as AWS applies them now) allow ``action`` on ``resource``."""
        return self.policies(role_arn).allows(action, resource)

    def lambda_can_assume(self, role_arn: str) -> bool:
        """True when the role exists (as Lambda sees it now) and its trust policy names lambda.amazonaws.com."""
        seen = self._stale(role_arn.split("/")[-1])
        if seen is not None:
            return seen.policies is not None and trust_lets_lambda_assume(seen.trust)
        return trust_lets_lambda_assume(seams.iam.trust_policy(role_arn))

    # -- credentials and requests -------------------------------------------------------------------------

    def issue(self, role_arn: str, session_name: str, region: str) -> Credentials:
        """Assume ``role_arn`` in moto's STS and remember the keys as belonging to a function."""
        key, secret, token = seams.iam.assume_role(role_arn, session_name, region)
        role_name = role_arn.split("/")[-1]
        creds = Credentials(
            access_key_id=key,
            secret_access_key=secret,
            session_token=token,
            role_arn=role_arn,
            session_arn=f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/{role_name}/{session_name}",
        )
        with self._lock:
            self._issued[creds.access_key_id] = creds
        return creds

    def confine_user(self, access_key_id: str, user_name: str) -> None:
        """From now on, requests signed with this key of IAM user ``user_name`` get only what its policies allow."""
        with self._lock:
            self._users[access_key_id] = user_name

    def forget(self) -> None:
        with self._lock:
            self._issued.clear()
            self._users.clear()
            self._seen.clear()

    def authorize(self, request: SignedRequest) -> None:
        """Confine a request signed with a function's credentials to its role, and one signed with a confined
        user's key to the user's policies; let every other one through (the learner's own, unrestricted)."""
        creds = self._issued.get(request.access_key or "")
        user = self._users.get(request.access_key or "")
        if (creds is None and user is None) or not _needs_permission(request, creds):
            return
        if creds is not None:
            context = session_context(creds, request.region)
            checks = [(check, {}) for check in authorization.checks(request)]
            _enforce(request, creds.session_arn, self.policies(creds.role_arn), context, checks)
            self._hooks().before_call(creds.function_name, request)
        elif user is not None:
            context = {**user_context(user, request.region), **condition_keys.of(request)}
            checks = [(check, {}) for check in authorization.checks(request)] + condition_keys.implied(request)
            policies = PolicySet(tuple(seams.iam.user_policy_documents(user) or ()))
            for check, passed in _enforce(request, f"arn:aws:iam::{ACCOUNT_ID}:user/{user}", policies, context, checks):
                _trace(check, passed)


def _needs_permission(request: SignedRequest, creds: Credentials | None) -> bool:
    """Verify a confined principal's signature; False for GetCallerIdentity, allowed whatever the policies say."""
    if creds is not None:
        request.verify_signature(creds.secret_access_key, creds.session_token)
    else:
        request.verify_signature()
    return not (authorization.prefix(request.service) == "sts" and request.action == "GetCallerIdentity")


def _enforce(
    request: SignedRequest,
    principal: str,
    policies: PolicySet,
    context: dict[str, Any],
    checks: list[tuple[authorization.Check, condition_keys.Context]],
) -> list[tuple[authorization.Check, dict[str, Any]]]:
    """Raise AccessDenied unless ``policies`` allow every check (with ``context`` and the check's own keys); return
    the checks with the context each passed with."""
    passed = []
    for check, extra in checks:
        full = {**context, **extra}
        reason = policies.refusal(check.action, check.resource, full)
        if reason is not None and not _trusted(check, principal, reason):
            raise denied(request.service, principal, check.action, check.resource, reason)
        passed.append((check, full))
    return passed


def _trace(check: authorization.Check, context: dict[str, Any]) -> None:
    """Append an allowed check to ``$TASKFLOW_OFFLINE_IAM_TRACE`` (tests: which step needs which statement)."""
    path = os.environ.get(TRACE_VARIABLE)
    if path:
        line = json.dumps({"action": check.action, "resource": check.resource, "context": context})
        with open(path, "a", encoding="utf-8") as trace:
            trace.write(line + "\n")


def _trusted(check: authorization.Check, principal: str, reason: str) -> bool:
    """Does the role's trust policy itself let ``principal`` assume it? Within one account a resource-based policy
    naming the principal is enough, unless an identity-based policy explicitly denies
    (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html)."""
    if check.action != "sts:AssumeRole" or reason.startswith("with an explicit deny"):
        return False
    return trusts(seams.iam.trust_policy(check.resource), "AWS", principal)


def _global_context(principal_arn: str, principal_type: str, region: str) -> dict[str, str]:
    """The global condition keys every request carries: who signs it, where it goes, and when."""
    now = time.time()
    return {
        "aws:PrincipalArn": principal_arn,
        "aws:PrincipalAccount": ACCOUNT_ID,
        "aws:PrincipalType": principal_type,
        "aws:RequestedRegion": region,
        "aws:SecureTransport": "true",
        "aws:CurrentTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
        "aws:EpochTime": str(int(now)),
    }


def user_context(user: str, region: str) -> dict[str, str]:
    """The global condition keys of a request an IAM user signs with a long-term access key."""
    return {"aws:username": user, **_global_context(f"arn:aws:iam::{ACCOUNT_ID}:user/{user}", "User", region)}


def _role_policies(role_name: str) -> PolicySet | None:
    """A role's policies and permissions boundary as moto holds them now; None if there is no such role."""
    documents = seams.iam.role_policy_documents(role_name)
    if documents is None:
        return None
    return PolicySet(tuple(documents), seams.iam.role_boundary_document(role_name))


def session_context(creds: Credentials, region: str) -> dict[str, str]:
    """The request context keys AWS sets for a call made with a function's role session (global condition keys
    and Lambda's ``lambda:SourceFunctionArn``); other keys are absent, so conditions on them do not match."""
    function_arn = f"arn:aws:lambda:{region}:{ACCOUNT_ID}:function:{creds.function_name}"
    return {**_global_context(creds.role_arn, "AssumedRole", region), "lambda:SourceFunctionArn": function_arn}
