"""Find and delete what the workshop left behind, by its tags: one learner's resources or the whole class's.

Run ``python -m taskflow.sweep [--learner ID | --all-learners] [--delete]``; without ``--delete`` it only
lists what it would delete. A notebook calls ``find(env)`` and ``delete(env, leftovers)``.

How resources are found (in ``env``'s account and region):

- The Resource Groups Tagging API (``tag:GetResources``, paginated) for everything tagged
  ``workshop=taskflow`` (and ``learner=<id>`` unless all learners are swept). moto 5.2.5 answers it for
  Lambda functions, SQS queues, DynamoDB tables and CloudWatch Logs groups, but not for API Gateway REST
  APIs or event source mappings, so those two are also found without it (on AWS too; duplicates merge):
- REST APIs: ``apigateway.get_rest_apis`` and the ``tags`` each API carries.
- Event source mappings: those of every workshop function and of every workshop queue.
- Log groups: Lambda creates ``/aws/lambda/<function>`` untagged, so they are derived from the workshop
  functions found, plus orphaned groups named after workshop functions (the learner's, see ``Names``, or
  any learner's with ``all_learners``) whose function no longer exists. A function of that name that exists
  but is not tagged is someone else's: its group is left alone.
- IAM roles: IAM is not in the tagging API: ``list_roles``, then ``list_role_tags`` for each role named like
  the workshop's (``create_task*``, ``process_task*``).

Everything listed is checked to still exist (the tagging API can lag behind deletions on AWS).
Deletion runs in dependency order: mappings, functions, APIs, queues, tables, log groups, roles.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from botocore.exceptions import ClientError

from taskflow import clock
from taskflow.arns import Arn
from taskflow.naming import DEFAULT_LEARNER, WORKSHOP_TAG, Names
from taskflow.polling import WaitTimeout, wait_until
from taskflow.retries import API_DELETE, NOT_FOUND, retry
from taskflow.target import Target

# Deletion order: what depends on something is deleted before it.
ORDER: tuple[tuple[str, str], ...] = (
    ("lambda", "event-source-mapping"),
    ("lambda", "function"),
    ("apigateway", "rest-api"),
    ("sqs", "queue"),
    ("dynamodb", "table"),
    ("logs", "log-group"),
    ("iam", "role"),
)
_RANK = {kind: i for i, kind in enumerate(ORDER)}
ACCESS_DENIED = {"AccessDenied", "AccessDeniedException"}
ROLE_PREFIXES = tuple(Names().functions)  # every workshop role is named <function>-role
_sleep: Callable[[float], None] = time.sleep  # replaced in tests


class SweepError(RuntimeError):
    """Some resources could not be found or deleted; ``deleted`` lists what was deleted before that."""

    def __init__(self, message: str, deleted: list[str] | None = None) -> None:
        super().__init__(message)
        self.deleted = deleted or []


@dataclass(frozen=True)
class Leftover:
    """One resource the workshop made. ``ident`` is what the delete call takes (name, id, URL or UUID)."""

    service: str
    kind: str
    name: str
    ident: str
    arn: str
    learner: str | None = None
    note: str = ""

    @property
    def rank(self) -> int:
        return _RANK.get((self.service, self.kind), len(ORDER))

    @property
    def supported(self) -> bool:
        return (self.service, self.kind) in _RANK

    def describe(self) -> str:
        return f"{self.service} {self.kind} {self.name}"

    def __str__(self) -> str:
        extra = ", ".join(x for x in (f"learner={self.learner}" if self.learner else "", self.note) if x)
        return self.describe() + (f" ({extra})" if extra else "")


def _code(err: ClientError) -> str:
    return str(err.response.get("Error", {}).get("Code", ""))


def _matches(tags: dict[str, str], learner: str | None) -> bool:
    return tags.get("workshop") == WORKSHOP_TAG and (learner is None or tags.get("learner") == learner)


def _tagged_arns(env: Target, learner: str | None) -> dict[str, dict[str, str]]:
    """ARN -> tags of everything the tagging API finds with the workshop's tags."""
    filters = [{"Key": "workshop", "Values": [WORKSHOP_TAG]}]
    if learner is not None:
        filters.append({"Key": "learner", "Values": [learner]})
    found: dict[str, dict[str, str]] = {}
    pages = env.client("resourcegroupstaggingapi").get_paginator("get_resources").paginate(TagFilters=filters)
    for page in pages:
        for item in page.get("ResourceTagMappingList", []):
            found[item["ResourceARN"]] = {t["Key"]: t["Value"] for t in item.get("Tags", [])}
    return found


def _from_arn(env: Target, arn: str, tags: dict[str, str]) -> Leftover | None:
    """Turn a tagging-API ARN into a Leftover if it still exists (None when it is gone)."""
    learner = tags.get("learner")
    parsed = Arn.parse(arn)
    service, resource = parsed.service, parsed.resource
    try:
        if service == "lambda" and resource.startswith("function:"):
            name = resource.split(":")[1]
            env.client("lambda").get_function(FunctionName=name)
            return Leftover("lambda", "function", name, name, arn, learner)
        if service == "lambda" and resource.startswith("event-source-mapping:"):
            uuid = resource.split(":")[1]
            env.client("lambda").get_event_source_mapping(UUID=uuid)
            return Leftover("lambda", "event-source-mapping", uuid, uuid, arn, learner)
        if service == "sqs":
            url = env.client("sqs").get_queue_url(QueueName=resource, QueueOwnerAWSAccountId=parsed.account)["QueueUrl"]
            return Leftover("sqs", "queue", resource, url, arn, learner)
        if service == "dynamodb" and resource.startswith("table/") and "/" not in resource[6:]:
            name = resource[6:]
            status = env.client("dynamodb").describe_table(TableName=name)["Table"].get("TableStatus")
            if status == "DELETING":
                return None
            return Leftover("dynamodb", "table", name, name, arn, learner)
        if service == "logs" and resource.startswith("log-group:"):
            name = resource[len("log-group:") :].removesuffix(":*")
            return Leftover("logs", "log-group", name, name, arn, learner) if _log_group_exists(env, name) else None
        if service == "apigateway" and resource.startswith("/restapis/"):
            api_id = resource.split("/")[2]  # a tagged stage belongs to its API: the API is what goes
            api = env.client("apigateway").get_rest_api(restApiId=api_id)
            return Leftover("apigateway", "rest-api", api["name"], api_id, _api_arn(env, api_id), learner)
    except ClientError as err:
        if _code(err) in NOT_FOUND:
            return None
        raise
    return Leftover(service, "other", arn, arn, arn, learner, "not deleted by the sweep: delete it by hand")


def _log_group_exists(env: Target, name: str) -> bool:
    pages = env.client("logs").get_paginator("describe_log_groups").paginate(logGroupNamePrefix=name)
    return any(g["logGroupName"] == name for page in pages for g in page.get("logGroups", []))


def _api_arn(env: Target, api_id: str) -> str:
    return f"arn:aws:apigateway:{env.region}::/restapis/{api_id}"


def _rest_apis(env: Target, learner: str | None) -> Iterator[Leftover]:
    """REST APIs with the workshop's tags, listed by API Gateway itself (moto's tagging API omits them)."""
    for page in env.client("apigateway").get_paginator("get_rest_apis").paginate():
        for api in page.get("items", []):
            tags = api.get("tags") or {}
            if _matches(tags, learner):
                yield Leftover(
                    "apigateway", "rest-api", api["name"], api["id"], _api_arn(env, api["id"]), tags.get("learner")
                )


def _mappings(env: Target, functions: Iterable[Leftover], queues: Iterable[Leftover]) -> Iterator[Leftover]:
    """The event source mappings of workshop functions, and those reading workshop queues."""
    paginator = env.client("lambda").get_paginator("list_event_source_mappings")
    queries = [({"FunctionName": f.name}, f.learner) for f in functions]
    queries += [({"EventSourceArn": q.arn}, q.learner) for q in queues]
    for query, learner in queries:
        for page in paginator.paginate(**query):
            for esm in page.get("EventSourceMappings", []):
                uuid = esm["UUID"]
                note = f"{Arn.parse(esm['EventSourceArn']).name} -> {Arn.parse(esm['FunctionArn']).name}"
                arn = esm.get("EventSourceMappingArn") or env.arn("lambda", f"event-source-mapping:{uuid}")
                yield Leftover("lambda", "event-source-mapping", uuid, uuid, arn, learner, note)


def _roles(env: Target, learner: str | None) -> Iterator[Leftover]:
    """IAM roles with the workshop's tags (IAM is global and not in the tagging API).

    Only roles named like the workshop's (``create_task...``, ``process_task...``) have their tags read:
    one call per role adds up in a big account, and ``policies/learner.json`` allows no other.
    """
    iam = env.client("iam")
    for page in iam.get_paginator("list_roles").paginate():
        for role in page.get("Roles", []):
            if not role["RoleName"].startswith(ROLE_PREFIXES):
                continue
            try:
                tags = {t["Key"]: t["Value"] for t in iam.list_role_tags(RoleName=role["RoleName"]).get("Tags", [])}
            except ClientError as err:
                if _code(err) in NOT_FOUND or _code(err) in ACCESS_DENIED:
                    continue  # gone meanwhile, or not ours to read
                raise
            if _matches(tags, learner):
                yield Leftover("iam", "role", role["RoleName"], role["RoleName"], role["Arn"], tags.get("learner"))


_WORKSHOP_GROUP = re.compile(
    r"^/aws/lambda/(?:create|process)_task(?:-(?P<learner>[a-z0-9](?:[a-z0-9-]{0,18}[a-z0-9])?))?$"
)


def _function_names(learners: Iterable[str]) -> set[str]:
    """The function names a learner id can have: ``default`` is the unsuffixed names (and ``-default``)."""
    names: set[str] = set()
    for learner in learners:
        names.update(Names(learner).functions)
        if learner == DEFAULT_LEARNER:
            names.update(Names(None).functions)
    return names


def _workshop_named_groups(env: Target) -> Iterator[tuple[str, str]]:
    """(function name, learner) of every log group named like a workshop function's, of any learner."""
    paginator = env.client("logs").get_paginator("describe_log_groups")
    for prefix in ("/aws/lambda/create_task", "/aws/lambda/process_task"):
        for page in paginator.paginate(logGroupNamePrefix=prefix):
            for group in page.get("logGroups", []):
                match = _WORKSHOP_GROUP.match(group["logGroupName"])
                if match:
                    yield group["logGroupName"].removeprefix("/aws/lambda/"), match["learner"] or DEFAULT_LEARNER


def _log_groups(env: Target, functions: list[Leftover], learner: str | None) -> Iterator[Leftover]:
    """Log groups of workshop functions, and orphaned ones (no function left) named after workshop functions."""
    found: dict[str, str | None] = {f.name: f.learner for f in functions}
    if learner is not None:
        candidates = {(name, learner) for name in _function_names({learner})}
    else:
        candidates = set(_workshop_named_groups(env))
    for name, owner in sorted(candidates):
        if name in found:
            continue
        try:
            env.client("lambda").get_function(FunctionName=name)
            continue  # the function exists but is not tagged as the workshop's: not ours to judge
        except ClientError as err:
            if _code(err) not in NOT_FOUND:
                raise
        found[name] = owner
    for function, owner in sorted(found.items()):
        group = Names.log_group(function)
        if _log_group_exists(env, group):
            arn = env.arn("logs", f"log-group:{group}")
            note = f"log group of {function}" + ("" if function in {f.name for f in functions} else " (function gone)")
            yield Leftover("logs", "log-group", group, group, arn, owner, note)


def find(env: Target, learner: str | None = None, all_learners: bool = False) -> list[Leftover]:
    """Every workshop resource of ``learner`` (default: ``env``'s learner) or of all learners, in deletion order."""
    who = None if all_learners else (learner or env.tags.get("learner"))
    by_key: dict[tuple[str, str, str], Leftover] = {}

    def add(item: Leftover | None) -> None:
        if item is not None:
            by_key.setdefault((item.service, item.kind, item.ident), item)

    for arn, tags in sorted(_tagged_arns(env, who).items()):
        add(_from_arn(env, arn, tags))
    for item in _rest_apis(env, who):
        add(item)
    for item in _roles(env, who):
        add(item)
    functions = [i for i in by_key.values() if i.kind == "function"]
    queues = [i for i in by_key.values() if i.kind == "queue"]
    for item in _mappings(env, functions, queues):
        add(item)
    for item in _log_groups(env, functions, who):
        add(item)
    return sorted(by_key.values(), key=lambda i: (i.rank, i.service, i.name))


def _delete_one(env: Target, item: Leftover) -> None:
    if item.kind == "event-source-mapping":
        env.client("lambda").delete_event_source_mapping(UUID=item.ident)
    elif item.kind == "function":
        env.client("lambda").delete_function(FunctionName=item.ident)
    elif item.kind == "rest-api":
        _delete_rest_api(env, item.ident)
    elif item.kind == "queue":
        env.client("sqs").delete_queue(QueueUrl=item.ident)
    elif item.kind == "table":
        ddb = env.client("dynamodb")
        ddb.delete_table(TableName=item.ident)
        ddb.get_waiter("table_not_exists").wait(TableName=item.ident, WaiterConfig={"Delay": 2, "MaxAttempts": 60})
    elif item.kind == "log-group":
        env.client("logs").delete_log_group(logGroupName=item.ident)
    elif item.kind == "role":
        _delete_role(env, item.ident)


def _delete_rest_api(env: Target, api_id: str) -> None:
    """Delete an API, waiting out API Gateway's one-DeleteRestApi-per-30-s account limit."""
    apigw = env.client("apigateway")
    apigw.get_rest_api(restApiId=api_id)  # NotFound if it is already gone
    retry(lambda: apigw.delete_rest_api(restApiId=api_id), API_DELETE, sleep=lambda s: _sleep(clock.seconds(s)))


def _delete_role(env: Target, role: str) -> None:
    """Delete inline policies, detach managed ones, then delete the role."""
    iam = env.client("iam")
    for page in iam.get_paginator("list_role_policies").paginate(RoleName=role):
        for policy in page.get("PolicyNames", []):
            iam.delete_role_policy(RoleName=role, PolicyName=policy)
    for page in iam.get_paginator("list_attached_role_policies").paginate(RoleName=role):
        for policy in page.get("AttachedPolicies", []):
            iam.detach_role_policy(RoleName=role, PolicyArn=policy["PolicyArn"])
    iam.delete_role(RoleName=role)


def delete(env: Target, leftovers: Iterable[Leftover], say: Callable[[str], None] | None = None) -> list[str]:
    """Delete ``leftovers`` in dependency order and return what was deleted, one line each.

    Something already gone counts as deleted. Every item is attempted; failures raise one SweepError at
    the end naming each of them (its ``deleted`` says what went). ``say`` hears each line as it happens (a
    class-wide sweep waits out DeleteRestApi's 30 s quota per API: minutes, which should not pass in silence).
    """
    deleted: list[str] = []
    failures: list[str] = []
    for item in sorted(leftovers, key=lambda i: (i.rank, i.service, i.name)):
        if not item.supported:
            failures.append(f"{item.describe()}: {item.note or 'the sweep cannot delete this kind of resource'}")
            continue
        try:
            _delete_one(env, item)
            deleted.append(f"deleted {item.describe()}")
        except ClientError as err:
            if _code(err) not in NOT_FOUND:
                failures.append(f"{item.describe()}: {err}")
                if say is not None:
                    say(f"could not delete {item.describe()}: {err}")
                continue
            deleted.append(f"deleted {item.describe()} (already gone)")
        if say is not None:
            say(deleted[-1])
    if failures:
        raise SweepError("could not delete:\n  " + "\n  ".join(failures), deleted)
    return deleted


def report(leftovers: list[Leftover]) -> str:
    """A listing grouped by service, in deletion order, sorted by name within each group."""
    if not leftovers:
        return "Nothing found."
    lines: list[str] = []
    groups: dict[str, list[Leftover]] = {}
    for item in sorted(leftovers, key=lambda i: (i.rank, i.service, i.kind, i.name)):
        groups.setdefault(item.service, []).append(item)
    width = max(len(i.name) for i in leftovers)
    for service, items in groups.items():
        lines.append(f"{service} ({len(items)})")
        for item in items:
            extra = "; ".join(x for x in (f"learner={item.learner}" if item.learner else "", item.note) if x)
            lines.append(f"  {item.kind:<21} {item.name:<{width}}  {extra}".rstrip())
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """The command line: a dry-run listing, or ``--delete``; exits 1 when anything could not be deleted."""
    parser = argparse.ArgumentParser(
        prog="python -m taskflow.sweep",
        description="List (and with --delete, delete) the workshop's resources, found by their tags.",
    )
    who = parser.add_mutually_exclusive_group()
    who.add_argument("--learner", help="sweep this learner id (default: WORKSHOP_LEARNER, or 'default')")
    who.add_argument("--all-learners", action="store_true", help="sweep every learner's resources (the whole class)")
    parser.add_argument("--delete", action="store_true", help="delete what is found (default: only list it)")
    args = parser.parse_args(argv)

    import taskflow

    env = taskflow.connect()
    scope = "all learners" if args.all_learners else f"learner={args.learner or env.tags['learner']}"
    where = "the offline AWS" if env.offline else f"account {env.account_id}, region {env.region}"
    print(f"Sweep: resources tagged workshop={WORKSHOP_TAG}, {scope}, in {where} (IAM roles: account-wide).")
    if env.offline:
        print("Offline, every process has its own AWS: to sweep a notebook's, call taskflow.sweep.find(env) there.")
    leftovers = find(env, learner=args.learner, all_learners=args.all_learners)
    print(report(leftovers))
    if not args.delete:
        if leftovers:
            print(f"\nDRY RUN: nothing was deleted. Add --delete to delete these {len(leftovers)} resources.")
        return 0
    if not leftovers:
        return 0
    try:
        delete(env, leftovers, say=lambda line: print(line, flush=True))  # each line as it happens
    except SweepError as err:
        print(f"\n{err}", file=sys.stderr)
        return 1
    remaining = _wait_until_gone(env, args.learner, args.all_learners)
    if remaining:
        print("\nStill there after deletion (run the sweep again in a minute):\n" + report(remaining), file=sys.stderr)
        return 1
    print(f"\nDeleted {len(leftovers)} resources; nothing with these tags is left.")
    return 0


def _wait_until_gone(env: Target, learner: str | None, all_learners: bool, timeout: float = 90.0) -> list[Leftover]:
    """Re-run ``find`` until it is empty or ``timeout`` s pass (SQS takes up to 60 s to delete a queue)."""
    remaining: list[Leftover] = []

    def gone() -> bool:
        remaining[:] = find(env, learner=learner, all_learners=all_learners)
        return not remaining

    with contextlib.suppress(WaitTimeout):
        wait_until(gone, timeout=timeout, interval=5.0, what="the deleted resources to disappear", sleep=_sleep)
    return remaining


if __name__ == "__main__":
    sys.exit(main())
