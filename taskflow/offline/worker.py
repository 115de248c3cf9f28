"""The process a Lambda function's code runs in offline: one per warm "container".

Started by ``taskflow.offline.worker_process`` as ``python -I -S worker.py`` (no site-packages) with the
function's environment, it puts the deployed code (LAMBDA_TASK_ROOT) first on ``sys.path`` and the runtime's
SDK directory (LAMBDA_RUNTIME_DIR, see ``sandbox``) after it, as the Lambda Python runtime does, imports the
handler (init phase), then serves invocations one at a time over a ``multiprocessing.connection`` link.
Everything the handler prints or logs is streamed back as it happens, so nothing is lost if the process is
killed on a timeout. The function's boto3 calls go to the kernel over the same link (``_SdkLink`` adds a
botocore ``before-send`` handler). Results, errors and the context object follow the runtime's bootstrap
(awslambdaric).
It imports only the standard library itself, and ``protocol.py`` by path under a name function code would
not import, so the function sees nothing of taskflow; the handler brings boto3, as on Lambda.
"""

from __future__ import annotations

import decimal
import errno
import importlib
import importlib.machinery
import importlib.util
import io
import itertools
import json
import logging
import os
import queue
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
_link: Any = None  # the _Link to the kernel
_request_id = ""


class _Link:
    """The worker's end of its link: frames go out whole from any thread (the handler's threads print and call
    AWS too), and one reader thread hands each incoming frame to whoever waits for it."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.open = True
        self.owner = os.getpid()  # a process forked by the handler inherits the link but not its reader
        self.invokes: queue.SimpleQueue[Any] = queue.SimpleQueue()  # Invoke frames; None once the link closed
        self._send_lock = threading.Lock()
        self._pending: dict[int, queue.SimpleQueue[Any]] = {}  # call id -> where its Reply goes
        self._pending_lock = threading.Lock()
        self._ids = itertools.count(1)

    def send(self, message: Any) -> None:
        with self._send_lock:
            protocol.send(self.conn, message)

    def read(self) -> None:
        """The reader thread: invocations go to the main loop, each reply to the thread that made the call."""
        try:
            while True:
                message = protocol.receive(self.conn)
                if isinstance(message, protocol.Reply):
                    with self._pending_lock:
                        slot = self._pending.pop(message.call_id, None)
                    if slot is not None:
                        slot.put(message)
                else:
                    self.invokes.put(message)
        except (EOFError, OSError, ValueError):
            pass  # the kernel closed the link (this container is retired), or it broke
        finally:
            with self._pending_lock:
                self.open = False
                waiting = list(self._pending.values())
                self._pending.clear()
            self.invokes.put(None)
            for slot in waiting:
                slot.put(None)

    def call(self, method: str, url: str, headers: list[tuple[str, str]], body: bytes) -> Any:
        """Send one AWS request and wait for its Reply (None if the link closed first)."""
        call_id = next(self._ids)
        slot: queue.SimpleQueue[Any] = queue.SimpleQueue()
        with self._pending_lock:
            if not self.open:
                return None
            self._pending[call_id] = slot
        try:
            self.send(protocol.Call(call_id, method, url, headers, body))
        except OSError:
            with self._pending_lock:
                self._pending.pop(call_id, None)
            return None
        return slot.get()


class _Stream:
    """Stand-in for stdout/stderr: sends each complete line to the parent as a log frame."""

    def __init__(self) -> None:
        self._buffer = ""

    def write(self, text: str) -> int:
        self._buffer += text
        if "\n" in self._buffer:
            head, _, self._buffer = self._buffer.rpartition("\n")
            _link.send(protocol.Log(head + "\n", time.time()))
        return len(text)

    def flush(self) -> None:
        if self._buffer:
            text, self._buffer = self._buffer, ""
            _link.send(protocol.Log(text, time.time()))

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


class CognitoIdentity:
    """``context.identity``: the runtime always passes one; both ids are None unless a mobile SDK sent them."""

    __slots__ = ("cognito_identity_id", "cognito_identity_pool_id")

    def __init__(self) -> None:
        self.cognito_identity_id = None
        self.cognito_identity_pool_id = None

    def __repr__(self) -> str:
        return (
            f"CognitoIdentity([cognito_identity_id={self.cognito_identity_id},"
            f"cognito_identity_pool_id={self.cognito_identity_pool_id}])"
        )


class Context:
    """The context object a Python handler receives on Lambda (awslambdaric's ``LambdaContext``).

    As there, ``memory_limit_in_mb`` and ``function_version`` are the strings of the runtime's variables.
    """

    def __init__(self, request_id: str, deadline: float, invoked_arn: str) -> None:
        env = os.environ
        self.aws_request_id = request_id
        self.log_group_name = env.get("AWS_LAMBDA_LOG_GROUP_NAME")
        self.log_stream_name = env.get("AWS_LAMBDA_LOG_STREAM_NAME")
        self.function_name = env.get("AWS_LAMBDA_FUNCTION_NAME")
        self.memory_limit_in_mb = env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        self.function_version = env.get("AWS_LAMBDA_FUNCTION_VERSION")
        self.invoked_function_arn = invoked_arn
        self.tenant_id = None
        self.client_context = None
        self.identity = CognitoIdentity()
        self._deadline_ms = int(deadline * 1000)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - int(time.time() * 1000))

    def log(self, msg: object) -> None:
        sys.stdout.write(str(msg))

    def __repr__(self) -> str:
        fields = ("aws_request_id", "log_group_name", "log_stream_name", "function_name", "memory_limit_in_mb")
        more = ("function_version", "invoked_function_arn", "client_context", "identity", "tenant_id")
        return "LambdaContext([" + ",".join(f"{name}={getattr(self, name)}" for name in fields + more) + "])"


def _error(exc: BaseException, error_type: str | None = None) -> dict[str, Any]:
    # Leave out this bootstrap's own frames: the trace starts in the function's code, as on Lambda.
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename != __file__]
    return {
        "errorMessage": str(exc),
        "errorType": error_type or type(exc).__name__,
        "requestId": _request_id,
        "stackTrace": [line for line in traceback.format_list(frames)],
    }


def _fault(error_type: str, message: str, trace: list[str] | None = None, request_id: str = "") -> dict[str, Any]:
    """The runtime's own error payload (its FaultException): no trace unless it gives one."""
    return {"errorMessage": message, "errorType": error_type, "requestId": request_id, "stackTrace": trace or []}


def _log_error(err: dict[str, Any]) -> None:
    """The runtime's ``[ERROR]`` entry: type, message, then the trace indented with no-break spaces, one event."""
    lines = [f"[ERROR] {err['errorType']}: {err['errorMessage']}", "Traceback (most recent call last):"]
    for element in err["stackTrace"]:
        for line in element.splitlines():
            stripped = line.lstrip(" ")
            lines.append("\u00a0" * (len(line) - len(stripped)) + stripped)
    sys.stdout.write("\n".join(lines) + "\n")  # one write: one log event
    sys.stdout.flush()


def _isolate_imports(code_dir: str, runtime_dir: str) -> None:
    """Make the deployed code, then PYTHONPATH, then the runtime's SDK, then the standard library importable.

    Started with ``-I -S``, ``sys.path`` holds only the standard library; a function's own PYTHONPATH (which
    ``-I`` ignores) comes after the code, as on Lambda.
    """
    extra = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    sys.path[:] = [code_dir, *extra, runtime_dir, *sys.path]
    os.chdir(code_dir)


# Audit events that write to a path, and which of their arguments are paths written.
_WRITES = {
    "os.mkdir": (0,),
    "os.remove": (0,),
    "os.rmdir": (0,),
    "os.rename": (0, 1),
    "os.symlink": (1,),
    "os.link": (1,),
    "os.truncate": (0,),
    "os.chmod": (0,),
    "os.chown": (0,),
    "os.utime": (0,),
}
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


def _read_only(root: str) -> None:
    """Refuse writes under ``root`` from Python code with EROFS, as Lambda's read-only /var/task does.

    The directory is also read-only on disk (``sandbox.make_read_only``), which stops native code and other
    processes too, except for root, whom permissions do not stop: this hook stops Python code for everyone.
    """
    roots = {os.path.abspath(root), os.path.realpath(root)}  # a path may name it either way (macOS's /tmp)
    prefixes = tuple(r + os.sep for r in roots)

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event == "open":
            path, mode, flags = args
            writes = any(c in mode for c in "wax+") if isinstance(mode, str) else bool((flags or 0) & _WRITE_FLAGS)
            paths: tuple[Any, ...] = (path,) if writes else ()
        elif event in _WRITES:
            paths = tuple(args[i] for i in _WRITES[event])
        else:
            return
        for path in paths:
            if isinstance(path, int) or path is None:
                continue
            full = os.path.abspath(os.fsdecode(path))
            if full in roots or full.startswith(prefixes):
                raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fsdecode(path))

    sys.addaudithook(hook)


def _load_handler(spec: str) -> tuple[Any, dict[str, Any] | None]:
    """Import the handler as awslambdaric's ``_get_handler`` does, with the same error types and messages."""
    try:
        module_name, func_name = spec.rsplit(".", 1)
    except ValueError as exc:
        return None, _fault("Runtime.MalformedHandlerName", f"Bad handler '{spec}': {exc}")
    try:
        if module_name.split(".")[0] in sys.builtin_module_names:
            message = f"Cannot use built-in module {module_name} as a handler module"
            return None, _fault("Runtime.BuiltInModuleConflict", message)
        module = importlib.import_module(module_name.replace("/", "."))
    except ImportError as exc:
        return None, _fault("Runtime.ImportModuleError", f"Unable to import module '{module_name}': {exc}")
    except SyntaxError as exc:
        trace = [f'  File "{exc.filename}" Line {exc.lineno}\n    {exc.text}']
        message = f"Syntax error in module '{module_name}': {exc}"
        return None, _fault("Runtime.UserCodeSyntaxError", message, trace)
    except Exception as exc:  # noqa: BLE001 - module-level code raised: reported with its own type, as on Lambda
        return None, _error(exc)
    try:
        return getattr(module, func_name), None
    except AttributeError:
        return None, _fault("Runtime.HandlerNotFound", f"Handler '{func_name}' missing on module '{module_name}'")


_PLACEHOLDER = os.urandom(8).hex()  # no returned string could contain it by chance


class _Encoder(json.JSONEncoder):
    """The runtime's marshaller: a Decimal (what DynamoDB reads give) is written as a JSON number, text unescaped.

    awslambdaric uses simplejson and writes ``str(decimal)`` raw; the standard library cannot, so each Decimal
    becomes a unique placeholder string that ``_marshal`` swaps for the number's text.
    """

    def __init__(self) -> None:
        super().__init__(ensure_ascii=False)  # as the runtime does for python3.12 and later
        self.numbers: dict[str, str] = {}

    def default(self, o: Any) -> Any:
        if isinstance(o, decimal.Decimal):
            if o.is_nan():
                return float("nan")
            placeholder = f"\x00{_PLACEHOLDER}:{len(self.numbers)}"
            self.numbers[json.dumps(placeholder)] = str(o)
            return placeholder
        return super().default(o)


def _marshal(response: Any) -> str | bytes:
    """The response body: bytes as they are, anything else as JSON (TypeError/ValueError if it cannot be)."""
    if isinstance(response, bytes):
        return response
    encoder = _Encoder()
    text = encoder.encode(response)
    for placeholder, number in encoder.numbers.items():
        text = text.replace(placeholder, number)
    return text


# Calls that wait on purpose (a long poll, another function's whole invocation) keep to HTTP, where each has a
# server thread of its own: a worker's link answers its calls one at a time.
_OVER_HTTP = frozenset({"sqs.ReceiveMessage", "lambda.Invoke", "lambda.InvokeAsync", "lambda.InvokeWithResponseStream"})


class _Body(io.BytesIO):
    """A reply's body as botocore reads a response: whole, or streamed in chunks."""

    def stream(self, **kwargs: Any) -> Any:
        chunk = self.read()
        while chunk:
            yield chunk
            chunk = self.read()


def _aws_call(request: Any, event_name: str = "", **kwargs: Any) -> Any:
    """botocore's ``before-send``: carry the signed request over the link and return the kernel's answer.

    Returns None (botocore then sends the request over HTTP to AWS_ENDPOINT_URL, as before) for calls that may
    wait, unsigned requests, bodies that are streams, calls from a process the handler forked, or when the kernel
    says it does not answer that service.
    """
    operation = event_name.split(".", 1)[-1]
    body = request.body
    if (
        not _link.open
        or _link.owner != os.getpid()
        or operation in _OVER_HTTP
        or "Authorization" not in request.headers
    ):
        return None
    if body is None:
        data = b""
    elif isinstance(body, bytes | bytearray):
        data = bytes(body)
    elif isinstance(body, str):
        data = body.encode("utf-8")
    else:
        return None
    headers = [(k, v.decode("latin-1") if isinstance(v, bytes) else str(v)) for k, v in request.headers.items()]
    reply = _link.call(request.method, request.url, headers, data)
    if reply is None or reply.status == 0:
        return None
    from botocore.awsrequest import AWSResponse  # loaded already: botocore is what called us

    return AWSResponse(request.url, reply.status, reply.headers, _Body(reply.body))


class _SdkLink:
    """An import hook: as ``botocore.handlers`` is imported, add ``_aws_call`` to its built-in handlers.

    Every botocore session registers those on each client it creates, so all the function's clients send their
    calls over the link; moto's in-process mock hooks botocore the same way. Nothing else is imported early.
    """

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != "botocore.handlers":
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if spec is None or spec.loader is None:
            return spec
        load = spec.loader.exec_module

        def exec_module(module: Any) -> None:
            load(module)
            module.BUILTIN_HANDLERS.append(("before-send", _aws_call))

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def _trace_id() -> str:
    """A fresh X-Ray trace header, as Lambda sets ``_X_AMZN_TRACE_ID`` for each invocation (not sampled)."""
    return f"Root=1-{int(time.time()):08x}-{os.urandom(12).hex()};Parent={os.urandom(8).hex()};Sampled=0"


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
    global _link, _request_id
    host, port = os.environ.pop(protocol.ADDRESS_ENV).rsplit(":", 1)
    authkey = bytes.fromhex(os.environ.pop(protocol.AUTHKEY_ENV))
    conn = Client((host, int(port)), authkey=authkey)
    _exit_with_parent()
    protocol.no_delay(conn)
    _link = _Link(conn)
    threading.Thread(target=_link.read, daemon=True, name="link-reader").start()
    sys.stdout = _Stream()  # type: ignore[assignment]
    sys.stderr = _Stream()  # type: ignore[assignment]
    root = logging.getLogger()
    handler_ = logging.StreamHandler(sys.stdout)
    handler_.setFormatter(_LambdaFormatter())
    root.addHandler(handler_)
    root.setLevel(os.environ.get("AWS_LAMBDA_LOG_LEVEL", "WARNING"))

    started = time.perf_counter()
    _isolate_imports(os.environ["LAMBDA_TASK_ROOT"], os.environ["LAMBDA_RUNTIME_DIR"])
    sys.meta_path.insert(0, _SdkLink())
    _read_only(os.environ["LAMBDA_TASK_ROOT"])
    handler, init_error = _load_handler(os.environ["_HANDLER"])
    if init_error is not None:
        _log_error(init_error)  # the init phase's own entry; each invocation logs it again, as Lambda retries init
    sys.stdout.flush()
    _link.send(protocol.Ready((time.perf_counter() - started) * 1000, init_error))

    while True:
        invoke = _link.invokes.get()
        if invoke is None:
            return  # the kernel closed the link: this container is being retired
        request_id, payload, deadline = invoke.request_id, invoke.payload, invoke.deadline
        _request_id = request_id
        os.environ["_X_AMZN_TRACE_ID"] = _trace_id()
        ok, result = True, None
        try:
            if init_error is not None:
                raise RuntimeError(init_error["errorMessage"])
            event = json.loads(payload)
            response = handler(event, Context(request_id, deadline, invoke.invoked_arn))
            try:
                result = _marshal(response)
            except (TypeError, ValueError, RecursionError) as exc:
                ok, result = (
                    False,
                    _fault("Runtime.MarshalError", f"Unable to marshal response: {exc}", None, request_id),
                )
                _log_error(result)
        except Exception as exc:  # noqa: BLE001 - an unhandled error, reported as Lambda does
            ok, result = False, (init_error or _error(exc))
            _log_error(result)
        sys.stdout.flush()
        sys.stderr.flush()
        max_rss_kb = _max_rss_kb()
        _link.send(protocol.Result(ok, result, max_rss_kb))


if __name__ == "__main__":
    main()
