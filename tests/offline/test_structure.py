"""The offline runtime's structure: parts that talk through declared hooks, state on the runtime, nothing left.

Fault injection and benchmarks reach production code only through ``taskflow.offline.hooks``; the kernel and the
workers share one definition of their messages; a stopped runtime leaves no process, thread or file behind.
"""

from __future__ import annotations

import ast
import multiprocessing
import threading
from pathlib import Path

import psutil
import pytest

from taskflow import offline
from taskflow.arns import Arn, is_sqs_queue, sqs_queue_arn
from taskflow.offline import protocol

from .conftest import Aws, poll

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "taskflow"
# Module-level names that are not constants, each with its reason.
ALLOWED_GLOBALS = {
    ("offline/runtime.py", "_runtime"): "the one running runtime, which start() returns",
    ("offline/runtime.py", "_lock"): "guards _runtime",
    ("offline/api_proxy.py", "log"): "a logger",
    ("offline/runtime.py", "log"): "a logger",
    ("offline/worker.py", "protocol"): "the worker process's copy of the message definitions",
    ("offline/worker.py", "_link"): "the worker process's link (a process of its own, not the kernel)",
    ("offline/worker.py", "_request_id"): "the worker process's current request",
    ("target.py", "_current"): "the kernel's one target (connect() never switches)",
    ("sweep.py", "_sleep"): "the clock tests replace",
    ("clock.py", "_speedup"): "the kernel's pace, set once by connect() for the target",
    ("offline/weather.py", "log"): "a logger",
}


def _module_globals(path: Path) -> list[str]:
    names = []
    for node in ast.parse(path.read_text()).body:
        targets = (
            node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        )
        for target in targets:
            name = target.id if isinstance(target, ast.Name) else ""
            # Constants are UPPER_CASE and types CamelCase; dunders (__all__) are Python's.
            if name and not name.startswith("__") and name.lstrip("_")[:1].islower():
                names.append(name)
    return names


def test_state_lives_on_objects_not_module_globals() -> None:
    found = {(str(path.relative_to(PACKAGE)), name) for path in PACKAGE.rglob("*.py") for name in _module_globals(path)}
    assert found <= set(ALLOWED_GLOBALS), sorted(found - set(ALLOWED_GLOBALS))


def test_no_production_module_imports_faults() -> None:
    importers = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "faults.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom):
                names = [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            if any(n.endswith("faults") or ".faults." in n for n in names):
                importers.append(str(path.relative_to(ROOT)))
    assert not importers, f"fault injection must reach production code only through hooks: {importers}"


def test_the_worker_protocol_round_trips_every_message() -> None:
    kernel, worker = multiprocessing.Pipe()
    messages = [
        protocol.Log("hello\n", 1.5),
        protocol.Ready(12.5, None),
        protocol.Ready(3.0, {"errorType": "Runtime.ImportModuleError", "errorMessage": "no"}),
        protocol.Invoke("req-1", '{"a": 1}', 99.0, "arn:aws:lambda:us-east-1:123456789012:function:f"),
        protocol.Result(True, '{"ok": true}', 2048),
    ]
    for message in messages:
        protocol.send(kernel, message)
        assert protocol.receive(worker) == message
    worker.send(("Stop",))
    with pytest.raises(ValueError, match="unknown frame"):
        protocol.receive(kernel)


def test_arns_are_parsed_once() -> None:
    arn = Arn.parse("arn:aws:sqs:eu-west-1:210987654321:taskQueue-alice")
    assert (arn.service, arn.region, arn.account, arn.name) == ("sqs", "eu-west-1", "210987654321", "taskQueue-alice")
    assert str(arn) == sqs_queue_arn("eu-west-1", "210987654321", "taskQueue-alice")
    assert Arn.parse("arn:aws:lambda:us-east-1:123456789012:function:create_task").name == "create_task"
    assert Arn.parse("arn:aws:logs:us-east-1:1:log-group:/aws/lambda/f:*").resource == "log-group:/aws/lambda/f:*"
    assert is_sqs_queue(str(arn)) and not is_sqs_queue("arn:aws:dynamodb:us-east-1:1:table/t")
    with pytest.raises(ValueError, match="not an ARN"):
        Arn.parse("taskQueue")


def test_stopping_mid_invocation_ends_the_running_container(aws: Aws) -> None:
    """The runtime's stop ends invocations in flight: a container running one must not outlive it."""
    source = """
        import time
        from recorder import record

        def handler(event, context):
            record("running")
            time.sleep(8)
    """
    aws.function("still-running", source, timeout=10)
    caller = threading.Thread(target=lambda: aws.invoke("still-running"), daemon=True)
    caller.start()
    poll(lambda: (aws.out_dir / "records.jsonl").exists(), timeout=10)
    assert psutil.Process().children()
    offline.stop()
    assert not psutil.Process().children(), "a container running an invocation outlived the runtime"
    caller.join(10)
    assert not caller.is_alive(), "the invocation in flight did not end with the runtime"


def test_a_stopped_runtime_leaves_nothing_behind(aws: Aws) -> None:
    url, arn = aws.queue("leftover-check")
    poller = {"Effect": "Allow", "Action": ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"]}
    role = aws.role("leftover-role", {**poller, "Resource": arn})
    aws.function("leftover", "def handler(event, context):\n    return None\n", role=role)
    aws.lambda_.create_event_source_mapping(EventSourceArn=arn, FunctionName="leftover", BatchSize=1)
    aws.sqs.send_message(QueueUrl=url, MessageBody="x")
    rt = offline.current()
    rt.wait_idle(10)
    code_root = rt.functions.pools._code_root
    assert psutil.Process().children() and code_root.exists()
    offline.stop()
    assert not psutil.Process().children(), "worker processes outlived the runtime"
    assert not code_root.exists(), "the extracted code outlived the runtime"
    names = [t.name for t in threading.enumerate()]
    assert not [n for n in names if n.startswith(("esm-", "sqs-depth", "lambda-event"))], names
    assert rt.pollers.results == {} and rt.iam._issued == {}
    with pytest.raises(RuntimeError, match="not started"):
        offline.current()
