"""Shared by the tests that run notebooks in their own kernels."""

from __future__ import annotations

import os


def kernel_env(learner: str = "", weather: str = "calm") -> dict[str, str]:
    """The test's environment for a notebook kernel: offline, as ``learner`` (empty: no suffix), in ``weather``
    (``WORKSHOP_WEATHER``), with no endpoints."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT_URL") and k != "AWS_PROFILE"}
    return {**env, "WORKSHOP_TARGET": "offline", "WORKSHOP_LEARNER": learner, "WORKSHOP_WEATHER": weather}
