"""Choose where the workshop's AWS calls go: the offline simulation (default) or a real account.

``taskflow.connect()`` is the one call a notebook makes before creating any AWS client. Offline
is the default so that nothing reaches a real account unless ``WORKSHOP_TARGET=aws`` is set.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import boto3
import botocore.exceptions
from botocore.config import Config

from taskflow import classroom, clock
from taskflow.naming import Names, learner_from_env, tags_for
from taskflow.offline.account import ACCOUNT_ID as OFFLINE_ACCOUNT
from taskflow.offline.account import REGION as OFFLINE_REGION
from taskflow.policies import values_for

TARGETS = ("offline", "aws")
CLIENT_CONFIG = Config(retries={"mode": "adaptive", "max_attempts": 10})

_current: Target | None = None


class TargetError(RuntimeError):
    """The requested target cannot be used as it is configured."""


@dataclass
class Target:
    """Where resources are created, and the names and tags to create them with."""

    kind: str
    session: boto3.session.Session
    region: str
    account_id: str
    caller_arn: str
    names: Names
    tags: dict[str, str]
    banner: str = ""  # the lines connect() prints, every time it is called
    boundary_arn: str | None = None  # the class's permissions boundary for roles (WORKSHOP_BOUNDARY), if any
    _clients: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def offline(self) -> bool:
        return self.kind == "offline"

    @property
    def learner(self) -> str | None:
        return self.names.learner

    @property
    def tag_list(self) -> list[dict[str, str]]:
        """The tags as ``[{"Key": ..., "Value": ...}]``, the shape IAM and DynamoDB expect."""
        return [{"Key": k, "Value": v} for k, v in self.tags.items()]

    @property
    def boundary(self) -> dict[str, str]:
        """``{"PermissionsBoundary": arn}`` when the class uses a boundary (WORKSHOP_BOUNDARY), else ``{}``:
        what ``create_role`` needs, so a shared account's roles never get more than the workshop's functions need."""
        return {"PermissionsBoundary": self.boundary_arn} if self.boundary_arn else {}

    def client(self, service: str) -> Any:
        """A boto3 client for ``service`` in this target's session and region (cached).

        A class shares one account's quotas: clients retry throttled calls in botocore's ``adaptive`` mode
        (which also slows down after a throttle) up to 10 times, not the default 4 retries (legacy mode).
        """
        if service not in self._clients:
            self._clients[service] = self.session.client(service, region_name=self.region, config=CLIENT_CONFIG)
        return self._clients[service]

    def terminal(self, api_url: str | None = None) -> None:
        """Print how to reach this target (and the API at ``api_url``) with the AWS CLI and ``curl``.

        Offline, the commands name the kernel's loopback endpoint and dummy keys; on AWS, the CLI's own profile.
        """
        if self.offline:
            from taskflow import offline

            offline.terminal(api_url)
            return
        profile = self.session.profile_name
        exports = (f"AWS_PROFILE={profile} " if profile != "default" else "") + f"AWS_DEFAULT_REGION={self.region}"
        lines = [
            f"From a terminal, with the AWS CLI set up for account {self.account_id}:",
            f"  export {exports}",
            "  aws sts get-caller-identity",
        ]
        if api_url is not None:
            lines.append(
                f"  curl -sS -X POST {api_url} -H 'Content-Type: application/json' "
                """-d '{"title": "Sent with curl"}'"""
            )
        print("\n".join(lines))

    def arn(self, service: str, resource: str, *, regional: bool = True) -> str:
        """Build an ARN in this target's partition, region and account."""
        region = self.region if regional else ""
        return f"arn:aws:{service}:{region}:{self.account_id}:{resource}"


def requested_target() -> str:
    """Read ``WORKSHOP_TARGET`` (default ``offline``) and reject anything unknown."""
    raw = os.environ.get("WORKSHOP_TARGET", "").strip().lower() or "offline"
    if raw not in TARGETS:
        raise TargetError(
            f"WORKSHOP_TARGET={os.environ['WORKSHOP_TARGET']!r} is not a target this workshop knows. "
            f"Allowed values: {', '.join(TARGETS)} (unset means offline)."
        )
    return raw


def connect() -> Target:
    """Return the target for this kernel, setting it up on the first call.

    It prints where calls go, every time. A second call returns the same target. Asking for a different target
    in the same kernel is refused: restart the kernel instead, so resources are never split across two places.
    """
    global _current
    kind = requested_target()
    if _current is not None:
        if _current.kind != kind:
            raise TargetError(
                f"This kernel is already connected to {_current.kind!r}; WORKSHOP_TARGET now asks for "
                f"{kind!r}. Restart the kernel to switch targets."
            )
    else:
        names = Names(learner_from_env())
        _current = _connect_offline(names) if kind == "offline" else _connect_aws(names)
        from taskflow import missing_steps

        missing_steps.install(_current)
    print(_current.banner)
    return _current


def _scrub_environment() -> None:
    """Remove every setting that could send an offline call to a real endpoint or account."""
    for key in list(os.environ):
        if key.startswith("AWS_ENDPOINT_URL") or key in {"AWS_PROFILE", "AWS_DEFAULT_PROFILE"}:
            del os.environ[key]
    os.environ.pop("AWS_SESSION_TOKEN", None)
    os.environ.pop("AWS_SECURITY_TOKEN", None)
    # A profile or config file could also carry an endpoint_url or a credential_process.
    os.environ["AWS_CONFIG_FILE"] = os.devnull
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION=OFFLINE_REGION,
        AWS_REGION=OFFLINE_REGION,
    )


def _connect_offline(names: Names) -> Target:
    from taskflow import offline
    from taskflow.offline import weather

    _scrub_environment()
    who = _principal()
    runtime = offline.start()
    clock.set_speedup(weather.SPEEDUP)
    boundary = classroom.boundary_arn(OFFLINE_ACCOUNT)
    values = values_for(SimpleNamespace(region=OFFLINE_REGION, account_id=OFFLINE_ACCOUNT, names=names))
    admin = boto3.client("iam", region_name=OFFLINE_REGION)  # the instructor's part of a class account
    try:
        keys = classroom.prepare_offline(admin, names, values, boundary, who)
    except classroom.ClassroomError as err:
        raise TargetError(str(err)) from None
    caller_arn = f"arn:aws:iam::{OFFLINE_ACCOUNT}:user/moto"
    if keys is not None:
        runtime.iam.confine_user(keys.access_key_id, str(names.learner))
        os.environ.update(AWS_ACCESS_KEY_ID=keys.access_key_id, AWS_SECRET_ACCESS_KEY=keys.secret_access_key)
        caller_arn = keys.user_arn
    session = boto3.Session(region_name=OFFLINE_REGION)
    banner = (
        f"Target: OFFLINE (moto {runtime.moto_version} in this kernel, account {OFFLINE_ACCOUNT}, "
        f"region {OFFLINE_REGION}); nothing reaches a real AWS account."
    )
    forecast = runtime.weather.forecast
    if not forecast.calm:
        banner += (
            f"\n🌦 AWS weather: {forecast.kind} (AWS's delays, sampling and quotas"
            + (", and a class's crowded account" if forecast.crowded else "")
            + f", {weather.SPEEDUP:g}x faster)."
        )
    class_line = classroom.banner(boundary, keys)
    return Target(
        kind="offline",
        session=session,
        region=OFFLINE_REGION,
        account_id=OFFLINE_ACCOUNT,
        caller_arn=caller_arn,
        names=names,
        tags=tags_for(names.learner),
        banner=banner + (f"\n{class_line}" if class_line else ""),
        boundary_arn=boundary,
    )


def _principal() -> str:
    try:
        return classroom.principal()
    except classroom.ClassroomError as err:
        raise TargetError(str(err)) from None


def _aws_session() -> boto3.Session:
    """boto3's default session; a profile that does not exist is a short TargetError, not a traceback."""
    try:
        return boto3.Session()
    except botocore.exceptions.ProfileNotFound as err:
        raise TargetError(
            f"WORKSHOP_TARGET=aws asks for the profile {err.kwargs['profile']!r} (AWS_PROFILE), which is not "
            "configured here. "
            "List your profiles with `aws configure list-profiles` (or read ~/.aws/config), set AWS_PROFILE to "
            "one of them (or `aws configure --profile NAME` to create it), then restart the kernel."
        ) from None


def _connect_aws(names: Names) -> Target:
    session = _aws_session()
    region = session.region_name or os.environ.get("AWS_REGION")  # botocore reads only AWS_DEFAULT_REGION
    if region and not session.region_name:
        session = boto3.Session(region_name=region)
    if not region:
        raise TargetError(
            "WORKSHOP_TARGET=aws but no region is set. Set AWS_REGION (or AWS_DEFAULT_REGION), "
            "or give your profile a region with `aws configure set region eu-west-1`."
        )
    if session.get_credentials() is None:
        raise TargetError(
            "WORKSHOP_TARGET=aws but boto3 found no credentials. Set AWS_PROFILE to a configured "
            "profile (or run `aws sso login --profile NAME`), then restart the kernel."
        )
    try:
        identity = session.client("sts", region_name=region).get_caller_identity()
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as err:
        raise TargetError(f"WORKSHOP_TARGET=aws but the credentials do not work: {err}") from err
    if _principal() != "admin":
        raise TargetError(
            "WORKSHOP_PRINCIPAL=learner is for the offline account only: on AWS your calls are made as whoever "
            "your credentials are. Unset it, or set WORKSHOP_TARGET=offline."
        )
    clock.set_speedup(1.0)
    boundary = classroom.boundary_arn(identity["Account"])
    class_line = classroom.banner(boundary, None)
    return Target(
        kind="aws",
        session=session,
        region=region,
        account_id=identity["Account"],
        caller_arn=identity["Arn"],
        names=names,
        tags=tags_for(names.learner),
        banner=(
            f"Target: REAL AWS account {identity['Account']}, region {region}, as {identity['Arn']}. "
            "Resources you create here are real and may cost money."
        )
        + (f"\n{class_line}" if class_line else ""),
        boundary_arn=boundary,
    )


def _reset_for_tests() -> None:
    """Forget the current target (tests only: a kernel never switches targets)."""
    global _current
    _current = None
    clock.set_speedup(1.0)
