"""The seam layer: the only code touching moto's internals, each contact declared, installed all or none.

moto is pinned exactly because taskflow.offline replaces and reads its internals. These tests make an upgrade
that moves one fail loudly, naming the seam, and prove that a failed start leaves moto exactly as it was.
"""

from __future__ import annotations

import ast
import random
import re
from importlib.metadata import version
from pathlib import Path
from typing import Any

import moto
import pytest
from moto.core.models import MockAWS

from taskflow import arns
from taskflow.offline import errors, model, seams
from taskflow.offline.seams import records
from taskflow.offline.seams.records import Installation, MotoSeamError, Patch, Read

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = ROOT / "requirements.txt"
SEAMS_DIR = ROOT / "taskflow" / "offline" / "seams"


def pinned_moto() -> str:
    match = re.search(r"^moto(?:\[[^\]]*\])?==(\S+)", REQUIREMENTS.read_text(), re.MULTILINE)
    assert match, "requirements.txt must pin moto exactly (moto==X.Y.Z)"
    return match.group(1)


PATCHES = seams.PATCHES  # as declared, whatever a test swaps in


def snapshot() -> dict[str, Any]:
    """What moto defines at every place a patch goes, right now (patched or not)."""
    found = {}
    for record in PATCHES:
        module = __import__(record.module, fromlist=["_"])
        container = getattr(module, record.owner) if record.owner else module
        found[record.where] = vars(container).get(record.name) if record.adds else vars(container)[record.name]
    return found


def test_installed_moto_is_the_pinned_one() -> None:
    assert moto.__version__ == version("moto") == pinned_moto() == seams.PINNED_MOTO


@pytest.mark.parametrize("record", seams.RECORDS, ids=lambda r: r.where)
def test_every_record_resolves(record: Patch | Read) -> None:
    assert seams.resolve(record) is not None


def test_records_are_unique_and_say_why() -> None:
    wheres = [r.where for r in seams.RECORDS]
    assert len(wheres) == len(set(wheres)), sorted(w for w in wheres if wheres.count(w) > 1)
    assert all(len(r.why) > 8 for r in seams.RECORDS)


def test_a_missing_attribute_is_reported_by_name() -> None:
    moved = Read("moto.awslambda.models", "LambdaFunction.invoke_renamed", "run Lambda code on invoke")
    with pytest.raises(MotoSeamError) as err:
        seams.resolve(moved)
    message = str(err.value)
    assert "'run Lambda code on invoke'" in message
    assert "moto.awslambda.models.LambdaFunction.invoke_renamed" in message
    assert f"moto=={seams.PINNED_MOTO}" in message


def test_a_missing_module_is_reported_by_name() -> None:
    with pytest.raises(MotoSeamError, match=r"'poll queues' \(moto\.sqs\.old_models\.SQSBackend"):
        seams.resolve(Patch("moto.sqs.old_models", "SQSBackend", "receive_message", "poll queues", lambda o, i: o))


def test_changed_parameters_are_reported_by_name() -> None:
    changed = Read("moto.sqs.models", "SQSBackend.receive_message", "poll queues", ("self", "queue_name", "max"))
    with pytest.raises(MotoSeamError) as err:
        seams.resolve(changed)
    assert "'poll queues'" in str(err.value) and "parameters changed" in str(err.value)


def test_a_patched_method_that_moved_to_a_base_class_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    """The installer replaces what a class defines itself; an inherited method would be patched on the wrong class."""
    import moto.sqs.models

    class RenamedQueue(moto.sqs.models.Queue):  # inherits delete_message, defines nothing of its own
        pass

    monkeypatch.setattr(moto.sqs.models, "RenamedQueue", RenamedQueue, raising=False)
    moved = Patch("moto.sqs.models", "RenamedQueue", "delete_message", "delete a message in one pass", lambda o, i: o)
    assert hasattr(RenamedQueue, "delete_message")  # a getattr-based check would pass
    with pytest.raises(MotoSeamError, match="no longer defines delete_message itself"):
        seams.resolve(moved)


def test_an_instance_attribute_no_longer_set_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.awslambda.models import LambdaBackend

    original_init = LambdaBackend.__init__

    def new_init(self: LambdaBackend, region_name: str, account_id: str) -> None:
        original_init(self, region_name, account_id)

    monkeypatch.setattr(LambdaBackend, "__init__", new_init)  # the class itself no longer assigns the attribute
    records._attributes_stored.cache_clear()
    try:
        read = next(r for r in seams.READS if r.attribute.endswith("_event_source_mappings"))
        with pytest.raises(MotoSeamError, match="read event source mappings"):
            seams.resolve(read)
    finally:
        records._attributes_stored.cache_clear()


def test_an_attribute_set_under_a_computed_name_is_checked_on_an_example() -> None:
    visibility = next(r for r in seams.READS if r.attribute == "Queue.visibility_timeout")
    assert visibility.example is not None and seams.resolve(visibility) is not None
    gone = Read(
        "moto.sqs.models", "Queue.visibility_timeout_s", "a queue's visibility timeout", example=visibility.example
    )
    with pytest.raises(MotoSeamError, match="instances no longer carry visibility_timeout_s"):
        seams.resolve(gone)


def test_a_failed_install_leaves_moto_exactly_as_it_was() -> None:
    before = snapshot()

    def refuse(original: Any, inst: Installation) -> Any:
        raise ValueError("cannot build this replacement")

    broken = Patch("moto.sqs.models", "SQSBackend", "list_queues", "a replacement that cannot be built", refuse)
    half = len(seams.PATCHES) // 2
    installation = Installation((*seams.PATCHES[:half], broken, *seams.PATCHES[half:]), handlers=None)
    with pytest.raises(MotoSeamError, match="a replacement that cannot be built"):
        installation.install()
    assert not installation.installed
    assert snapshot() == before


def test_a_moved_seam_stops_the_runtime_before_moto_starts(monkeypatch: pytest.MonkeyPatch, aws_env: None) -> None:
    from taskflow import offline
    from taskflow.offline import runtime

    offline.stop()
    before = snapshot()
    moved = Read("moto.cloudwatch.models", "CloudWatchBackend.gone", "publish AWS/Lambda and AWS/SQS metrics")
    monkeypatch.setattr(seams, "RECORDS", (*seams.RECORDS, moved))
    with pytest.raises(MotoSeamError, match="publish AWS/Lambda and AWS/SQS metrics"):
        offline.start()
    assert runtime._runtime is None
    assert MockAWS._nested_count == 0, "moto's mock must not be left running"
    assert snapshot() == before


def test_a_failed_install_at_start_stops_moto_again(monkeypatch: pytest.MonkeyPatch, aws_env: None) -> None:
    from taskflow import offline
    from taskflow.offline import runtime

    offline.stop()
    before = snapshot()

    def refuse(original: Any, inst: Installation) -> Any:
        raise ValueError("no")

    broken = Patch("moto.sqs.models", "SQSBackend", "list_queues", "a replacement that cannot be built", refuse)
    monkeypatch.setattr(seams, "PATCHES", (*seams.PATCHES, broken))
    with pytest.raises(MotoSeamError, match="a replacement that cannot be built"):
        offline.start()
    assert runtime._runtime is None
    assert MockAWS._nested_count == 0
    assert snapshot() == before


def test_stop_puts_back_every_patch(aws_env: None) -> None:
    from taskflow import offline

    offline.stop()
    before = snapshot()
    with offline.running():
        during = snapshot()
        assert all(during[w] is not before[w] for w in before), [w for w in before if during[w] is before[w]]
        assert all(during[r.where] is not None for r in PATCHES if r.adds)
    assert snapshot() == before


# --- the layer is the only contact --------------------------------------------------------------------------


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "import_module" and node.args:
            found.add(str(getattr(node.args[0], "value", "")))
    return found


def test_only_the_seam_layer_imports_moto() -> None:
    outside = {}
    for path in sorted((ROOT / "taskflow").rglob("*.py")):
        if SEAMS_DIR in path.parents:
            continue
        touching = sorted(m for m in _imports(path) if m.split(".")[0] in ("moto", "responses"))
        if touching:
            outside[str(path.relative_to(ROOT))] = touching
    assert not outside, f"moto is reached outside taskflow/offline/seams: {outside}"


def _known_attributes() -> set[str]:
    """Attribute names that are the runtime's own or Python's, not moto's."""
    known = {"__wrapped__"}
    for cls in (model.Function, model.Queue, model.Mapping, model.Message, model.Method, model.Resource):
        known |= set(cls.__dataclass_fields__)
    for cls in (model.RestApi, model.InvokeReply, arns.Arn):
        known |= set(cls.__dataclass_fields__)
    for cls in (model.Handlers, model.SignedRequest):
        known |= {n for n in (*vars(cls), *cls.__annotations__) if not n.startswith("__")}
    known |= {"code", "message", "status", "query_code"}  # errors.AwsError
    known |= {n for n in vars(Installation) if not n.startswith("__")} | {"handlers", "state", "patches"}
    builtins = (dict, list, str, set, bytes, tuple, object, int, float, type, staticmethod)
    for builtin in (*builtins, random.Random, re.Pattern, re.Match):
        known |= set(dir(builtin))
    assert errors.AwsError("c", "m").query_code is None
    return known


@pytest.mark.parametrize("path", sorted(SEAMS_DIR.glob("*.py")), ids=lambda p: p.name)
def test_every_moto_attribute_a_seam_uses_is_declared(path: Path) -> None:
    """Reading an internal moto might move is a seam: it must be a Read or Patch record, so check() covers it."""
    if path.name in ("records.py", "__init__.py"):
        return
    declared = {r.name if isinstance(r, Patch) else r.attribute.split(".")[-1] for r in seams.RECORDS}
    tree = ast.parse(path.read_text())
    modules = set()
    own = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            modules |= {(a.asname or a.name).split(".")[0] for a in node.names}
        if isinstance(node, ast.ClassDef):  # attributes the seam module's own classes set on themselves
            own |= {t.attr for t in ast.walk(node) if isinstance(t, ast.Attribute) and isinstance(t.ctx, ast.Store)}
            own |= {  # and the names its body defines (class attributes and methods)
                t.id
                for stmt in node.body
                if isinstance(stmt, (ast.Assign, ast.AnnAssign))
                for t in (stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target])
                if isinstance(t, ast.Name)
            }
    used = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
            base = node.value
            while isinstance(base, (ast.Attribute, ast.Call)):
                base = base.value if isinstance(base, ast.Attribute) else base.func
            if isinstance(base, ast.Name) and base.id in modules:
                continue  # a module's function: its import is checked when the module is
            used.add(node.attr)
    undeclared = sorted(used - declared - own - _known_attributes())
    assert not undeclared, f"{path.name} uses moto internals no record declares: {undeclared}"
