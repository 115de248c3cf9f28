"""Package a Lambda function from ``lambdas/`` into the zip that ``create_function`` deploys.

Each zip holds the function's own ``lambda_function.py`` (plus any other ``.py`` in its folder) and the
shared module ``lambdas/shared/taskflow_shared.py``, all at the top level, so the handler is
``lambda_function.lambda_handler`` and ``import taskflow_shared`` works inside Lambda.

The archive is deterministic: sorted entries, fixed timestamps and permissions, LF line endings, stored
uncompressed (a few kilobytes). The same source therefore gives the same bytes on any machine, and
``code_sha256`` gives the ``CodeSha256`` that Lambda reports for them (to check what is deployed).
"""

from __future__ import annotations

import base64
import hashlib
import io
import zipfile
from pathlib import Path

LAMBDAS_DIR = Path(__file__).resolve().parents[1] / "lambdas"
SHARED_MODULE = LAMBDAS_DIR / "shared" / "taskflow_shared.py"
HANDLER_FILE = "lambda_function.py"
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can carry
_FILE_MODE = 0o100644  # a regular file, rw-r--r--


def available_functions(lambdas_dir: Path = LAMBDAS_DIR) -> list[str]:
    """The folder names under ``lambdas/`` that hold a deployable function (a ``lambda_function.py``)."""
    return sorted(p.parent.name for p in lambdas_dir.glob(f"*/{HANDLER_FILE}"))


def zip_entries(function_dir_name: str, lambdas_dir: Path = LAMBDAS_DIR) -> dict[str, bytes]:
    """The files that go into a function's zip, by archive name, with line endings normalised to LF."""
    folder = lambdas_dir / function_dir_name
    if not (folder / HANDLER_FILE).is_file():
        known = ", ".join(available_functions(lambdas_dir)) or "none"
        raise ValueError(
            f"No function {function_dir_name!r} in {lambdas_dir}: expected {folder / HANDLER_FILE}. "
            f"Known functions: {known}."
        )
    shared = lambdas_dir / "shared" / SHARED_MODULE.name
    files = {p.name: p for p in folder.glob("*.py")}
    if shared.name in files:
        raise ValueError(f"{folder / shared.name} would shadow the shared module: rename it.")
    files[shared.name] = shared
    return {name: files[name].read_bytes().replace(b"\r\n", b"\n") for name in sorted(files)}


def build_zip(function_dir_name: str, lambdas_dir: Path = LAMBDAS_DIR) -> bytes:
    """Zip ``lambdas/<function_dir_name>/`` with the shared module, byte-for-byte reproducibly.

    ``function_dir_name`` is a folder under ``lambdas/``, e.g. ``"create_task_direct"`` (Day 1),
    ``"create_task"`` or ``"process_task"``. Returns the zip's bytes, ready for ``Code={"ZipFile": ...}``.
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in zip_entries(function_dir_name, lambdas_dir).items():
            info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
            info.compress_type = zipfile.ZIP_STORED  # no zlib: its output can differ between zlib builds
            info.create_system = 3  # Unix, whatever the machine building it, so the mode below is honoured
            info.external_attr = _FILE_MODE << 16
            archive.writestr(info, data)
    return buffer.getvalue()


def code_sha256(zip_bytes: bytes) -> str:
    """The ``CodeSha256`` Lambda reports for this zip (base64 of its SHA-256), to compare with a deployed one."""
    return base64.b64encode(hashlib.sha256(zip_bytes).digest()).decode()


__all__ = ["LAMBDAS_DIR", "available_functions", "build_zip", "code_sha256", "zip_entries"]
