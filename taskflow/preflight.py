"""Pre-flight check a learner runs before class: ``make preflight`` (or ``python -m taskflow.preflight``).

Checks the Python version, that the workshop's packages import at their pinned versions, and the target
``taskflow.connect()`` gives. Offline: that the offline runtime deploys a function from a zip, invokes it
and gets the right answer. On AWS (``WORKSHOP_TARGET=aws``): credentials, region, learner id, and every
permission the workshop needs, with ``iam:SimulatePrincipalPolicy`` on the caller for the actions in
``policies/learner.json`` (a built-in list if that file is missing) against this learner's resource ARNs.
Prints a ✅/❌ table; exits 1 if any check fails.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import json
import sys
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from taskflow.policies import render
from taskflow.target import Target, TargetError

ROOT = Path(__file__).resolve().parents[1]
LEARNER_POLICY = ROOT / "policies" / "learner.json"
REQUIREMENTS = ROOT / "requirements.txt"
MIN_PYTHON = (3, 11)
# What a learner's kernel imports (distribution name -> module name).
PACKAGES = {
    "boto3": "boto3",
    "botocore": "botocore",
    "moto": "moto",
    "jupyterlab": "jupyterlab",
    "ipykernel": "ipykernel",
    "pandas": "pandas",
    "matplotlib": "matplotlib",
    "tqdm": "tqdm",
    "requests": "requests",
    "psutil": "psutil",
}
# Used when policies/learner.json is missing: what the notebooks and the sweep call with the learner's credentials.
BUILTIN_ACTIONS = (
    *(f"iam:{a}" for a in ("CreateRole", "GetRole", "DeleteRole", "PutRolePolicy", "GetRolePolicy")),
    *(f"iam:{a}" for a in ("DeleteRolePolicy", "ListRolePolicies", "ListAttachedRolePolicies", "DetachRolePolicy")),
    *(f"iam:{a}" for a in ("TagRole", "ListRoleTags", "PassRole", "ListRoles")),
    *(f"lambda:{a}" for a in ("CreateFunction", "GetFunction", "UpdateFunctionCode", "UpdateFunctionConfiguration")),
    *(f"lambda:{a}" for a in ("DeleteFunction", "InvokeFunction", "AddPermission", "GetPolicy", "TagResource")),
    *(f"lambda:{a}" for a in ("CreateEventSourceMapping", "ListEventSourceMappings", "GetEventSourceMapping")),
    "lambda:DeleteEventSourceMapping",
    *(f"apigateway:{verb}" for verb in ("GET", "POST", "PUT", "PATCH", "DELETE")),
    *(f"sqs:{a}" for a in ("CreateQueue", "GetQueueUrl", "GetQueueAttributes", "SetQueueAttributes", "SendMessage")),
    *(f"sqs:{a}" for a in ("ReceiveMessage", "DeleteMessage", "PurgeQueue", "DeleteQueue", "TagQueue", "ListQueues")),
    *(f"dynamodb:{a}" for a in ("CreateTable", "DescribeTable", "DeleteTable", "PutItem", "GetItem", "Scan")),
    *(f"dynamodb:{a}" for a in ("Query", "TagResource", "ListTables")),
    *(f"logs:{a}" for a in ("DescribeLogGroups", "DescribeLogStreams", "FilterLogEvents", "GetLogEvents")),
    "logs:DeleteLogGroup",
    *(f"cloudwatch:{a}" for a in ("GetMetricData", "GetMetricStatistics", "ListMetrics")),
    "tag:GetResources",
)
# Actions AWS authorizes against "*" only (no resource-level permission), whatever the policy's statement says.
STAR_ACTIONS = frozenset(
    {
        "iam:ListRoles",
        "lambda:CreateEventSourceMapping",
        "lambda:ListEventSourceMappings",
        "lambda:ListFunctions",
        "sqs:ListQueues",
        "dynamodb:ListTables",
        "logs:DescribeLogGroups",
    }
)
STAR_SERVICES = frozenset({"cloudwatch", "tag", "sts", "xray"})
PLACEHOLDER_API = "a1b2c3d4e5"  # an API id before the API exists: policies name /restapis/*
PLACEHOLDER_MAPPING = "11111111-2222-3333-4444-555555555555"


@dataclass(frozen=True)
class Check:
    """One row of the table."""

    name: str
    ok: bool
    detail: str


def check_python(version_info: Sequence[int] = sys.version_info) -> Check:
    found = ".".join(str(p) for p in version_info[:3])
    need = ".".join(str(p) for p in MIN_PYTHON)
    if tuple(version_info[:2]) >= MIN_PYTHON:
        return Check("Python", True, f"{found} ({need} or newer needed)")
    return Check("Python", False, f"{found} is too old: install Python {need}+, then PYTHON=python3.12 make preflight")


def pinned_versions(path: Path = REQUIREMENTS) -> dict[str, str]:
    """``name -> version`` for every ``name==version`` line of requirements.txt (empty if it is missing)."""
    pins: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            spec = line.split("#", 1)[0].strip()
            if "==" in spec:
                name, pinned = spec.split("==", 1)
                pins[name.split("[")[0].strip().lower()] = pinned.strip()
    return pins


def check_packages(packages: dict[str, str] = PACKAGES, pins: dict[str, str] | None = None) -> list[Check]:
    """Each package imports, at the version requirements.txt pins."""
    pins = pinned_versions() if pins is None else pins
    checks = []
    for dist, module in packages.items():
        try:
            importlib.import_module(module)
            found = version(dist)
        except (ImportError, PackageNotFoundError) as err:
            checks.append(Check(dist, False, f"cannot be imported ({err}): run `make` to install requirements.txt"))
            continue
        wanted = pins.get(dist.lower())
        if wanted and wanted != found:
            checks.append(Check(dist, False, f"{found} installed, requirements.txt pins {wanted}: run `make`"))
        else:
            checks.append(Check(dist, True, found))
    return checks


def check_target() -> tuple[Target | None, Check]:
    """``taskflow.connect()``: the target, and a row saying where the calls go."""
    import taskflow

    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            env = taskflow.connect()
    except (TargetError, ValueError) as err:
        return None, Check("Target", False, str(err))
    return env, Check("Target", True, out.getvalue().strip().removeprefix("Target: "))


# -- offline ------------------------------------------------------------------------------------------------

_HANDLER = (
    "def handler(event, context):\n    return {'answer': event['a'] * event['b'], 'name': context.function_name}\n"
)


def check_offline_runtime(env: Target, name: str = "taskflow-preflight") -> Check:
    """Deploy a tiny function from an in-memory zip, invoke it with 6 and 7, expect 42; then remove it."""
    started = time.monotonic()
    iam, lam = env.client("iam"), env.client("lambda")
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("preflight.py", _HANDLER)
    try:
        trust = json.dumps(render("lambda-trust", env))
        role = iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust)["Role"]["Arn"]
        try:
            lam.create_function(
                FunctionName=name,
                Runtime="python3.13",
                Role=role,
                Handler="preflight.handler",
                Code={"ZipFile": code.getvalue()},
                Timeout=30,
            )
            try:
                result = lam.invoke(FunctionName=name, Payload=json.dumps({"a": 6, "b": 7}))
                payload = json.loads(result["Payload"].read())
            finally:
                lam.delete_function(FunctionName=name)
        finally:
            iam.delete_role(RoleName=name)
    except Exception as err:  # noqa: BLE001 - any failure here is the finding this row reports
        return Check("Offline runtime", False, f"{type(err).__name__}: {err}")
    if result.get("FunctionError") or payload != {"answer": 42, "name": name}:
        return Check("Offline runtime", False, f"expected answer 42, the function returned {payload}")
    took = time.monotonic() - started
    return Check("Offline runtime", True, f"deployed a function from a zip, invoked it: answered 42 ({took:.1f} s)")


# -- AWS ----------------------------------------------------------------------------------------------------


def learner_actions(path: Path = LEARNER_POLICY) -> tuple[list[str], str]:
    """The actions the learner policy allows (literal: its placeholders are only in resources) and their source."""
    shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    if not path.exists():
        return sorted(set(BUILTIN_ACTIONS)), f"the built-in list ({shown} not found)"
    actions: set[str] = set()
    for statement in json.loads(path.read_text()).get("Statement", []):
        if statement.get("Effect") != "Allow":
            continue
        listed = statement.get("Action", [])
        actions.update([listed] if isinstance(listed, str) else listed)
    return sorted(actions), str(shown)


AWS_MANAGED_EXAMPLE = "arn:aws:iam::aws:policy/AmazonSQSFullAccess"


def resources_for(action: str, env: Target) -> tuple[str, ...]:
    """The workshop resource ARNs (of ``env``'s learner) an action is simulated against."""
    service, _, name = action.partition(":")
    names = env.names
    if action in STAR_ACTIONS or service in STAR_SERVICES:
        return ("*",)
    if service == "lambda" and "EventSourceMapping" in name:
        return (env.arn("lambda", f"event-source-mapping:{PLACEHOLDER_MAPPING}"),)
    if service == "lambda":
        return tuple(env.arn("lambda", f"function:{f}") for f in names.functions)
    if action in ("iam:GetPolicy", "iam:GetPolicyVersion"):  # Day 2 reads the AWS managed policy it avoids
        return (AWS_MANAGED_EXAMPLE,)
    if service == "iam":
        return tuple(env.arn("iam", f"role/{r}", regional=False) for r in names.roles)
    if service == "sqs":
        return (env.arn("sqs", names.queue), env.arn("sqs", names.dlq))
    if service == "dynamodb":
        return (env.arn("dynamodb", f"table/{names.table}"),)
    if service == "logs":
        return tuple(env.arn("logs", f"log-group:{group}:*") for group in names.log_groups)
    if service == "apigateway":
        api = f"arn:aws:apigateway:{env.region}::/restapis"
        return (api, f"{api}/{PLACEHOLDER_API}") if name in ("GET", "POST") else (f"{api}/{PLACEHOLDER_API}",)
    return ("*",)


def plan(env: Target, actions: Sequence[str]) -> dict[tuple[str, ...], list[str]]:
    """Group actions by the resources they are simulated against: one SimulatePrincipalPolicy call each."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for action in sorted(set(actions)):
        groups.setdefault(resources_for(action, env), []).append(action)
    return groups


def context_entries(env: Target) -> list[dict[str, Any]]:
    """Values for the condition keys the learner policy uses, as AWS would see them in the workshop's calls."""
    learner = env.names.learner or ""
    values = {
        "aws:username": learner,  # learner.json scopes by IAM user name: the learner id must be it
        "iam:PassedToService": "lambda.amazonaws.com",
        "iam:PermissionsBoundary": env.arn("iam", f"policy/{env.names.boundary}", regional=False),
        "lambda:FunctionArn": env.arn("lambda", f"function:{env.names.process_function}"),
        "lambda:Principal": "apigateway.amazonaws.com",
        "aws:RequestTag/learner": learner,
        "aws:ResourceTag/learner": learner,
        "aws:RequestedRegion": env.region,
    }
    return [{"ContextKeyName": k, "ContextKeyValues": [v], "ContextKeyType": "string"} for k, v in values.items() if v]


def policy_source_arn(env: Target) -> str:
    """The IAM user or role to simulate: an assumed-role session is simulated as its role (path included)."""
    arn = env.caller_arn
    if ":assumed-role/" not in arn:
        return arn
    role = arn.split(":assumed-role/", 1)[1].split("/", 1)[0]
    try:
        return str(env.client("iam").get_role(RoleName=role)["Role"]["Arn"])
    except ClientError:  # not allowed to read our own role: without its path, which most roles lack
        return env.arn("iam", f"role/{role}", regional=False)


def simulate(env: Target, actions: Sequence[str], source: str) -> list[tuple[str, str, str]]:
    """Every (action, resource, why) the principal ``source`` is denied."""
    iam = env.client("iam")
    denied: list[tuple[str, str, str]] = []
    for resources, group in plan(env, actions).items():
        params: dict[str, Any] = {
            "PolicySourceArn": source,
            "ActionNames": group,
            "ContextEntries": context_entries(env),
        }
        if resources != ("*",):
            params["ResourceArns"] = list(resources)
        for page in iam.get_paginator("simulate_principal_policy").paginate(**params):
            for result in page.get("EvaluationResults", []):
                action = result["EvalActionName"]
                specific = result.get("ResourceSpecificResults") or []
                if specific:
                    for item in specific:
                        if item["EvalResourceDecision"] != "allowed":
                            why = _why(item["EvalResourceDecision"], item.get("MissingContextValues"))
                            denied.append((action, item["EvalResourceName"], why))
                elif result["EvalDecision"] != "allowed":
                    why = _why(result["EvalDecision"], result.get("MissingContextValues"))
                    denied.append((action, result.get("EvalResourceName", "*"), why))
    return denied


def _why(decision: str, missing: list[str] | None) -> str:
    return decision + (f", missing context {', '.join(missing)}" if missing else "")


def check_permissions(env: Target, actions: Sequence[str] | None = None) -> list[Check]:
    """One row per service: allowed, or which actions on which resources are not."""
    source_note = "the given list"
    if actions is None:
        actions, source_note = learner_actions()
    if env.caller_arn.endswith(":root"):
        return [Check("Permissions", False, "signed in as the account's root user: use an IAM user or role")]
    source = policy_source_arn(env)
    try:
        denied = simulate(env, actions, source)
    except (ClientError, BotoCoreError) as err:
        why = (
            f"could not simulate them for {source}: {err}. The learner policy must allow "
            "iam:SimulatePrincipalPolicy on yourself (and iam:GetRole, for an SSO or other assumed role): "
            "see docs/instructor-guide.md"
        )
        return [Check("Permissions", False, why)]
    checks = [Check("Permission list", True, f"{len(set(actions))} actions from {source_note}, simulated as {source}")]
    by_service: dict[str, list[str]] = {}
    for action in sorted(set(actions)):
        by_service.setdefault(action.split(":")[0], []).append(action)
    for service, service_actions in by_service.items():
        refused = [d for d in denied if d[0].split(":")[0] == service]
        if refused:
            listed = "; ".join(f"{a} on {r} ({why})" for a, r, why in refused[:6])
            more = f" and {len(refused) - 6} more" if len(refused) > 6 else ""
            checks.append(Check(f"Permissions: {service}", False, f"denied: {listed}{more}"))
        else:
            count = len(service_actions)
            checks.append(Check(f"Permissions: {service}", True, f"{count} action{'s' * (count > 1)} allowed"))
    return checks


# What one learner's Day 3 burst runs at once: 8 concurrent create_task invocations and the mapping's 2 pollers.
CONCURRENCY_PER_LEARNER = 10


def check_concurrency(env: Target, class_size: int = 1) -> Check:
    """The account's Lambda concurrency against what ``class_size`` learners bursting at once need.

    New accounts get a reduced quota (as low as 10); a class shares one account's.
    """
    try:
        limits = env.client("lambda").get_account_settings()["AccountLimit"]
    except (ClientError, BotoCoreError) as err:
        return Check("Lambda concurrency", False, f"could not read the account's settings: {err}")
    total, unreserved = limits["ConcurrentExecutions"], limits["UnreservedConcurrentExecutions"]
    need = CONCURRENCY_PER_LEARNER * class_size
    who = "you" if class_size == 1 else f"a class of {class_size}"
    detail = f"{unreserved} of {total} concurrent executions unreserved; {who} bursting at once need about {need}"
    if unreserved < need:
        return Check(
            "Lambda concurrency",
            False,
            detail + ": ask for more in Service Quotas (Lambda, Concurrent executions), or stagger the Day 3 bursts",
        )
    return Check("Lambda concurrency", True, detail)


def check_aws(env: Target, expect_region: str | None = None, actions: Sequence[str] | None = None) -> list[Check]:
    checks = [Check("Credentials", True, f"account {env.account_id} as {env.caller_arn}")]
    if expect_region and expect_region != env.region:
        checks.append(
            Check(
                "Region", False, f"{env.region}, but the class uses {expect_region}: export AWS_REGION={expect_region}"
            )
        )
    else:
        checks.append(Check("Region", True, env.region))
    learner = env.learner
    detail = f"{learner} (names end in -{learner})" if learner else "not set: fine alone, set WORKSHOP_LEARNER to share"
    checks.append(Check("Learner id", True, detail))
    return checks + check_permissions(env, actions)


# -- report -------------------------------------------------------------------------------------------------


def table(checks: Sequence[Check]) -> str:
    width = max(len(c.name) for c in checks)
    return "\n".join(f"{'✅' if c.ok else '❌'}  {c.name:<{width}}  {c.detail}" for c in checks)


def run(expect_region: str | None = None, class_size: int = 1) -> list[Check]:
    checks = [check_python(), *check_packages()]
    env, target = check_target()
    checks.append(target)
    if env is not None and env.offline:
        from taskflow import offline

        checks.append(check_offline_runtime(env))
        offline.stop()  # ends the function's worker processes
    elif env is not None:
        checks += check_aws(env, expect_region)
        checks.append(check_concurrency(env, class_size))
    return checks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m taskflow.preflight", description=__doc__.splitlines()[0])
    parser.add_argument("--expect-region", help="the region the class uses (AWS only): fail if yours differs")
    parser.add_argument(
        "--class-size", type=int, default=1, help="learners sharing this account (AWS only): checks Lambda concurrency"
    )
    args = parser.parse_args(argv)
    print("Taskflow pre-flight check\n")
    checks = run(args.expect_region, args.class_size)
    print(table(checks))
    failed = [c for c in checks if not c.ok]
    if failed:
        print(f"\n❌ {len(failed)} of {len(checks)} checks failed: fix the ❌ rows, then run `make preflight` again.")
        return 1
    print(f"\n✅ All {len(checks)} checks passed: you are ready for the workshop.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
