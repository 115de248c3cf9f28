"""The errors the offline runtime answers AWS requests with, independent of moto's exception classes.

The runtime raises ``AwsError``; the seam layer turns it into the error moto serialises, so a client sees
the code, message and HTTP status the AWS service would send.
"""

from __future__ import annotations


class AwsError(Exception):
    """An AWS error response: ``code`` (e.g. ``AccessDenied``), ``message``, HTTP ``status``.

    ``query_code`` is the query-API code SQS's JSON protocol also sends (``x-amzn-query-error``), when it has one.
    """

    def __init__(self, code: str, message: str, status: int = 400, *, query_code: str | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.query_code = query_code
