"""The offline account from a terminal: the commands that point the AWS CLI and ``curl`` at a running kernel.

The runtime's loopback server (``Runtime.endpoint_url``) shares the kernel's state, so an ``aws`` or ``curl``
process reaches the same account and the same APIs. Its requests are the learner's own calls: signed with keys
no function was given, they are not confined by any role. The commands carry the endpoint and dummy keys, so
nothing they send can act on a real account.
"""

from __future__ import annotations

import re

from taskflow.offline.account import REGION

DUMMY_KEY = "testing"  # what connect() sets for the kernel; no real account accepts it
STAGE_URL = re.compile(r"^https://([a-z0-9]+)\.execute-api\.[a-z0-9-]+\.amazonaws\.com/([^/?#]+)(/[^#]*)?$")


def loopback_url(endpoint_url: str, api_url: str) -> str:
    """The loopback server's URL for a stage URL: ``https://{id}.execute-api.{region}.amazonaws.com/{stage}/task``
    becomes ``{endpoint_url}/restapis/{id}/{stage}/_user_request_/task``."""
    match = STAGE_URL.match(api_url)
    if match is None:
        raise ValueError(
            f"{api_url!r} is not a REST API stage URL (https://{{api_id}}.execute-api.{{region}}.amazonaws.com/"
            "{stage}/...)"
        )
    api_id, stage, path = match.groups()
    return f"{endpoint_url}/restapis/{api_id}/{stage}/_user_request_{path or '/'}"


def environment(endpoint_url: str) -> dict[str, str]:
    """The variables a terminal needs for the offline account: its endpoint, dummy keys, its region."""
    return {
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_ACCESS_KEY_ID": DUMMY_KEY,
        "AWS_SECRET_ACCESS_KEY": DUMMY_KEY,
        "AWS_DEFAULT_REGION": REGION,
    }


def commands(endpoint_url: str, api_url: str | None = None) -> list[str]:
    """The lines ``taskflow.offline.terminal()`` prints: the exports, an ``aws`` call, and a ``curl`` to the API.

    The ``aws`` line names ``--endpoint-url`` itself: AWS CLI v1 sends ``sqs`` commands to queue.amazonaws.com
    unless it is given, whatever ``AWS_ENDPOINT_URL`` says.
    """
    exports = " ".join(f"{name}={value}" for name, value in environment(endpoint_url).items())
    lines = [
        "From a terminal (bash or zsh), while this kernel runs; the port changes when the kernel restarts:",
        f"  export {exports}",
        f"  aws --endpoint-url {endpoint_url} sts get-caller-identity",
    ]
    if api_url is not None:
        lines.append(
            f"  curl -sS -X POST {loopback_url(endpoint_url, api_url)} -H 'Content-Type: application/json' "
            """-d '{"title": "Sent with curl"}'"""
        )
    return lines
