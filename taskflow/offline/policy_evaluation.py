"""IAM identity-policy evaluation as AWS documents it: explicit deny wins, then any allow, else implicit deny.

moto's own evaluator (``moto.iam.access_control``) matches actions case-sensitively, reads ``.`` and ``?`` in a
pattern as regular-expression syntax, and treats a statement whose condition fails as a deny. AWS documents:
- actions match case-insensitively, resources case-sensitively; ``*`` matches any run of characters and ``?``
  exactly one, in both (reference_policies_elements_action.html, ..._resource.html);
- a statement applies when its action, resource and every condition match; ``NotAction`` / ``NotResource``
  match everything but what they list (reference_policies_evaluation-logic.html);
- conditions: operators AND, keys AND, values OR (NOR for negated operators); a key absent from the request
  context makes a condition false, or true for a negated operator, except ``...IfExists`` (true when absent)
  and ``Null`` (reference_policies_elements_condition_operators.html, reference_policies_multi-value-conditions.html);
- policy variables ``${aws:username}`` etc. in ``Resource`` and condition values, with ``${*}``, ``${?}``,
  ``${$}`` for the literal characters; a variable whose key is absent makes the element not match
  (reference_policies_variables.html).
No well-kept Python library evaluates IAM policies with conditions, so this small module does.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

ALLOWED, DENIED, NOT_MATCHED = "allowed", "denied", "not matched"

Context = Mapping[str, str | list[str]]

_VARIABLE = re.compile(r"\$\{([^}]*)\}")
_LITERALS = {"*": "\x00", "?": "\x01", "$": "\x02"}  # ${*} ${?} ${$}: the characters themselves, not wildcards


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _lookup(context: Context, key: str) -> list[str] | None:
    """The request's values of a condition key (key names are case-insensitive); None when absent."""
    lowered = key.lower()
    for name, value in context.items():
        if name.lower() == lowered:
            return [str(v) for v in _listed(value)]
    return None


def _substitute(text: str, context: Context) -> str | None:
    """``text`` with its policy variables replaced; None when a variable names a key the request lacks."""
    missing = False

    def value(match: re.Match[str]) -> str:
        nonlocal missing
        inner = match.group(1)
        if inner in _LITERALS:
            return _LITERALS[inner]
        key, _, default = inner.partition(", ")  # ${aws:username, 'nobody'}
        found = _lookup(context, key.strip())
        if found:
            return found[0]
        if default:
            return default.strip().strip("'")
        missing = True
        return ""

    result = _VARIABLE.sub(value, text)
    return None if missing else result


@functools.lru_cache(maxsize=4096)
def _wildcard(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    """The regular expression for an IAM wildcard pattern (each request checks the same few patterns again)."""
    regex = "".join(
        ".*" if c == "*" else "." if c == "?" else re.escape({"\x00": "*", "\x01": "?", "\x02": "$"}.get(c, c))
        for c in pattern
    )
    return re.compile(regex, re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def _glob(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    """IAM's wildcard match: ``*`` any run, ``?`` one character, everything else literal."""
    return _wildcard(pattern, ignore_case).fullmatch(value) is not None


def action_matches(pattern: str, action: str) -> bool:
    return _glob(pattern, action, ignore_case=True)


def resource_matches(pattern: str, resource: str, context: Context) -> bool:
    expanded = _substitute(pattern, context)
    return expanded is not None and _glob(expanded, resource)


# --- conditions -------------------------------------------------------------------------------------------


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _date(text: str) -> float | None:
    number = _number(text)
    if number is not None:
        return number  # epoch seconds
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


def _compare(kind: str, policy: str, actual: str) -> bool:
    if kind in ("StringEquals", "ArnEquals"):
        return policy == actual if kind == "StringEquals" else _glob(policy, actual)
    if kind == "StringEqualsIgnoreCase":
        return policy.lower() == actual.lower()
    if kind in ("StringLike", "ArnLike"):
        return _glob(policy, actual)
    if kind == "Bool":
        return policy.lower() == actual.lower()
    if kind == "BinaryEquals":
        return policy == actual
    if kind == "IpAddress":
        try:
            return ipaddress.ip_address(actual) in ipaddress.ip_network(policy, strict=False)
        except ValueError:
            return False
    for family, parse in (("Numeric", _number), ("Date", _date)):
        if kind.startswith(family):
            a, p = parse(actual), parse(policy)
            if a is None or p is None:
                return False
            test = kind[len(family) :]
            return {
                "Equals": a == p,
                "LessThan": a < p,
                "LessThanEquals": a <= p,
                "GreaterThan": a > p,
                "GreaterThanEquals": a >= p,
            }.get(test, False)
    raise ValueError(f"unknown condition operator {kind}")


_NEGATED = {
    "StringNotEquals": "StringEquals",
    "StringNotEqualsIgnoreCase": "StringEqualsIgnoreCase",
    "StringNotLike": "StringLike",
    "NumericNotEquals": "NumericEquals",
    "DateNotEquals": "DateEquals",
    "NotIpAddress": "IpAddress",
    "ArnNotEquals": "ArnEquals",
    "ArnNotLike": "ArnLike",
}


def _operator_holds(operator: str, key: str, policy_values: list[Any], context: Context) -> bool:
    qualifier, _, name = operator.rpartition(":")  # ForAnyValue:StringLike, ForAllValues:..., or none
    if_exists = name.endswith("IfExists") and name != "IfExists"
    name = name.removesuffix("IfExists") if if_exists else name
    actual = _lookup(context, key)
    if name == "Null":
        wanted = str(policy_values[0]).lower() == "true"
        return (actual is None) == wanted
    if actual is None:
        if if_exists:
            return True
        if qualifier == "ForAllValues":
            return True  # ForAllValues with an absent (empty) key matches
        return name in _NEGATED and qualifier != "ForAnyValue"
    negated = name in _NEGATED
    kind = _NEGATED.get(name, name)
    expanded = [_substitute(str(v), context) for v in policy_values]
    values = [v for v in expanded if v is not None]

    def one(actual_value: str) -> bool:
        return any(_compare(kind, v, actual_value) for v in values)

    # ForAllValues: every value the request has must match; ForAnyValue (or a single-valued key): one must.
    matched = all(one(a) for a in actual) if qualifier == "ForAllValues" else any(one(a) for a in actual)
    return not matched if negated else matched


def conditions_hold(condition: Mapping[str, Any] | None, context: Context) -> bool:
    """True when every operator, and every key under it, holds for the request context."""
    for operator, keys in (condition or {}).items():
        for key, values in (keys or {}).items():
            if not _operator_holds(operator, key, _listed(values), context):
                return False
    return True


# --- statements and documents -----------------------------------------------------------------------------


def _statement_applies(st: Mapping[str, Any], action: str, resource: str, context: Context) -> bool:
    if "NotAction" in st:
        if any(action_matches(p, action) for p in _listed(st["NotAction"])):
            return False
    elif not any(action_matches(p, action) for p in _listed(st.get("Action", []))):
        return False
    if "NotResource" in st:
        if any(resource_matches(p, resource, context) for p in _listed(st["NotResource"])):
            return False
    elif not any(resource_matches(p, resource, context) for p in _listed(st.get("Resource", []))):
        return False
    return conditions_hold(st.get("Condition"), context)


@functools.lru_cache(maxsize=256)
def _parsed(document: str) -> Mapping[str, Any]:
    """A policy document's JSON, parsed once: a role's few documents are read again for every call it makes."""
    parsed: Mapping[str, Any] = json.loads(document)
    return parsed


def evaluate(document: str | Mapping[str, Any], action: str, resource: str, context: Context | None = None) -> str:
    """One identity-policy document's verdict on ``action`` on ``resource``: ALLOWED, DENIED or NOT_MATCHED."""
    parsed = _parsed(document) if isinstance(document, str) else document
    verdict = NOT_MATCHED
    for st in _listed(parsed.get("Statement", [])):
        if not isinstance(st, Mapping) or not _statement_applies(st, action, resource, context or {}):
            continue
        if st.get("Effect") == "Deny":
            return DENIED
        if st.get("Effect") == "Allow":
            verdict = ALLOWED
    return verdict
