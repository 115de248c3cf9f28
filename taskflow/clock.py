"""The pace of a notebook's own waits: AWS's seconds on AWS, compressed offline under AWS weather.

Offline with ``WORKSHOP_WEATHER=aws`` (or ``crowded``) the offline account runs AWS's delays and quotas
``taskflow.offline.weather.SPEEDUP`` times faster; ``taskflow.connect()`` sets the same pace here, so a cell that
polls every 3 s, or waits out a 30 s quota, does so in step with the account it talks to. Timeouts are not
compressed: they bound waits that run in real time offline too (visibility timeouts, for one).
"""

from __future__ import annotations

import time

_speedup = 1.0  # set by taskflow.connect(): 1 on AWS and in calm offline weather


def set_speedup(speedup: float) -> None:
    global _speedup
    _speedup = max(1.0, float(speedup))


def compressed() -> bool:
    """Do AWS's delays run faster here (offline) than on AWS?"""
    return _speedup > 1


def seconds(aws_seconds: float) -> float:
    """How long ``aws_seconds`` of AWS's time takes here."""
    return aws_seconds / _speedup


def sleep(aws_seconds: float) -> None:
    """Wait ``aws_seconds`` of AWS's time."""
    time.sleep(seconds(aws_seconds))
