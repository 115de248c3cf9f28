"""The offline account: one id, one region, one partition, for the runtime, ``taskflow.connect()`` and the tests.

The id is moto's default account (its backends answer requests signed with any test credentials there);
``seams`` checks at start that moto still uses it.
"""

from __future__ import annotations

ACCOUNT_ID = "123456789012"
REGION = "us-east-1"
PARTITION = "aws"
