"""The moto internals the offline runtime patches: all present in the pinned moto, and a moved one is named."""

from __future__ import annotations

import re
from importlib.metadata import version
from pathlib import Path

import moto
import pytest

from taskflow.offline import seams
from taskflow.offline.seams import SEAMS, MotoSeamError, Seam

REQUIREMENTS = Path(__file__).resolve().parents[2] / "requirements.txt"


def pinned_moto() -> str:
    match = re.search(r"^moto(?:\[[^\]]*\])?==(\S+)", REQUIREMENTS.read_text(), re.MULTILINE)
    assert match, "requirements.txt must pin moto exactly (moto==X.Y.Z)"
    return match.group(1)


def test_installed_moto_is_the_pinned_one() -> None:
    assert moto.__version__ == version("moto") == pinned_moto() == seams.PINNED_MOTO


@pytest.mark.parametrize("seam", SEAMS, ids=lambda s: s.where)
def test_every_seam_resolves(seam: Seam) -> None:
    assert seams.resolve(seam) is not None


def test_check_passes_with_the_pinned_moto() -> None:
    seams.check()


def test_a_missing_attribute_is_reported_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    moved = Seam("run Lambda code on invoke", "moto.awslambda.models", "LambdaFunction.invoke_renamed")
    monkeypatch.setattr(seams, "SEAMS", (*SEAMS, moved))
    with pytest.raises(MotoSeamError) as err:
        seams.check()
    message = str(err.value)
    assert "'run Lambda code on invoke'" in message
    assert "moto.awslambda.models.LambdaFunction.invoke_renamed" in message
    assert f"moto=={seams.PINNED_MOTO}" in message


def test_a_missing_module_is_reported_by_name() -> None:
    with pytest.raises(MotoSeamError, match=r"'poll queues' \(moto\.sqs\.old_models\.SQSBackend"):
        seams.resolve(Seam("poll queues", "moto.sqs.old_models", "SQSBackend.receive_message"))


def test_changed_parameters_are_reported_by_name() -> None:
    changed = Seam(
        "poll queues", "moto.sqs.models", "SQSBackend.receive_message", ("self", "queue_name", "max_messages")
    )
    with pytest.raises(MotoSeamError) as err:
        seams.resolve(changed)
    assert "'poll queues'" in str(err.value) and "parameters changed" in str(err.value)
    assert "max_messages" in str(err.value)


def test_a_moved_instance_attribute_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.awslambda.models import LambdaBackend

    original_init = LambdaBackend.__init__

    def new_init(self: LambdaBackend, region_name: str, account_id: str) -> None:
        original_init(self, region_name, account_id)

    monkeypatch.setattr(LambdaBackend, "__init__", new_init)  # its source no longer assigns the attribute
    seam = next(s for s in SEAMS if s.attribute.endswith("_event_source_mappings"))
    with pytest.raises(MotoSeamError, match="read event source mappings"):
        seams.resolve(seam)


def test_starting_the_runtime_refuses_a_moved_seam(monkeypatch: pytest.MonkeyPatch) -> None:
    from taskflow import offline

    offline.stop()
    moved = Seam("publish AWS/Lambda and AWS/SQS metrics", "moto.cloudwatch.models", "CloudWatchBackend.gone")
    monkeypatch.setattr(seams, "SEAMS", (moved,))
    with pytest.raises(MotoSeamError, match="publish AWS/Lambda and AWS/SQS metrics"):
        offline.start()
    from taskflow.offline import runtime

    assert runtime._runtime is None
