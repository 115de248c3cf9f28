"""The seam layer: the only code in ``taskflow`` that imports moto.

One module per AWS service (plus ``core``) holds everything the offline runtime knows about moto's internals:
the replacements it installs (``Patch`` records), the internals it reads or calls (``Read`` records), and the
views it hands the rest of the runtime (``taskflow.offline.model``). moto is pinned exactly because of this
layer; after an upgrade, ``check()`` (run at every start, and by ``tests/offline/test_seams.py``) names each
record that moved.

    installation = seams.install(handlers)   # every patch applied, or none (MotoSeamError)
    installation.uninstall()                 # moto exactly as it was
"""

from __future__ import annotations

from typing import Any

from taskflow.offline.seams import (
    apigateway,
    awslambda,
    cloudwatch,
    core,
    dynamodb,
    iam,
    logs,
    request_environ,
    sqs,
    sqs_redrive,
)
from taskflow.offline.seams.records import PINNED_MOTO, Installation, MotoSeamError, Patch, Read, Record, resolve
from taskflow.offline.seams.records import check as _check

PATCHES: tuple[Patch, ...] = (
    *core.PATCHES,
    *awslambda.PATCHES,
    *apigateway.PATCHES,
    *sqs.PATCHES,
    *sqs_redrive.PATCHES,
    *dynamodb.PATCHES,
    *iam.PATCHES,
    *logs.PATCHES,
    *cloudwatch.PATCHES,
)
READS: tuple[Read, ...] = (
    *core.READS,
    *awslambda.READS,
    *apigateway.READS,
    *sqs.READS,
    *sqs_redrive.READS,
    *dynamodb.READS,
    *iam.READS,
    *logs.READS,
    *cloudwatch.READS,
    *request_environ.READS,
)
RECORDS: tuple[Record, ...] = (*PATCHES, *READS)


def check() -> None:
    """Resolve every record as the installer does; raise MotoSeamError naming the first that moved."""
    _check(RECORDS)


def install(handlers: Any) -> Installation:
    """Apply every patch, calling back into ``handlers`` (a ``taskflow.offline.model.Handlers``); all or none."""
    installation = Installation(PATCHES, handlers)
    installation.install()
    return installation


__all__ = [
    "PATCHES",
    "PINNED_MOTO",
    "READS",
    "RECORDS",
    "Installation",
    "MotoSeamError",
    "Patch",
    "Read",
    "apigateway",
    "awslambda",
    "check",
    "cloudwatch",
    "core",
    "dynamodb",
    "iam",
    "install",
    "logs",
    "resolve",
    "sqs",
    "sqs_redrive",
]
