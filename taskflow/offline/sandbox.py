"""What a worker's Python can see, as in a Lambda Python runtime: the deployed code, the SDK, the standard library.

On AWS the ``python3.13`` runtime puts ``/var/task`` (the zip, read-only) first on ``sys.path``, then the runtime's
own directory with boto3, botocore and their dependencies, then the standard library; nothing else is installed.
Offline, ``runtime_dir`` builds that runtime directory once per runtime from symbolic links to the packages the
kernel's environment already has (the pinned boto3), so a function cannot import the rest of the learner's venv;
``make_read_only`` makes an extracted zip unwritable, and ``remove_tree`` deletes it again.
"""

from __future__ import annotations

import os
import shutil
import stat
from importlib import metadata
from pathlib import Path

# What the Lambda Python runtime provides besides the standard library: the SDK and what it depends on.
RUNTIME_DISTRIBUTIONS = ("boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "urllib3", "six")


def _top_level(dist: metadata.Distribution) -> list[Path]:
    """The importable packages and modules a distribution installed, and its ``.dist-info`` directory."""
    found = {
        Path(dist.locate_file(file.parts[0]))
        for file in dist.files or ()
        if file.parts[0] not in {"..", "bin", "__pycache__"} and not file.parts[0].endswith(".pth")
    }
    return sorted(p for p in found if p.exists())


def runtime_dir(root: Path) -> Path:
    """Build ``root`` (LAMBDA_RUNTIME_DIR offline): links to the runtime's distributions, nothing else."""
    root.mkdir(parents=True, exist_ok=True)
    for name in RUNTIME_DISTRIBUTIONS:
        for target in _top_level(metadata.distribution(name)):
            link = root / target.name
            if not link.exists():
                link.symlink_to(target, target_is_directory=target.is_dir())
    return root


def make_read_only(root: Path) -> None:
    """Take write permission away from everything under ``root`` (Lambda's /var/task is a read-only file system)."""
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            path = os.path.join(dirpath, name)
            os.chmod(path, stat.S_IMODE(os.lstat(path).st_mode) & ~0o222)
    for dirpath, _, _ in sorted(os.walk(root), key=lambda entry: -len(entry[0])):
        os.chmod(dirpath, stat.S_IMODE(os.stat(dirpath).st_mode) & ~0o222)


def remove_tree(root: Path) -> None:
    """Delete ``root`` even where ``make_read_only`` took write permission away."""
    if not root.exists():
        return
    for dirpath, _, _ in os.walk(root):
        os.chmod(dirpath, stat.S_IMODE(os.stat(dirpath).st_mode) | stat.S_IWUSR | stat.S_IXUSR | stat.S_IRUSR)
    shutil.rmtree(root, ignore_errors=True)
