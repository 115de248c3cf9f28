"""Declared points where tests and benchmarks may perturb or observe the offline runtime; all no-ops here.

The runtime holds one ``Hooks`` (``Runtime.hooks``) and calls it at these points only. ``faults`` replaces it to
inject failures; a benchmark replaces it to time stages. Production code never imports either of them.
"""

from __future__ import annotations

from typing import Any

from taskflow.offline.model import SignedRequest


class Hooks:
    """The default hooks: change nothing, record nothing."""

    def before_call(self, function: str, request: SignedRequest) -> None:
        """A function's AWS call, after IAM allowed it: raise AwsError to fail it as the service would."""

    def crash_after(self, function: str) -> int | None:
        """Before an invocation of ``function``: kill its worker after this many log lines (None: do not)."""
        return None

    def crash_done(self, function: str, happened: bool) -> None:
        """After an invocation that ``crash_after`` chose: whether the crash happened."""

    def deliveries(self, function: str) -> int:
        """How many times the poller delivers the next batch of ``function`` (more than once: a duplicate)."""
        return 1

    def timing(self, stage: str, ms: float, **details: Any) -> None:
        """A stage took ``ms`` milliseconds. Stages and their details:

        * ``"api.request"``: one request to a stage URL, end to end; ``invoke_ms``, the part spent in the
          function's invocation (as ``lambda.invoke`` times it).
        * ``"lambda.invoke"``: one synchronous invocation, a cold start included; ``function``, ``cold``.
        * ``"aws.call"``: one AWS call a function's worker sent over its link, answered in the kernel; ``cpu_ms``,
          the kernel thread's CPU time for it, and ``answered`` (False: the worker sends it over HTTP instead).
        * ``"sqs.batch"``: one poller pass that invoked the function; ``function``, ``invoke_ms`` (its invocations),
          and ``waits_ms``, each record's time from sent to first received.
        """
