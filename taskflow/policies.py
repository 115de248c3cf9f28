"""Render the IAM policy templates in ``policies/`` for one target (region, account, resource names).

The templates are plain JSON a learner can read, with ``${Placeholder}`` where an account, region or
name goes: ``${Region}``, ``${Account}``, ``${TableName}``, ``${QueueName}``, ``${DlqName}``,
``${CreateFunctionName}``, ``${ProcessFunctionName}``, ``${CreateRoleName}``, ``${ProcessRoleName}``.
IAM's own policy variables (``${aws:username}``, with a colon) are not placeholders and are left alone.
A placeholder left unfilled raises, so a half-rendered policy never reaches IAM.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Protocol

from taskflow.naming import Names

POLICIES_DIR = Path(__file__).resolve().parents[1] / "policies"
PLACEHOLDER = re.compile(r"\$\{([A-Za-z][A-Za-z0-9]*)\}")


class PolicyTemplateError(ValueError):
    """A template is missing, is not valid JSON, or has placeholders no value was given for."""


class TargetLike(Protocol):
    """What ``render`` needs from a ``taskflow.Target``."""

    region: str
    account_id: str
    names: Names


def available() -> list[str]:
    """The names of the policy templates, e.g. ``["create_task", "create_task_day1", "lambda-trust", ...]``."""
    return sorted(p.stem for p in POLICIES_DIR.glob("*.json"))


def values_for(target: TargetLike) -> dict[str, str]:
    """The placeholder values for a target: its region, account and the (learner-suffixed) resource names."""
    names = target.names
    return {
        "Region": target.region,
        "Account": target.account_id,
        "TableName": names.table,
        "QueueName": names.queue,
        "DlqName": names.dlq,
        "CreateFunctionName": names.create_function,
        "ProcessFunctionName": names.process_function,
        "CreateRoleName": names.create_role,
        "ProcessRoleName": names.process_role,
    }


def placeholders(name: str) -> set[str]:
    """The placeholders a template uses."""
    return set(PLACEHOLDER.findall(_template_text(name)))


def render(name: str, target_or_values: TargetLike | Mapping[str, str]) -> dict[str, Any]:
    """Fill the template ``policies/<name>.json`` and return the policy document as a dict.

    ``target_or_values`` is a ``taskflow.Target`` (from ``taskflow.connect()``) or a mapping of
    placeholder to value. Raises PolicyTemplateError if the template is unknown or any placeholder
    has no value. Values are substituted inside JSON strings, so they cannot change the document's shape.
    """
    values = dict(target_or_values) if isinstance(target_or_values, Mapping) else values_for(target_or_values)
    try:
        document = json.loads(_template_text(name))
    except json.JSONDecodeError as err:
        raise PolicyTemplateError(f"policies/{name}.json is not valid JSON: {err}") from err
    missing = sorted(placeholders(name) - {k for k, v in values.items() if v})
    if missing:
        raise PolicyTemplateError(
            f"policies/{name}.json needs a value for {', '.join('${' + m + '}' for m in missing)}; "
            f"got values for {', '.join(sorted(values)) or 'nothing'}."
        )
    rendered = _fill(document, values)
    leftover = sorted(set(PLACEHOLDER.findall(json.dumps(rendered))))
    if leftover:  # a value that itself contained a placeholder
        raise PolicyTemplateError(f"policies/{name}.json still has {', '.join(leftover)} after rendering.")
    return rendered


def _template_text(name: str) -> str:
    path = POLICIES_DIR / f"{name}.json"
    if not path.is_file():
        raise PolicyTemplateError(f"No policy template {name!r} in {POLICIES_DIR}. Known: {', '.join(available())}.")
    return path.read_text(encoding="utf-8")


def _fill(node: Any, values: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), node)
    if isinstance(node, list):
        return [_fill(item, values) for item in node]
    if isinstance(node, dict):
        return {_fill(key, values): _fill(value, values) for key, value in node.items()}
    return node


def main(argv: list[str] | None = None) -> int:
    """``python -m taskflow.policies learner --region eu-west-1 --account 123456789012``: print a rendered policy.

    For instructors handing out ``learner.json``; ``--learner`` fills the per-learner names of the other templates
    (``boundary``, one per learner), and writes that learner's name in ``learner.json`` where IAM's
    ``${aws:username}`` stood.
    """
    parser = argparse.ArgumentParser(prog="python -m taskflow.policies", description=main.__doc__)
    parser.add_argument("name", choices=available())
    parser.add_argument("--region", required=True)
    parser.add_argument("--account", required=True)
    parser.add_argument("--learner", default=None)
    args = parser.parse_args(argv)
    target = SimpleNamespace(region=args.region, account_id=args.account, names=Names(args.learner))
    text = json.dumps(render(args.name, target), indent=2)
    if args.learner:  # one learner's copy, for a principal without a user name (an IAM Identity Center role)
        text = text.replace("${aws:username}", args.learner)
    print(text)
    return 0


__all__ = ["POLICIES_DIR", "PolicyTemplateError", "available", "placeholders", "render", "values_for"]

if __name__ == "__main__":
    raise SystemExit(main())
