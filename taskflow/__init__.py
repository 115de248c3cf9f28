"""Plumbing for the Taskflow workshop notebooks: choosing a target, naming, packaging, polling.

The boto3 calls that build each resource live in the notebooks, where a learner reads them.
"""

from taskflow.naming import Names, tags_for
from taskflow.target import Target, TargetError, connect

__all__ = ["Names", "Target", "TargetError", "connect", "tags_for"]
