"""The Service Authorization Reference for the services the offline account serves: each service's IAM actions,
the resource types each action is authorized on, and those resource types' ARN formats.

AWS authorizes a request with an IAM action that is not always the API operation's name (``SendMessageBatch``
is authorized as ``sqs:SendMessage``, Lambda's ``Invoke`` as ``lambda:InvokeFunction``) and on the resource
types the reference lists (``sqs:ListQueues`` on ``*``, ``logs:PutLogEvents`` on a log stream). The data is an
extract of the copy of the reference that ships with ``parliament`` (the policy linter pinned in the developer
lock): learners do not install parliament, so the extract is committed beside this module, and
``tests/offline/test_authorization.py`` fails if it drifts from parliament's. Refresh it after upgrading
parliament with ``python -m taskflow.offline.service_authorization``.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

DATA = Path(__file__).with_name("service_authorization.json")
# IAM prefixes of the services the offline account serves (CloudWatch signs as "monitoring", IAM's prefix is
# "cloudwatch").
PREFIXES = ("apigateway", "cloudwatch", "dynamodb", "iam", "lambda", "logs", "sqs", "sts", "tag")


def extract(reference: list[dict[str, Any]]) -> dict[str, Any]:
    """The part of parliament's ``iam_definition.json`` the offline account needs, in a stable order."""
    services: dict[str, Any] = {}
    for service in sorted(reference, key=lambda s: s["prefix"]):
        if service["prefix"] not in PREFIXES:
            continue
        privileges = {
            p["privilege"]: sorted(
                {r["resource_type"] for r in p["resource_types"] if r["resource_type"]},
            )
            for p in service["privileges"]
        }
        services[service["prefix"]] = {
            "privileges": dict(sorted(privileges.items())),
            "resources": {r["resource"]: r["arn"] for r in sorted(service["resources"], key=lambda r: r["resource"])},
        }
    return services


def parliament_reference() -> list[dict[str, Any]]:
    """parliament's copy of the reference (developer lock only)."""
    import parliament

    reference: list[dict[str, Any]] = json.loads(
        (Path(parliament.__file__).parent / "iam_definition.json").read_text(encoding="utf-8")
    )
    return reference


@functools.cache
def services() -> dict[str, Any]:
    """The committed extract: ``{prefix: {"privileges": {action: [resource type, ...]}, "resources": {...}}}``."""
    data: dict[str, Any] = json.loads(DATA.read_text(encoding="utf-8"))
    return data


def privileges(prefix: str) -> dict[str, list[str]]:
    """The actions of a service and the resource types each is authorized on (a ``*`` suffix: required)."""
    return dict(services().get(prefix, {}).get("privileges", {}))


def resource_scoped(prefix: str, action: str) -> bool:
    """True when AWS authorizes ``prefix:action`` on a resource ARN; False when only on ``*`` (or unknown)."""
    return bool(privileges(prefix).get(action))


def main() -> None:
    DATA.write_text(json.dumps(extract(parliament_reference()), indent=1, sort_keys=False) + "\n", encoding="utf-8")
    print(f"wrote {DATA}")


if __name__ == "__main__":
    main()
