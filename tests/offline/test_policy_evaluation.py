"""IAM policy evaluation rules, checked one by one against the IAM User Guide's policy reference."""

from __future__ import annotations

import json

import pytest

from taskflow.offline.policy_evaluation import ALLOWED, DENIED, NOT_MATCHED, conditions_hold, evaluate

QUEUE = "arn:aws:sqs:us-east-1:123456789012:tasks"


def doc(*statements: dict[str, object]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(action: object, resource: object = "*", **extra: object) -> dict[str, object]:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def test_actions_match_case_insensitively_resources_case_sensitively() -> None:
    """https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_action.html: action names
    are case-insensitive; .../reference_policies_elements_resource.html: ARNs are case-sensitive."""
    assert evaluate(doc(allow("SQS:sendmessage", QUEUE)), "sqs:SendMessage", QUEUE) == ALLOWED
    assert evaluate(doc(allow("sqs:SendMessage", QUEUE.upper())), "sqs:SendMessage", QUEUE) == NOT_MATCHED


def test_wildcards_are_star_and_question_mark_and_nothing_else() -> None:
    """reference_policies_elements_resource.html: ``*`` any combination of characters, ``?`` any single one;
    a ``.`` is a literal dot, not a regular expression."""
    assert evaluate(doc(allow("sqs:*", "arn:aws:sqs:*:*:task?")), "sqs:SendMessage", QUEUE) == ALLOWED
    assert evaluate(doc(allow("sqs:Send*", "arn:aws:sqs:*:*:t?sks")), "sqs:SendMessage", QUEUE) == ALLOWED
    assert evaluate(doc(allow("sqs:Send?", QUEUE)), "sqs:SendMessage", QUEUE) == NOT_MATCHED
    dotted = "arn:aws:logs:us-east-1:123456789012:log-group:a.b:*"
    assert evaluate(doc(allow("logs:*", "arn:aws:logs:*:*:log-group:a.b:*")), "logs:X", dotted) == ALLOWED
    assert (
        evaluate(doc(allow("logs:*", "arn:aws:logs:*:*:log-group:a.b:*")), "logs:X", dotted.replace("a.b", "axb"))
        == NOT_MATCHED
    )


def test_explicit_deny_wins_over_any_allow() -> None:
    """https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html"""
    document = doc(allow("sqs:*", "*"), {"Effect": "Deny", "Action": "sqs:SendMessage", "Resource": QUEUE})
    assert evaluate(document, "sqs:SendMessage", QUEUE) == DENIED
    assert evaluate(document, "sqs:ReceiveMessage", QUEUE) == ALLOWED


def test_not_action_and_not_resource_match_everything_else() -> None:
    """reference_policies_elements_notaction.html and ..._notresource.html"""
    document = doc({"Effect": "Allow", "NotAction": "sqs:DeleteQueue", "Resource": "*"})
    assert evaluate(document, "sqs:SendMessage", QUEUE) == ALLOWED
    assert evaluate(document, "sqs:DeleteQueue", QUEUE) == NOT_MATCHED
    document = doc({"Effect": "Allow", "Action": "sqs:*", "NotResource": QUEUE})
    assert evaluate(document, "sqs:SendMessage", QUEUE) == NOT_MATCHED
    assert evaluate(document, "sqs:SendMessage", QUEUE + "-dlq") == ALLOWED


def test_a_failed_condition_on_an_allow_is_no_allow_and_on_a_deny_no_deny() -> None:
    """reference_policies_elements_condition.html: a statement applies only when its conditions hold."""
    region = {"StringEquals": {"aws:RequestedRegion": "eu-north-1"}}
    assert evaluate(
        doc(allow("sqs:*", "*", Condition=region)), "sqs:X", QUEUE, {"aws:RequestedRegion": "us-east-1"}
    ) == (NOT_MATCHED)
    deny = {"Effect": "Deny", "Action": "*", "Resource": "*", "Condition": region}
    assert evaluate(doc(allow("*"), deny), "sqs:X", QUEUE, {"aws:RequestedRegion": "us-east-1"}) == ALLOWED


@pytest.mark.parametrize(
    ("condition", "context", "holds"),
    [
        # Keys AND, values OR (reference_policies_multi-value-conditions.html).
        ({"StringEquals": {"k": ["a", "b"]}}, {"k": "b"}, True),
        ({"StringEquals": {"k": "a", "j": "b"}}, {"k": "a", "j": "c"}, False),
        # Negated operators: values NOR.
        ({"StringNotEquals": {"k": ["a", "b"]}}, {"k": "b"}, False),
        ({"StringNotEquals": {"k": ["a", "b"]}}, {"k": "c"}, True),
        # An absent key: false, true for a negated operator, true with IfExists
        # (reference_policies_elements_condition_operators.html, "Important").
        ({"StringEquals": {"k": "a"}}, {}, False),
        ({"StringNotEquals": {"k": "a"}}, {}, True),
        ({"StringEqualsIfExists": {"k": "a"}}, {}, True),
        ({"StringEqualsIfExists": {"k": "a"}}, {"k": "b"}, False),
        # Null checks existence.
        ({"Null": {"k": "true"}}, {}, True),
        ({"Null": {"k": "false"}}, {}, False),
        ({"Null": {"k": "false"}}, {"k": "x"}, True),
        # Key names are case-insensitive, values of StringEquals are not; IgnoreCase and Like.
        ({"StringEquals": {"AWS:RequestedRegion": "us-east-1"}}, {"aws:RequestedRegion": "us-east-1"}, True),
        ({"StringEquals": {"k": "ABC"}}, {"k": "abc"}, False),
        ({"StringEqualsIgnoreCase": {"k": "ABC"}}, {"k": "abc"}, True),
        ({"StringLike": {"k": "task-*"}}, {"k": "task-7"}, True),
        ({"ArnLike": {"k": "arn:aws:iam::*:role/*"}}, {"k": "arn:aws:iam::1:role/r"}, True),
        ({"ArnNotLike": {"k": "arn:aws:iam::*:role/*"}}, {"k": "arn:aws:iam::1:user/u"}, True),
        ({"Bool": {"aws:SecureTransport": "true"}}, {"aws:SecureTransport": "true"}, True),
        ({"NumericLessThan": {"n": "10"}}, {"n": "9"}, True),
        ({"NumericLessThan": {"n": "10"}}, {"n": "x"}, False),
        ({"DateLessThan": {"t": "2030-01-01T00:00:00Z"}}, {"t": "2026-12-02T00:00:00Z"}, True),
        ({"IpAddress": {"ip": "10.0.0.0/8"}}, {"ip": "10.1.2.3"}, True),
        # Set operators over multivalued keys.
        ({"ForAllValues:StringEquals": {"tags": ["a", "b"]}}, {"tags": ["a"]}, True),
        ({"ForAllValues:StringEquals": {"tags": ["a", "b"]}}, {"tags": ["a", "c"]}, False),
        ({"ForAllValues:StringEquals": {"tags": ["a"]}}, {}, True),
        ({"ForAnyValue:StringEquals": {"tags": ["a"]}}, {"tags": ["c", "a"]}, True),
        ({"ForAnyValue:StringEquals": {"tags": ["a"]}}, {}, False),
        # Policy variables in condition values.
        (
            {"StringEquals": {"aws:ResourceTag/learner": "${aws:username}"}},
            {"aws:ResourceTag/learner": "alice", "aws:username": "alice"},
            True,
        ),
        (
            {"StringEquals": {"aws:ResourceTag/learner": "${aws:username}"}},
            {"aws:ResourceTag/learner": "bob", "aws:username": "alice"},
            False,
        ),
    ],
)
def test_condition_operators(condition: dict[str, object], context: dict[str, object], holds: bool) -> None:
    assert conditions_hold(condition, context) is holds  # type: ignore[arg-type]


def test_policy_variables_in_resources() -> None:
    """https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_variables.html: a variable is replaced
    by the request's value; a missing key makes the element not match; ``${*}`` is a literal asterisk."""
    document = doc(allow("sqs:*", "arn:aws:sqs:*:*:*-${aws:username}"))
    assert evaluate(document, "sqs:X", QUEUE + "-alice", {"aws:username": "alice"}) == ALLOWED
    assert evaluate(document, "sqs:X", QUEUE + "-bob", {"aws:username": "alice"}) == NOT_MATCHED
    assert evaluate(document, "sqs:X", QUEUE + "-alice", {}) == NOT_MATCHED
    literal = doc(allow("s3:*", "arn:aws:s3:::a${*}b"))
    assert evaluate(literal, "s3:X", "arn:aws:s3:::a*b") == ALLOWED
    assert evaluate(literal, "s3:X", "arn:aws:s3:::axxb") == NOT_MATCHED
