"""Lambda execution offline: deployed code, environment, context, warm workers, timeouts, crashes, errors."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from taskflow.offline import worker_process
from taskflow.offline.runtime import Runtime
from taskflow.polling import WaitTimeout

from .conftest import ACCOUNT, REGION, Aws, poll, zip_source

PID = """
import os

def handler(event, context):
    return {"pid": os.getpid(), "greeting": os.environ.get("GREETING")}
"""


def test_code_runs_from_the_deployed_zip_not_the_working_tree(
    aws: Aws, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A module of the same name next to the test, and the repo's own package, must not be importable.
    (tmp_path / "app.py").write_text("def handler(event, context):\n    return 'working tree'\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    source = """
    import importlib.util
    import os

    def handler(event, context):
        return {
            "file": __file__,
            "task_root": os.environ["LAMBDA_TASK_ROOT"],
            "cwd": os.getcwd(),
            "taskflow_importable": importlib.util.find_spec("taskflow") is not None,
            "helper": open(os.path.join(os.environ["LAMBDA_TASK_ROOT"], "data.txt")).read(),
        }
    """
    aws.function("fromzip", source, files={"data.txt": "shipped in the zip"})
    _, payload = aws.invoke("fromzip")
    assert payload["file"] == os.path.join(payload["task_root"], "app.py")
    assert payload["cwd"] == payload["task_root"]
    assert not payload["file"].startswith(str(tmp_path))
    assert payload["helper"] == "shipped in the zip"
    assert payload["taskflow_importable"] is False


def test_handler_setting_picks_module_and_function(aws: Aws) -> None:
    files = {"pkg/__init__.py": "", "pkg/tasks.py": "def create(event, context):\n    return 'created'\n"}
    aws.function(
        "nested", "def handler(event, context):\n    return 'wrong one'\n", handler="pkg.tasks.create", files=files
    )
    assert aws.invoke("nested")[1] == "created"


def test_environment_and_runtime_variables(aws: Aws) -> None:
    source = """
    import os

    def handler(event, context):
        return dict(os.environ)
    """
    arn = aws.function("envfn", source, env={"TABLE_NAME": "tasks", "GREETING": "hi"}, memory=256)
    _, env = aws.invoke("envfn")
    assert env["TABLE_NAME"] == "tasks" and env["GREETING"] == "hi"
    assert env["AWS_REGION"] == REGION and env["AWS_DEFAULT_REGION"] == REGION
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "envfn"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
    assert env["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST"
    assert env["AWS_LAMBDA_LOG_GROUP_NAME"] == "/aws/lambda/envfn"
    assert env["AWS_LAMBDA_LOG_STREAM_NAME"].split("/")[3].startswith("[$LATEST]")
    assert env["_HANDLER"] == "app.handler"
    assert env["AWS_EXECUTION_ENV"].startswith("AWS_Lambda_python")
    # Role credentials, as Lambda provides them; never the notebook's own.
    assert env["AWS_SESSION_TOKEN"] and env["AWS_ACCESS_KEY_ID"] != "testing"
    assert arn.endswith(":function:envfn")


def test_notebook_environment_does_not_leak_into_the_function(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTEBOOK_SECRET", "do-not-share")
    source = """
    import os

    def handler(event, context):
        return os.environ.get("NOTEBOOK_SECRET")
    """
    aws.function("noleak", source)
    assert aws.invoke("noleak")[1] is None
    assert os.environ["NOTEBOOK_SECRET"] == "do-not-share"


def test_context_object(aws: Aws) -> None:
    source = """
    def handler(event, context):
        return {
            "aws_request_id": context.aws_request_id,
            "function_name": context.function_name,
            "function_version": context.function_version,
            "invoked_function_arn": context.invoked_function_arn,
            "memory_limit_in_mb": int(context.memory_limit_in_mb),
            "log_group_name": context.log_group_name,
            "log_stream_name": context.log_stream_name,
            "remaining": context.get_remaining_time_in_millis(),
        }
    """
    arn = aws.function("ctxfn", source, timeout=7, memory=512)
    response, ctx = aws.invoke("ctxfn", LogType="Tail")
    assert ctx["function_name"] == "ctxfn" and ctx["function_version"] == "$LATEST"
    assert ctx["invoked_function_arn"] == arn == f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:ctxfn"
    assert ctx["memory_limit_in_mb"] == 512
    assert ctx["log_group_name"] == "/aws/lambda/ctxfn"
    assert ctx["log_stream_name"].startswith(time.strftime("%Y/%m/%d/[$LATEST]", time.gmtime()))
    assert 6000 < ctx["remaining"] <= 7000
    assert f"START RequestId: {ctx['aws_request_id']} Version: $LATEST" in aws.log_tail(response)
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert response["ExecutedVersion"] == "$LATEST"


def test_warm_worker_is_reused_and_module_state_survives(aws: Aws) -> None:
    source = """
    import os
    COUNT = 0

    def handler(event, context):
        global COUNT
        COUNT += 1
        return {"pid": os.getpid(), "count": COUNT}
    """
    aws.function("warm", source)
    results = [aws.invoke("warm")[1] for _ in range(3)]
    assert len({r["pid"] for r in results}) == 1
    assert [r["count"] for r in results] == [1, 2, 3]
    assert results[0]["pid"] != os.getpid()


def test_update_function_code_starts_a_new_worker_with_the_new_code(aws: Aws) -> None:
    aws.function("redeploy", PID)
    before = aws.invoke("redeploy")[1]
    new_source = PID.replace('"greeting"', '"version": 2, "greeting"')
    aws.lambda_.update_function_code(FunctionName="redeploy", ZipFile=zip_source({"app.py": new_source}))
    after = aws.invoke("redeploy")[1]
    assert after["version"] == 2 and "version" not in before
    assert after["pid"] != before["pid"]
    assert aws.invoke("redeploy")[1]["pid"] == after["pid"]  # and that one is warm in turn


def test_redeploying_identical_code_or_recreating_the_function_starts_a_new_worker(aws: Aws) -> None:
    aws.function("same", PID)
    first = aws.invoke("same")[1]["pid"]
    sha = aws.lambda_.get_function(FunctionName="same")["Configuration"]["CodeSha256"]
    aws.lambda_.update_function_code(FunctionName="same", ZipFile=zip_source(aws.files(PID)))
    assert aws.lambda_.get_function(FunctionName="same")["Configuration"]["CodeSha256"] == sha
    second = aws.invoke("same")[1]["pid"]
    assert second != first
    role = aws.lambda_.get_function(FunctionName="same")["Configuration"]["Role"]
    aws.lambda_.delete_function(FunctionName="same")
    aws.function("same", PID, role=role)
    assert aws.invoke("same")[1]["pid"] not in (first, second)


def test_update_function_configuration_starts_a_new_worker(aws: Aws) -> None:
    aws.function("reconfig", PID, env={"GREETING": "hello"})
    before = aws.invoke("reconfig")[1]
    aws.lambda_.update_function_configuration(FunctionName="reconfig", Environment={"Variables": {"GREETING": "hej"}})
    after = aws.invoke("reconfig")[1]
    assert (before["greeting"], after["greeting"]) == ("hello", "hej")
    assert after["pid"] != before["pid"]
    aws.lambda_.update_function_configuration(FunctionName="reconfig", Timeout=5)
    assert aws.invoke("reconfig")[1]["pid"] != after["pid"]


def test_old_worker_process_is_gone_after_redeploy(aws: Aws) -> None:
    aws.function("retire", PID)
    old_pid = aws.invoke("retire")[1]["pid"]
    aws.lambda_.update_function_configuration(FunctionName="retire", MemorySize=256)
    aws.invoke("retire")
    with pytest.raises(ProcessLookupError):
        os.kill(old_pid, 0)


def test_timeout_kills_the_worker_and_fails_the_invocation(aws: Aws) -> None:
    source = """
    import os
    from recorder import record

    def handler(event, context):
        record(os.getpid())
        if event.get("hang"):
            while True:
                pass
        return "done"
    """
    aws.function("slow", source, timeout=1)
    started = time.monotonic()
    response, payload = aws.invoke("slow", {"hang": True}, LogType="Tail")
    elapsed = time.monotonic() - started
    assert 1.0 <= elapsed < 3.0
    assert response["FunctionError"] == "Unhandled"
    assert "Task timed out after 1.00 seconds" in payload["errorMessage"]
    assert "Task timed out after 1.00 seconds" in aws.log_tail(response)
    hung_pid = aws.records()[0]
    with pytest.raises(ProcessLookupError):
        os.kill(hung_pid, 0)
    # The next invocation gets a fresh worker and succeeds.
    response, payload = aws.invoke("slow")
    assert payload == "done" and "FunctionError" not in response
    assert aws.records()[1] != hung_pid


def test_os_exit_in_handler_cannot_take_the_caller_down(aws: Aws) -> None:
    source = """
    import os

    def handler(event, context):
        if event.get("exit"):
            os._exit(3)
        return os.getpid()
    """
    aws.function("crash", source)
    first_pid = aws.invoke("crash")[1]
    response, payload = aws.invoke("crash", {"exit": True}, LogType="Tail")
    assert response["FunctionError"] == "Unhandled"
    assert payload["errorType"] == "Runtime.ExitError"
    assert "exit status 3" in payload["errorMessage"]
    second_pid = aws.invoke("crash")[1]
    assert second_pid not in (first_pid, os.getpid())


def test_infinite_loop_at_import_time_is_bounded_by_the_timeout(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> None:
    # Lambda allows 10 s of init, then retries it under the function's Timeout; shortened here.
    monkeypatch.setattr(worker_process, "INIT_TIMEOUT", 0.5)
    source = """
    while True:
        pass

    def handler(event, context):
        return "never"
    """
    aws.function("initloop", source, timeout=1)
    started = time.monotonic()
    response, payload = aws.invoke("initloop")
    assert 1.5 <= time.monotonic() - started < 4.0
    assert response["FunctionError"] == "Unhandled"
    assert payload["errorType"] == "Sandbox.Timedout"
    assert payload["errorMessage"].endswith("Task timed out after 1.00 seconds")


def test_exit_at_import_time_is_a_function_error(aws: Aws) -> None:
    aws.function("initexit", "import os\nos._exit(7)\n\ndef handler(event, context):\n    return 1\n")
    response, payload = aws.invoke("initexit")
    assert response["FunctionError"] == "Unhandled"
    assert payload["errorType"] == "Runtime.ExitError"


def test_import_error_is_reported_like_lambda(aws: Aws) -> None:
    aws.function("badimport", "import not_a_module_anywhere\n\ndef handler(event, context):\n    return 1\n")
    response, payload = aws.invoke("badimport")
    assert response["FunctionError"] == "Unhandled"
    assert payload["errorType"] == "Runtime.ImportModuleError"
    assert payload["errorMessage"].startswith("Unable to import module 'app'")


def test_unhandled_exception_payload(aws: Aws) -> None:
    source = """
    class TaskNotFound(Exception):
        pass

    def lookup(task_id):
        raise TaskNotFound(f"no task {task_id}")

    def handler(event, context):
        return lookup(event["id"])
    """
    aws.function("raises", source)
    response, payload = aws.invoke("raises", {"id": "t-1"}, LogType="Tail")
    assert response["StatusCode"] == 200 and response["FunctionError"] == "Unhandled"
    assert payload["errorMessage"] == "no task t-1"
    assert payload["errorType"] == "TaskNotFound"
    assert isinstance(payload["stackTrace"], list) and payload["stackTrace"]
    assert "in handler" in payload["stackTrace"][0] and "in lookup" in payload["stackTrace"][-1]
    assert not any("worker.py" in frame for frame in payload["stackTrace"])
    tail = aws.log_tail(response)
    assert "[ERROR] TaskNotFound: no task t-1" in tail and "Traceback (most recent call last):" in tail


def test_unserializable_result_is_a_marshal_error(aws: Aws) -> None:
    aws.function("marshal", "def handler(event, context):\n    return {1, 2}\n")
    response, payload = aws.invoke("marshal")
    assert response["FunctionError"] == "Unhandled"
    assert payload["errorType"] == "Runtime.MarshalError"


def test_invalid_json_payload_is_rejected(aws: Aws) -> None:
    aws.function("json", PID)
    with pytest.raises(aws.lambda_.exceptions.InvalidRequestContentException):
        aws.lambda_.invoke(FunctionName="json", Payload=b"{not json")


def test_event_invocation_returns_202_and_runs_in_background(aws: Aws, rt: Runtime) -> None:
    source = """
    import time
    from recorder import record

    def handler(event, context):
        time.sleep(0.3)
        record({"done": event["n"]})
        return "ignored"
    """
    aws.function("async", source)
    started = time.monotonic()
    response = aws.lambda_.invoke(FunctionName="async", InvocationType="Event", Payload=json.dumps({"n": 1}))
    assert time.monotonic() - started < 0.3  # answered before the handler finished
    assert response["StatusCode"] == 202
    assert response["Payload"].read() == b""
    rt.wait_idle(10)
    assert aws.records() == [{"done": 1}]


def test_dry_run_checks_without_running(aws: Aws) -> None:
    aws.function("dry", "from recorder import record\n\ndef handler(event, context):\n    record(1)\n")
    response = aws.lambda_.invoke(FunctionName="dry", InvocationType="DryRun")
    assert response["StatusCode"] == 204
    assert aws.records() == []


def test_print_and_logging_stay_out_of_the_notebook(aws: Aws, capfd: pytest.CaptureFixture[str]) -> None:
    source = """
    import logging
    import sys

    logging.getLogger().setLevel(logging.INFO)

    def handler(event, context):
        print("printed by the handler")
        print("to stderr", file=sys.stderr)
        logging.info("logged by the handler")
        return "ok"
    """
    aws.function("quiet", source)
    response, _ = aws.invoke("quiet", LogType="Tail")
    captured = capfd.readouterr()
    assert "handler" not in captured.out + captured.err
    tail = aws.log_tail(response)
    assert "printed by the handler" in tail and "to stderr" in tail
    assert "[INFO]" in tail and "logged by the handler" in tail


def test_concurrent_invocations_use_separate_workers(aws: Aws) -> None:
    from concurrent.futures import ThreadPoolExecutor

    source = """
    import os
    import time

    def handler(event, context):
        time.sleep(0.5)
        return os.getpid()
    """
    aws.function("parallel", source)
    aws.invoke("parallel")  # one warm worker; the second concurrent call must start another
    with ThreadPoolExecutor(2) as pool:
        pids = list(pool.map(lambda _: aws.invoke("parallel")[1], range(2)))
    assert len(set(pids)) == 2


def test_poll_helper_is_bounded() -> None:
    with pytest.raises(WaitTimeout, match=r"after 0\.1 s waiting for the condition under test"):
        poll(lambda: False, timeout=0.1)
