"""The process a Lambda function's code runs in offline: one per warm "container".

Started by ``taskflow.offline.functions`` as ``python -I worker.py`` with the function's
environment, it imports the handler from the deployed code directory (init phase), then serves
invocations one at a time over a ``multiprocessing.connection`` link. Everything the handler prints
or logs is streamed back as it happens, so nothing is lost if the process is killed on a timeout.
It imports only the standard library itself (and ``protocol.py``, by path); the handler brings boto3, as on Lambda.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import logging
import os
import sys
import threading
import time
import traceback
from multiprocessing.connection import Client
from pathlib import Path
from typing import Any


def _load_protocol() -> Any:
    """The message definitions shared with the kernel, loaded from beside this file before imports are isolated."""
    spec = importlib.util.spec_from_file_location("_taskflow_worker_protocol", Path(__file__).with_name("protocol.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # registered before it runs, as the import system does
    spec.loader.exec_module(module)
    return module


protocol = _load_protocol()
_conn: Any = None
_request_id = ""


class _Stream:
    """Stand-in for stdout/stderr: sends each complete line to the parent as a log frame."""

    def __init__(self) -> None:
        self._buffer = ""

    def write(self, text: str) -> int:
        self._buffer += text
        if "\n" in self._buffer:
            head, _, self._buffer = self._buffer.rpartition("\n")
            protocol.send(_conn, protocol.Log(head + "\n", time.time()))
        return len(text)

    def flush(self) -> None:
        if self._buffer:
            text, self._buffer = self._buffer, ""
            protocol.send(_conn, protocol.Log(text, time.time()))

    def isatty(self) -> bool:
        return False

    @property
    def encoding(self) -> str:
        return "utf-8"


class _LambdaFormatter(logging.Formatter):
    """The Python runtime's text log format: ``[LEVEL]\\t<time>Z\\t<request id>\\t<message>``."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        text = f"[{record.levelname}]\t{stamp}.{int(record.msecs):03d}Z\t{_request_id}\t{record.getMessage()}"
        if record.exc_info:
            text += "\n" + "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        return text


class Context:
    """The context object a Python handler receives on Lambda."""

    def __init__(self, request_id: str, deadline: float) -> None:
        env = os.environ
        self.aws_request_id = request_id
        self.function_name = env["AWS_LAMBDA_FUNCTION_NAME"]
        self.function_version = env["AWS_LAMBDA_FUNCTION_VERSION"]
        self.invoked_function_arn = env["TASKFLOW_FUNCTION_ARN"]
        self.memory_limit_in_mb = env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"]
        self.log_group_name = env["AWS_LAMBDA_LOG_GROUP_NAME"]
        self.log_stream_name = env["AWS_LAMBDA_LOG_STREAM_NAME"]
        self.identity = None
        self.client_context = None
        self._deadline = deadline

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.time()) * 1000))


def _error(exc: BaseException, error_type: str | None = None) -> dict[str, Any]:
    # Leave out this bootstrap's own frames: the trace starts in the function's code, as on Lambda.
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename != __file__]
    return {
        "errorMessage": str(exc),
        "errorType": error_type or type(exc).__name__,
        "requestId": _request_id,
        "stackTrace": [line for line in traceback.format_list(frames)],
    }


def _log_error(err: dict[str, Any]) -> None:
    stack = "".join(err["stackTrace"]).rstrip("\n")
    head = f"[ERROR] {err['errorType']}: {err['errorMessage']}"
    sys.stdout.write(f"{head}\nTraceback (most recent call last):\n{stack}\n")  # one write: one log event
    sys.stdout.flush()


def _isolate_imports(code_dir: str) -> None:
    """Make the deployed code the only project code importable, as in a Lambda container."""
    repo_root = str(Path(__file__).resolve().parents[2])
    sys.path[:] = [code_dir] + [
        p for p in sys.path if p and os.path.abspath(p) != repo_root and "__editable__" not in p
    ]
    # An editable install maps the repo's packages with a finder on sys.meta_path: a class, not an
    # instance, so look at the module that defines it (``__editable___<dist>_finder``).
    sys.meta_path[:] = [f for f in sys.meta_path if "__editable__" not in getattr(f, "__module__", "")]
    os.chdir(code_dir)


def _load_handler(spec: str) -> tuple[Any, dict[str, Any] | None]:
    module_name, _, func_name = spec.rpartition(".")
    try:
        module = importlib.import_module(module_name.replace("/", "."))
    except Exception as exc:  # noqa: BLE001 - reported to the caller as Lambda does
        err = _error(exc, "Runtime.ImportModuleError")
        err["errorMessage"] = f"Unable to import module '{module_name}': {exc}"
        if not isinstance(exc, ImportError):
            err["errorType"] = "Runtime.UserCodeSyntaxError" if isinstance(exc, SyntaxError) else err["errorType"]
        return None, err
    handler = getattr(module, func_name, None)
    if handler is None:
        return None, {
            "errorMessage": f"Handler '{func_name}' missing on module '{module_name}'",
            "errorType": "Runtime.HandlerNotFound",
            "requestId": "",
            "stackTrace": [],
        }
    return handler, None


def _max_rss_kb() -> int:
    """Peak resident memory of this process in KiB (0 where the platform does not say).

    On Linux, VmHWM from /proc is read first: ``ru_maxrss`` survives exec, so a worker forked from a
    large kernel would otherwise report the kernel's peak rather than its own.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    try:
        import resource
    except ImportError:  # Windows
        return 0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak


def _exit_with_parent(interval: float = 0.5) -> None:
    """Die with the kernel: a handler stuck in a loop must not outlive the process that started it.

    An idle worker notices the closed link, but one running a handler would spin on as an orphan.
    """
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(interval)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, daemon=True, name="exit-with-parent").start()


def main() -> None:
    global _conn, _request_id
    host, port = os.environ.pop(protocol.ADDRESS_ENV).rsplit(":", 1)
    authkey = bytes.fromhex(os.environ.pop(protocol.AUTHKEY_ENV))
    _conn = Client((host, int(port)), authkey=authkey)
    _exit_with_parent()
    protocol.no_delay(_conn)
    sys.stdout = _Stream()  # type: ignore[assignment]
    sys.stderr = _Stream()  # type: ignore[assignment]
    root = logging.getLogger()
    handler_ = logging.StreamHandler(sys.stdout)
    handler_.setFormatter(_LambdaFormatter())
    root.addHandler(handler_)
    root.setLevel(os.environ.get("AWS_LAMBDA_LOG_LEVEL", "WARNING"))

    started = time.perf_counter()
    _isolate_imports(os.environ["LAMBDA_TASK_ROOT"])
    handler, init_error = _load_handler(os.environ["_HANDLER"])
    sys.stdout.flush()
    protocol.send(_conn, protocol.Ready((time.perf_counter() - started) * 1000, init_error))

    while True:
        try:
            invoke = protocol.receive(_conn)
        except EOFError:
            return  # the kernel closed the link: this container is being retired
        request_id, payload, deadline = invoke.request_id, invoke.payload, invoke.deadline
        _request_id = request_id
        ok, result = True, None
        try:
            if init_error is not None:
                raise RuntimeError(init_error["errorMessage"])
            event = json.loads(payload)
            response = handler(event, Context(request_id, deadline))
            try:
                result = json.dumps(response)
            except (TypeError, ValueError) as exc:
                ok, result = (
                    False,
                    {
                        "errorMessage": f"Unable to marshal response: {exc}",
                        "errorType": "Runtime.MarshalError",
                        "requestId": request_id,
                        "stackTrace": [],
                    },
                )
        except Exception as exc:  # noqa: BLE001 - an unhandled error, reported as Lambda does
            ok, result = False, (init_error or _error(exc))
            _log_error(result)
        sys.stdout.flush()
        sys.stderr.flush()
        max_rss_kb = _max_rss_kb()
        protocol.send(_conn, protocol.Result(ok, result, max_rss_kb))


if __name__ == "__main__":
    main()
