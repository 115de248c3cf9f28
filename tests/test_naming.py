"""Resource names: the original's by default, suffixed per learner so a class can share an account."""

from __future__ import annotations

import pytest

from taskflow.naming import Names, learner_from_env, tags_for


def test_defaults_are_the_original_names() -> None:
    names = Names()
    assert names.table == "TaskTable"
    assert names.queue == "taskQueue"
    assert names.dlq == "taskQueue-dlq"
    assert names.functions == ("create_task", "process_task")
    assert names.roles == ("create_task-role", "process_task-role")
    assert names.stage == "prod"
    assert names.log_groups == ("/aws/lambda/create_task", "/aws/lambda/process_task")


def test_learner_suffix_applies_to_every_name() -> None:
    names = Names("alice")
    named = {k: v for k, v in names.as_dict().items() if k != "stage"}
    assert all("alice" in value for value in named.values()), named
    assert names.table == "TaskTable-alice"
    assert names.create_role == "create_task-alice-role"
    assert names.log_group(names.process_function) == "/aws/lambda/process_task-alice"
    assert len(set(Names("bob").as_dict().values()) & set(named.values())) == 0


@pytest.mark.parametrize("raw", ["Alice", "al ice", "-x", "x-", "a" * 21, "a_b", "é"])
def test_invalid_learner_ids_are_rejected(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("WORKSHOP_LEARNER", raw)
    with pytest.raises(ValueError, match="WORKSHOP_LEARNER"):
        learner_from_env()


def test_unset_or_blank_learner_means_no_suffix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKSHOP_LEARNER", "  ")
    assert learner_from_env() is None
    assert Names(None).table == "TaskTable"


def test_tags() -> None:
    assert tags_for(None) == {"workshop": "taskflow", "learner": "default"}
    assert tags_for("team-3") == {"workshop": "taskflow", "learner": "team-3"}


def test_an_id_ending_in_dlq_is_refused_because_it_names_a_classmates_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    """Learner alice-dlq's queue would be taskQueue-alice-dlq, alice's dead-letter queue, which the learner policy
    (taskQueue-${aws:username}) and alice-dlq's boundary would then both grant."""
    assert Names("alice-dlq").queue == Names("alice").dlq
    monkeypatch.setenv("WORKSHOP_LEARNER", "alice-dlq")
    with pytest.raises(ValueError, match="ends in '-dlq'"):
        learner_from_env()
