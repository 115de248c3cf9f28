"""moto's IAM and STS, read only: a role's policy documents and trust policy, and temporary credentials for a
function's execution role (policies are evaluated by ``taskflow.offline.policy_evaluation``, not by moto)."""

from __future__ import annotations

import functools
import json
from typing import Any
from urllib.parse import unquote

from moto.iam.exceptions import NoSuchEntity, NotFoundException
from moto.iam.models import AWSManagedPolicy, iam_backends
from moto.sts.models import sts_backends

from taskflow.offline.account import ACCOUNT_ID, PARTITION
from taskflow.offline.seams.records import Installation, Patch, Read


def _backend() -> Any:
    return iam_backends[ACCOUNT_ID][PARTITION]


def role_policy_documents(role_name: str) -> list[str] | None:
    """The JSON text of a role's inline policies and of its attached managed policies' default versions;
    None if there is no such role."""
    iam = _backend()
    try:
        inline = [iam.get_role_policy(role_name, name)[1] for name in iam.list_role_policies(role_name)]
        attached, _ = iam.list_attached_role_policies(role_name)
    except NotFoundException:
        return None
    documents = [d if isinstance(d, str) else json.dumps(d) for d in inline]
    documents += [_default_document(policy) for policy in attached]
    return documents


def _default_document(policy: Any) -> str:
    version = next(v for v in policy.versions if v.is_default)
    return version.document if isinstance(version.document, str) else json.dumps(version.document)


def role_boundary_arn(role_name: str) -> str | None:
    """The ARN of a role's permissions boundary; None without one, or without such a role."""
    try:
        return _backend().get_role(role_name).permissions_boundary_arn or None
    except NotFoundException:
        return None


def role_boundary_document(role_name: str) -> str | None:
    """The JSON text of a role's permissions boundary (its managed policy's default version); None without one."""
    arn = role_boundary_arn(role_name)
    if arn is None:
        return None
    iam = _backend()
    ensure_aws_managed_policy(iam, arn)
    try:
        return _default_document(iam.get_policy(arn))
    except NotFoundException:
        return None


def user_policy_documents(user_name: str) -> list[str] | None:
    """The JSON text of an IAM user's inline policies and attached managed policies; None if there is no such user."""
    try:
        user = _backend().get_user(user_name)
    except NoSuchEntity:
        return None
    inline = [d if isinstance(d, str) else json.dumps(d) for d in list(user.policies.values())]
    return inline + [_default_document(policy) for policy in list(user.managed_policies.values())]


def trust_policy(role_arn: str) -> dict[str, Any] | None:
    """A role's trust (assume-role) policy, or None if there is no such role."""
    try:
        role = _backend().get_role_by_arn(role_arn)
    except NotFoundException:
        return None
    doc = role.assume_role_policy_document
    parsed = json.loads(unquote(doc)) if isinstance(doc, str) else doc
    return parsed if isinstance(parsed, dict) else None


def assume_role(role_arn: str, session_name: str, region: str) -> tuple[str, str, str]:
    """(access key id, secret, session token) of a new session of the role, issued by moto's STS."""
    assumed = sts_backends[ACCOUNT_ID][PARTITION].assume_role(
        region_name=region,
        role_session_name=session_name,
        role_arn=role_arn,
        policy="",
        duration=43200,
        external_id="",
    )
    return assumed.access_key_id, assumed.secret_access_key, assumed.session_token


AWS_POLICY_PREFIX = "arn:aws:iam::aws:policy"


@functools.cache
def _aws_managed_policies() -> dict[str, Any]:
    """moto's copy of AWS's managed policies, by name (imported on first use: the module is 4.7 MB of text)."""
    from moto.iam.aws_managed_policies import aws_managed_policies_data

    data: dict[str, Any] = json.loads(aws_managed_policies_data)
    return data


def ensure_aws_managed_policy(backend: Any, policy_arn: str) -> None:
    """Give the account an AWS managed policy the moment a call names it, as every AWS account has them all.

    moto loads all 1,582 only when ``MOTO_IAM_LOAD_MANAGED_POLICIES`` is set, which costs about a second at
    every start; creating the one asked for costs nothing noticeable.
    """
    if not policy_arn.startswith(AWS_POLICY_PREFIX + "/") or policy_arn in backend.managed_policies:
        return
    path, _, name = policy_arn.removeprefix(AWS_POLICY_PREFIX).rpartition("/")
    data = _aws_managed_policies().get(name)
    if data is None or data.get("Path", "/") != path + "/":
        return  # no such policy: moto answers NoSuchEntity, as AWS does
    policy = AWSManagedPolicy.from_data(name, backend.account_id, backend.region_name, data)
    backend.managed_policies[policy.arn] = policy


def _with_aws_policies(announce: bool) -> Any:
    """A replacement that first creates the AWS managed policy named by ``policy_arn`` (and, for a role's
    attachment, tells the runtime the role is about to change)."""

    def replace(original: Any, inst: Installation) -> Any:
        def call(backend: Any, policy_arn: str, *args: Any, **kwargs: Any) -> Any:
            ensure_aws_managed_policy(backend, policy_arn)
            if announce:
                inst.handlers.role_changing(kwargs["role_name"] if "role_name" in kwargs else args[0])
            return original(backend, policy_arn, *args, **kwargs)

        return call

    return replace


def _announced(role_argument: str) -> Any:
    """A replacement that tells the runtime a role is about to change (IAM propagates changes late)."""

    def replace(original: Any, inst: Installation) -> Any:
        import inspect

        position = list(inspect.signature(original).parameters).index(role_argument)

        def changing(backend: Any, *args: Any, **kwargs: Any) -> Any:
            role = kwargs[role_argument] if role_argument in kwargs else args[position - 1]
            inst.handlers.role_changing(role)
            return original(backend, *args, **kwargs)

        return changing

    return replace


_IAM = ("moto.iam.models", "IAMBackend")
PATCHES = (
    *(
        Patch(*_IAM, name, f"IAM propagates {name} late", _announced("role_name"), parameters)
        for name, parameters in (
            ("create_role", ("self", "role_name")),
            ("delete_role", ("self", "role_name")),
            ("put_role_policy", ("self", "role_name")),
            ("delete_role_policy", ("self", "role_name")),
            ("update_assume_role_policy", ("self", "role_name")),
            ("detach_role_policy", ("self", "policy_arn", "role_name")),
            ("put_role_permissions_boundary", ("self", "role_name")),
            ("delete_role_permissions_boundary", ("self", "role_name")),
        )
    ),
    Patch(
        *_IAM,
        "attach_role_policy",
        "AWS managed policies exist; IAM propagates attachments late",
        _with_aws_policies(announce=True),
        ("self", "policy_arn", "role_name"),
    ),
    *(
        Patch(*_IAM, name, "AWS managed policies exist", _with_aws_policies(announce=False), ("self", "policy_arn"))
        for name in ("attach_user_policy", "attach_group_policy", "get_policy", "get_policy_version")
    ),
)

READS = (
    Read("moto.iam.models", "iam_backends", "the backends of IAM"),
    Read("moto.iam.models", "IAMBackend.list_role_policies", "a role's inline policy names", ("self", "role_name")),
    Read(
        "moto.iam.models",
        "IAMBackend.get_role_policy",
        "a role's inline policy",
        ("self", "role_name", "policy_name"),
    ),
    Read(
        "moto.iam.models",
        "IAMBackend.list_attached_role_policies",
        "a role's managed policies",
        ("self", "role_name"),
    ),
    Read("moto.iam.models", "IAMBackend.get_role_by_arn", "find a role by ARN", ("self", "arn")),
    Read("moto.iam.models", "IAMBackend.get_role", "find a role by name", ("self", "role_name")),
    Read("moto.iam.models", "Role.permissions_boundary_arn", "a role's permissions boundary"),
    Read("moto.iam.models", "IAMBackend.get_user", "find a user by name", ("self", "name")),
    Read("moto.iam.models", "User.policies", "a user's inline policies"),
    Read("moto.iam.models", "User.managed_policies", "a user's attached managed policies"),
    Read("moto.iam.exceptions", "NoSuchEntity", "a user that does not exist"),
    Read("moto.iam.models", "Role.assume_role_policy_document", "a role's trust policy"),
    Read("moto.iam.models", "ManagedPolicy.versions", "a managed policy's versions"),
    Read("moto.iam.models", "PolicyVersion.is_default", "a managed policy's default version"),
    Read("moto.iam.models", "PolicyVersion.document", "a policy version's document"),
    Read("moto.iam.exceptions", "NotFoundException", "a role that does not exist"),
    Read("moto.iam.aws_managed_policies", "aws_managed_policies_data", "AWS's managed policies"),
    Read(
        "moto.iam.models",
        "AWSManagedPolicy.from_data",
        "create an AWS managed policy",
        ("name", "account_id", "region_name", "data"),
    ),
    Read("moto.iam.models", "IAMBackend.managed_policies", "the account's managed policies by ARN"),
    Read("moto.iam.models", "IAMBackend.account_id", "a backend's account"),
    Read("moto.iam.models", "IAMBackend.region_name", "a backend's region"),
    Read("moto.sts.models", "sts_backends", "the backends of STS"),
    Read(
        "moto.sts.models",
        "STSBackend.assume_role",
        "issue STS credentials to workers",
        ("self", "region_name", "role_session_name", "role_arn", "policy", "duration", "external_id"),
    ),
    *(
        Read("moto.sts.models", f"AssumedRole.{name}", "a role session's credentials")
        for name in ("access_key_id", "secret_access_key", "session_token")
    ),
)
