"""Shared fixtures: every test starts with no target connected and leaves the environment as it found it."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from taskflow import offline, target


@pytest.fixture
def fresh_target() -> Iterator[None]:
    """Forget any connected target and restore os.environ afterwards (connect() edits it)."""
    saved = dict(os.environ)
    target._reset_for_tests()
    try:
        yield
    finally:
        target._reset_for_tests()
        offline.stop()
        os.environ.clear()
        os.environ.update(saved)
