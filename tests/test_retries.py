"""taskflow.retries: waiting out what AWS documents as temporary, and a cleanup whose steps never skip each other.

The waits are AWS's: API Gateway allows one DeleteRestApi per 30 s per account
(https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html); IAM changes take time to be seen
(https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_general.html#troubleshoot_general_eventual-consistency);
SQS refuses a deleted queue's name for 60 s
(https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_CreateQueue.html).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from botocore.exceptions import ClientError

from taskflow import retries
from taskflow.retries import API_DELETE, NEW_ROLE, QUEUE_NAME, Deletions, retry


def _error(code: str, message: str = "") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, "Operation")


def _failing(*errors: ClientError, then: object = "done") -> Callable[[], object]:
    """A call that raises ``errors`` one per call, then returns ``then``."""
    pending = list(errors)

    def call() -> object:
        if pending:
            raise pending.pop(0)
        return then

    return call


def test_a_temporary_error_is_waited_out_saying_why() -> None:
    said: list[str] = []
    slept: list[float] = []
    call = _failing(_error("TooManyRequestsException"), _error("TooManyRequestsException"))
    assert retry(call, API_DELETE, say=said.append, sleep=slept.append) == "done"
    assert slept == [API_DELETE.wait, API_DELETE.wait] == [31, 31]
    assert len(said) == 2 and all(s.startswith(retries.WAITING) and "DeleteRestApi every 30 s" in s for s in said)


def test_an_error_it_was_not_told_about_is_raised_at_once() -> None:
    slept: list[float] = []
    with pytest.raises(ClientError, match="AccessDenied"):
        retry(_failing(_error("AccessDeniedException")), API_DELETE, say=print, sleep=slept.append)
    assert slept == []


def test_a_phrase_of_the_message_tells_propagation_from_a_real_mistake() -> None:
    slept: list[float] = []
    propagating = _error(
        "InvalidParameterValueException", "The role defined for the function cannot be assumed by Lambda."
    )
    assert retry(_failing(propagating), NEW_ROLE, say=lambda _: None, sleep=slept.append) == "done"
    assert slept == [NEW_ROLE.wait]
    wrong = _error("InvalidParameterValueException", "Unzipped size must be smaller than 262144000 bytes")
    with pytest.raises(ClientError, match="Unzipped"):
        retry(_failing(wrong), NEW_ROLE, say=lambda _: None, sleep=slept.append)


def test_it_gives_up_after_its_tries_with_aws_error() -> None:
    errors = [_error("QueueDeletedRecently")] * QUEUE_NAME.tries
    slept: list[float] = []
    with pytest.raises(ClientError, match="QueueDeletedRecently"):
        retry(_failing(*errors), QUEUE_NAME, say=lambda _: None, sleep=slept.append)
    assert len(slept) == QUEUE_NAME.tries - 1
    assert sum(slept) > 60, "the waits together outlast SQS's 60 s on a deleted queue's name"


def test_new_role_waits_as_long_as_terraform_does() -> None:
    """Terraform's AWS provider retries 'cannot be assumed by Lambda' for two minutes (aws_lambda_function)."""
    assert NEW_ROLE.wait * (NEW_ROLE.tries - 1) >= 110


def test_a_failed_deletion_does_not_skip_the_next_and_is_reported_at_the_end(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(retries.clock, "sleep", lambda _s: None)
    done = Deletions()
    assert done.run("the API", _failing(_error("BadRequestException", "still in use"))) is False
    assert done.run("the table", _failing()) is True
    assert done.run("the queue", _failing(_error("AWS.SimpleQueueService.NonExistentQueue"))) is True
    assert done.deleted == ["the table", "the queue (already gone)"]
    with pytest.raises(RuntimeError, match=r"(?s)re-run this cell.*the API: .*still in use"):
        done.check()


def test_a_throttled_deletion_is_waited_out(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    slept: list[float] = []
    monkeypatch.setattr(retries.clock, "sleep", slept.append)
    done = Deletions()
    assert done.run("the API", _failing(_error("TooManyRequestsException")), API_DELETE)
    assert done.failed == [] and done.deleted == ["the API"]
    assert slept and retries.WAITING in capsys.readouterr().out
    done.check()  # nothing failed: no error
