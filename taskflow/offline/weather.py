"""AWS weather: the delays, sampling, quotas and eventual consistency a real (shared) account shows.

Offline, by default (``WORKSHOP_WEATHER`` unset or ``calm``), every call is answered at once and exactly: good
for a first run, but kinder than AWS. ``WORKSHOP_WEATHER=aws`` makes the offline account behave as AWS
documents it does: short polls sample, metrics and logs arrive late and not together, IAM changes take a
moment to apply, a deleted queue's name stays taken, approximate counts lag, API Gateway's control plane
throttles and Lambda's concurrency is limited. ``WORKSHOP_WEATHER=crowded`` adds what a class shares: other
learners' resources in every list and a new account's concurrency quota.

AWS's delays run ``SPEEDUP`` times faster here (a minute takes three seconds), so that a notebook still runs
in minutes; ``taskflow.clock`` gives a notebook's own polling and back-off the same pace. Each behaviour, the
AWS documentation it follows and its offline figures are in ``docs/offline-fidelity.md``.
"""

from __future__ import annotations

import contextlib
import heapq
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from taskflow.offline.errors import AwsError

log = logging.getLogger("taskflow.offline.weather")
SETTING = "WORKSHOP_WEATHER"
KINDS = ("calm", "aws", "crowded")
SPEEDUP = 20.0  # AWS seconds per offline second, for every delay and quota modelled


class WeatherError(ValueError):
    """``WORKSHOP_WEATHER`` names no weather this runtime knows."""


def aws_seconds(seconds: float) -> float:
    """An AWS duration on the offline clock."""
    return seconds / SPEEDUP


@dataclass(frozen=True)
class Quota:
    """A token bucket: ``rate`` requests per AWS second, up to ``burst`` at once."""

    rate: float
    burst: int


@dataclass(frozen=True)
class Forecast:
    """What the weather does; every duration is in offline seconds (AWS's, compressed by SPEEDUP)."""

    kind: str = "calm"
    seed: int = 0
    log_delay: tuple[float, float] = (0.0, 0.0)
    metric_delay: dict[str, tuple[float, float]] = field(default_factory=dict)  # by namespace; "*": others
    iam_delay: tuple[float, float] = (0.0, 0.0)
    move_task_start: tuple[float, float] = (0.0, 0.0)  # a DLQ redrive task's start (AWS gives no figure)
    queue_name_reuse: float = 0.0  # after DeleteQueue, CreateQueue of the name is refused this long
    count_lag: float = 0.0  # ApproximateNumberOf* may be this old
    short_poll_share: float = 1.0  # of a small queue's visible messages, the share a short poll's servers hold
    empty_log_page: float = 0.0  # chance that a FilterLogEvents search's first page is empty (with nextToken)
    quotas: dict[str, Quota] = field(default_factory=dict)  # "apigateway:DeleteRestApi", "apigateway:*"...
    contention: float = 0.0  # chance that a classmate took the token just before us
    concurrency: int | None = None  # the account's concurrent executions (None: not limited)
    initial_pollers: int | None = None  # SQS mapping pollers without ScalingConfig (None: the runtime's own)
    crowded: bool = False

    @property
    def calm(self) -> bool:
        return self.kind == "calm"


def _aws() -> Forecast:
    s = aws_seconds
    return Forecast(
        kind="aws",
        log_delay=(s(1.0), s(5.0)),
        metric_delay={"AWS/Lambda": (s(60), s(180)), "AWS/SQS": (s(60), s(300)), "*": (s(10), s(60))},
        iam_delay=(s(2.0), s(10.0)),
        move_task_start=(s(5.0), s(20.0)),
        queue_name_reuse=s(60),
        count_lag=s(60),
        short_poll_share=0.5,
        empty_log_page=0.5,
        quotas={
            "apigateway:DeleteRestApi": Quota(1 / 30, 1),
            "apigateway:CreateRestApi": Quota(1 / 3, 1),
            "apigateway:CreateDeployment": Quota(1 / 5, 1),
            "apigateway:GetResources": Quota(5 / 2, 5),
            "apigateway:*": Quota(10, 40),
        },
        concurrency=1000,
        initial_pollers=5,
    )


def forecast(kind: str | None = None, seed: int | None = None) -> Forecast:
    """The forecast ``WORKSHOP_WEATHER`` asks for (``kind`` overrides it); raises WeatherError for a typo."""
    raw = (kind if kind is not None else os.environ.get(SETTING, "")).strip().lower() or "calm"
    if raw not in KINDS:
        raise WeatherError(f"{SETTING}={raw!r} is not a weather the offline AWS knows: use {', '.join(KINDS)}.")
    chosen = int(os.environ.get("WORKSHOP_WEATHER_SEED", "0")) if seed is None else seed
    if raw == "calm":
        return Forecast(seed=chosen)
    base = _aws()
    if raw == "aws":
        return Forecast(**{**base.__dict__, "seed": chosen})
    return Forecast(
        **{**base.__dict__, "kind": "crowded", "seed": chosen, "contention": 0.5, "concurrency": 10, "crowded": True}
    )


class Bucket:
    """One quota's tokens, refilled at ``rate`` per AWS second (on the offline clock)."""

    def __init__(self, quota: Quota) -> None:
        self.quota = quota
        self.tokens = float(quota.burst)
        self.at = time.monotonic()

    def ready(self) -> bool:
        """Refill for the time passed; is there a token to take?"""
        now = time.monotonic()
        self.tokens = min(self.quota.burst, self.tokens + (now - self.at) * self.quota.rate * SPEEDUP)
        self.at = now
        return self.tokens >= 1

    def take(self) -> bool:
        if self.ready():
            self.tokens -= 1
            return True
        return False


class Weather:
    """The weather's state while the runtime runs: its random draws, quotas, and deliveries still on their way."""

    def __init__(self, forecast: Forecast) -> None:
        self.forecast = forecast
        self._random = random.Random(forecast.seed)
        self._lock = threading.Lock()
        self._buckets = {name: Bucket(q) for name, q in forecast.quotas.items()}
        self._counts: dict[tuple[str, str], tuple[float, dict[str, str]]] = {}
        self._deleted: dict[tuple[str, str], float] = {}
        self._pending: list[tuple[float, int, Callable[[], None]]] = []
        self._order = 0
        self._wake = threading.Condition(self._lock)
        self._halt = False
        self._suspended = False
        self._courier: threading.Thread | None = None

    @property
    def calm(self) -> bool:
        return self.forecast.calm or self._suspended

    @contextlib.contextmanager
    def suspended(self) -> Iterator[None]:
        """Calm for a block: while the crowded account is set up, as it was long before the class began."""
        self._suspended = True
        try:
            yield
        finally:
            self._suspended = False

    # -- random draws ---------------------------------------------------------------------------------------

    def uniform(self, bounds: tuple[float, float]) -> float:
        with self._lock:
            return self._random.uniform(*bounds)

    def chance(self, probability: float) -> bool:
        if probability <= 0:
            return False
        with self._lock:
            return self._random.random() < probability

    def binomial(self, n: int, p: float) -> int:
        with self._lock:
            return sum(1 for _ in range(n) if self._random.random() < p)

    # -- quotas ---------------------------------------------------------------------------------------------

    def admitted(self, action: str) -> bool:
        """Take a token for ``action`` (``service:Operation``) from its own quota and its service's overall one."""
        if self.calm:
            return True
        service = action.split(":", 1)[0]
        buckets = [b for name in (action, f"{service}:*") if (b := self._buckets.get(name)) is not None]
        if not buckets:
            return True
        with self._lock:
            if self.forecast.contention and self._random.random() < self.forecast.contention:
                for bucket in buckets:  # a classmate's call took the token just before ours
                    bucket.take()
            if not all(bucket.ready() for bucket in buckets):
                return False  # a refused call spends no token
            for bucket in buckets:
                bucket.take()
            return True

    # -- what each service's weather decides --------------------------------------------------------------

    def admit(self, service: str, action: str) -> None:
        """A control-plane call: AwsError TooManyRequestsException (HTTP 429) when its quota is spent."""
        if not self.admitted(f"{service}:{action}"):
            raise AwsError("TooManyRequestsException", "Too Many Requests", 429)

    def short_poll(self, wanted: int, visible: int) -> int:
        """How many messages a short poll returns: a small queue's messages are spread over servers, and a
        short poll asks only some of them (with 1,000 or more visible, enough are on every server)."""
        if self.calm or visible >= 1000:
            return wanted
        return min(wanted, self.binomial(visible, self.forecast.short_poll_share))

    def queue_counts(self, region: str, queue: str, counts: dict[str, str]) -> dict[str, str]:
        """Approximate counts as a client reads them: the same answer for ``count_lag`` after each refresh."""
        if self.calm or not self.forecast.count_lag:
            return counts
        now = time.monotonic()
        with self._lock:
            seen = self._counts.get((region, queue))
            if seen is None or now - seen[0] >= self.forecast.count_lag:
                self._counts[(region, queue)] = (now, dict(counts))
                return counts
        return {name: seen[1].get(name, value) for name, value in counts.items()}

    def queue_deleted(self, region: str, queue: str) -> None:
        if not self.calm:
            with self._lock:
                self._deleted[(region, queue)] = time.monotonic()
                self._counts.pop((region, queue), None)

    def creating_queue(self, region: str, queue: str) -> None:
        """CreateQueue within 60 s (AWS's) of deleting a queue of that name is refused."""
        with self._lock:
            deleted = self._deleted.get((region, queue))
        if deleted is not None and time.monotonic() - deleted < self.forecast.queue_name_reuse:
            raise AwsError(
                "QueueDeletedRecently",
                "You must wait 60 seconds after deleting a queue before you can create another with the same name.",
                400,
                query_code="AWS.SimpleQueueService.QueueDeletedRecently;Sender",
            )

    def empty_log_page(self) -> bool:
        """Does this FilterLogEvents search stop, time-boxed, before its first match?"""
        return not self.calm and self.chance(self.forecast.empty_log_page)

    def delay(self, bounds: tuple[float, float]) -> float:
        return 0.0 if self.calm else self.uniform(bounds)

    def metric_delay(self, namespace: str) -> float:
        delays = self.forecast.metric_delay
        return self.delay(delays.get(namespace) or delays.get("*") or (0.0, 0.0))

    # -- late deliveries ------------------------------------------------------------------------------------

    def later(self, delay: float, deliver: Callable[[], None]) -> None:
        """Run ``deliver`` after ``delay`` seconds, in order of due time (at once when there is no delay)."""
        if delay <= 0:
            deliver()
            return
        with self._wake:
            if self._courier is None:
                self._courier = threading.Thread(target=self._deliver, daemon=True, name="weather-courier")
                self._courier.start()
            self._order += 1
            heapq.heappush(self._pending, (time.monotonic() + delay, self._order, deliver))
            self._wake.notify()

    @property
    def in_transit(self) -> int:
        with self._lock:
            return len(self._pending)

    def _deliver(self) -> None:
        while True:
            with self._wake:
                while not self._halt and (not self._pending or self._pending[0][0] > time.monotonic()):
                    timeout = self._pending[0][0] - time.monotonic() if self._pending else None
                    self._wake.wait(timeout)
                if self._halt:
                    return
                _, _, deliver = heapq.heappop(self._pending)
            try:
                deliver()
            except Exception:
                log.exception("a delayed delivery failed")

    def stop(self) -> None:
        """Drop whatever is still on its way (the account is going away with it)."""
        with self._wake:
            self._halt = True
            self._pending.clear()
            self._wake.notify_all()
        if self._courier is not None:
            self._courier.join(5)
