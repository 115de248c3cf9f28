"""Amazon Resource Names: parse one, or build the SQS queue ARN that SQS would report."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Arn:
    """``arn:partition:service:region:account:resource``; ``resource`` keeps any further colons."""

    partition: str
    service: str
    region: str
    account: str
    resource: str

    @classmethod
    def parse(cls, text: str) -> Arn:
        parts = text.split(":", 5)
        if len(parts) != 6 or parts[0] != "arn":
            raise ValueError(f"not an ARN: {text!r}")
        return cls(*parts[1:])

    @property
    def name(self) -> str:
        """The resource's own name: the part after the last ``:`` or ``/`` (a queue's or a function's name)."""
        return self.resource.replace("/", ":").rsplit(":", 1)[-1]

    def __str__(self) -> str:
        return f"arn:{self.partition}:{self.service}:{self.region}:{self.account}:{self.resource}"


def sqs_queue_arn(region: str, account: str, name: str, partition: str = "aws") -> str:
    """The ARN of queue ``name``: SQS ARNs name the queue directly, with no resource type."""
    return str(Arn(partition, "sqs", region, account, name))


def is_sqs_queue(arn: str) -> bool:
    return arn.startswith("arn:") and arn.split(":")[2:3] == ["sqs"]
