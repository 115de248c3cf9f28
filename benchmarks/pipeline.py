"""The whole offline pipeline (issue 7): tasks per second end to end, against a floor of the same moto calls.

Run ``.venv/bin/python -m benchmarks.pipeline [--tasks 1000] [--clients 8]`` from the repository's root
(``make bench`` runs it).

Pipeline: ``--clients`` threads POST ``--tasks`` tasks to API Gateway (``requests``, as a notebook does) ->
create_task (worker process) -> SQS -> the event source mapping's pollers -> process_task (worker process) ->
DynamoDB; the clock stops when the table holds all of them (DescribeTable ItemCount, then a scan checks the
ids). The stack is the workshop's own (the real zips and policies), built by ``tests/support/stack.py`` as the
proof suites build it. Stage times come from the runtime's timing hook (``taskflow.offline.hooks``).

Floor: the moto calls the pipeline cannot avoid, made directly by one boto3 client with no Lambda, API or
poller in between: per task one ``send_message`` and one conditional ``put_item``, per ten tasks one
``receive_message`` of 10 and one ``delete_message_batch``. Measured in-process (how the notebook's own
clients reach moto, and function workers' calls once they arrive over their link) and over the loopback server
(HTTP: how workers reached moto before they had the link, and still do for long polls).

Also printed: where the pipeline's time goes (per stage, and the kernel process's CPU: user and system time,
and the share spent answering the functions' AWS calls), the warm invoke overhead, and peak memory (resident set)
of the kernel process and of the worker processes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
for _key in [k for k in os.environ if k.startswith("AWS_ENDPOINT_URL")] + ["AWS_PROFILE", "AWS_SESSION_TOKEN"]:
    os.environ.pop(_key, None)

ROOT = Path(__file__).resolve().parents[1]

import boto3  # noqa: E402 - after the environment is set
import psutil  # noqa: E402

from benchmarks.offline_runtime import TIMED, package, role, warm_overhead  # noqa: E402
from taskflow import offline  # noqa: E402
from taskflow.offline.account import REGION  # noqa: E402
from taskflow.offline.hooks import Hooks  # noqa: E402
from taskflow.polling import wait_until  # noqa: E402
from tests.support.stack import Stack  # noqa: E402


def task_body(index: int) -> dict[str, Any]:
    """What a client POSTs: the same shape and size for the pipeline and the floor."""
    return {"title": f"Benchmark task {index}", "description": "Measure the offline pipeline.", "priority": "normal"}


def message_body(index: int) -> str:
    """The message create_task queues for a task (see lambdas/shared ``new_task``)."""
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    return json.dumps(
        {
            "task_id": str(uuid.uuid4()),
            **task_body(index),
            "created_at": now,
            "request_id": str(uuid.uuid4()),
            "schema_version": 1,
        }
    )


def item_for(body: str, message_id: str) -> dict[str, Any]:
    """The item process_task writes for a message (see lambdas/process_task)."""
    task = json.loads(body)
    item = {**task, "status": "PROCESSED", "processed_at": task["created_at"], "latency_ms": 1, "attempts": 1}
    item["message_id"] = message_id
    return {
        k: ({"N": str(v)} if isinstance(v, int) and not isinstance(v, bool) else {"S": str(v)}) for k, v in item.items()
    }


# --- the floor ---------------------------------------------------------------------------------------------


def floor_calls(sqs: Any, ddb: Any, queue_url: str, table: str, bodies: list[str]) -> float:
    """Make the pipeline's unavoidable moto calls for ``bodies`` in sequence; return the seconds taken."""
    started = time.perf_counter()
    for start in range(0, len(bodies), 10):
        for body in bodies[start : start + 10]:
            sqs.send_message(QueueUrl=queue_url, MessageBody=body)
        received = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, AttributeNames=["All"])["Messages"]
        for message in received:
            ddb.put_item(
                TableName=table,
                Item=item_for(message["Body"], message["MessageId"]),
                ConditionExpression="attribute_not_exists(task_id)",
            )
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(received)],
        )
    return time.perf_counter() - started


def floor_client() -> None:
    """``--floor-client``: the floor over HTTP, from a process of its own as a function worker would be."""
    job = json.loads(sys.stdin.read())
    sqs = boto3.client("sqs", region_name=REGION, endpoint_url=job["endpoint_url"])
    ddb = boto3.client("dynamodb", region_name=REGION, endpoint_url=job["endpoint_url"])
    sqs.get_queue_attributes(QueueUrl=job["queue_url"], AttributeNames=["QueueArn"])  # connect, load models
    ddb.describe_table(TableName=job["table"])
    print(floor_calls(sqs, ddb, job["queue_url"], job["table"], job["bodies"]))


def floor(tasks: int, endpoint_url: str | None) -> float:
    """Tasks per second for the pipeline's unavoidable moto calls, made in sequence by one client.

    In-process the client is this process's, as a notebook's; over HTTP it is a process of its own that
    reaches the loopback server, as a function worker does.
    """
    sqs, ddb = boto3.client("sqs", region_name=REGION), boto3.client("dynamodb", region_name=REGION)
    suffix = "http" if endpoint_url else "inproc"
    queue_url = sqs.create_queue(QueueName=f"floor-{suffix}", Attributes={"VisibilityTimeout": "30"})["QueueUrl"]
    table = f"floor-{suffix}"
    ddb.create_table(
        TableName=table,
        AttributeDefinitions=[{"AttributeName": "task_id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "task_id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    bodies = [message_body(i) for i in range(tasks)]
    if endpoint_url is None:
        ddb.describe_table(TableName=table)
        elapsed = floor_calls(sqs, ddb, queue_url, table, bodies)
    else:
        job = {"endpoint_url": endpoint_url, "queue_url": queue_url, "table": table, "bodies": bodies}
        client = subprocess.run(
            [sys.executable, "-m", "benchmarks.pipeline", "--floor-client"],
            cwd=ROOT,
            input=json.dumps(job),
            capture_output=True,
            text=True,
            check=True,
        )
        elapsed = float(client.stdout.strip().splitlines()[-1])
    stored = ddb.describe_table(TableName=table)["Table"]["ItemCount"]
    if stored != tasks:
        raise SystemExit(f"floor: expected {tasks} items, found {stored}")
    return tasks / elapsed


# --- instrumenting the pipeline ----------------------------------------------------------------------------


@dataclass
class Stages:
    """Wall-clock samples (ms) of each stage, as the runtime's timing hook reports them.

    A request is answered in its client's thread, so the client's own share is its ``requests.post`` time
    minus the ``api.request`` time the hook reported in that thread.
    """

    client_ms: list[float] = field(default_factory=list)  # requests.post minus the proxy: requests + routing
    proxy_ms: list[float] = field(default_factory=list)  # api.request minus the create_task invoke
    create_ms: list[float] = field(default_factory=list)  # lambda.invoke of create_task
    process_ms: list[float] = field(default_factory=list)  # lambda.invoke of process_task, per batch
    poller_ms: list[float] = field(default_factory=list)  # sqs.batch minus its invoke: receive + delete
    waits_ms: list[float] = field(default_factory=list)  # per message: sent -> first received
    calls_ms: list[float] = field(default_factory=list)  # aws.call: a function's AWS call, answered in the kernel
    calls_cpu_ms: list[float] = field(default_factory=list)  # the kernel CPU time each of those took
    batch_sizes: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    local: threading.local = field(default_factory=threading.local)


class StageTimings(Hooks):
    """The runtime's hooks, recording each stage's time into ``stages``."""

    def __init__(self, stages: Stages, create_function: str, process_function: str) -> None:
        self.stages = stages
        self.create_function = create_function
        self.process_function = process_function

    def timing(self, stage: str, ms: float, **details: Any) -> None:
        s = self.stages
        with s.lock:
            if stage == "api.request":
                s.local.handle_ms = ms
                s.proxy_ms.append(ms - details["invoke_ms"])
            elif stage == "lambda.invoke" and details["function"] == self.create_function:
                s.create_ms.append(ms)
            elif stage == "lambda.invoke" and details["function"] == self.process_function:
                s.process_ms.append(ms)
            elif stage == "aws.call":
                s.calls_ms.append(ms)
                s.calls_cpu_ms.append(details["cpu_ms"])
            elif stage == "sqs.batch":
                s.poller_ms.append(ms - details["invoke_ms"])
                s.batch_sizes.append(len(details["waits_ms"]))
                s.waits_ms += details["waits_ms"]


class InvokeTimes(Hooks):
    """The runtime's own time for each invoke (``lambda.invoke``: the worker's round trip, logs and metrics)."""

    def __init__(self) -> None:
        self.ms: list[float] = []

    def timing(self, stage: str, ms: float, **details: Any) -> None:
        if stage == "lambda.invoke":
            self.ms.append(ms)


class MemoryPeaks(threading.Thread):
    """Peak resident memory of this process and of each worker process, sampled every 50 ms.

    Listing child processes reads all of /proc, so the list of workers is refreshed only every 0.5 s:
    the sampler itself must not take a noticeable share of the kernel process's CPU.
    """

    def __init__(self) -> None:
        super().__init__(daemon=True, name="memory-peaks")
        self.me = psutil.Process()
        self.kernel = 0
        self.workers: dict[int, int] = {}
        self.workers_total = 0
        self._children: list[psutil.Process] = []
        self._done = threading.Event()

    def run(self) -> None:
        rounds = 0
        while not self._done.wait(0.05):
            self.sample(refresh=rounds % 10 == 0)
            rounds += 1

    def user_system(self) -> tuple[float, float]:
        """CPU time used so far by this process in user mode and in system mode."""
        mine = self.me.cpu_times()
        return mine.user, mine.system

    def cpu_seconds(self) -> tuple[float, dict[int, float]]:
        """CPU time (user + system) used so far by this process, and by each live child process."""
        mine = self.me.cpu_times()
        children = {}
        for child in self.me.children(recursive=True):
            try:
                times = child.cpu_times()
            except psutil.Error:
                continue
            children[child.pid] = times.user + times.system
        return mine.user + mine.system, children

    def sample(self, refresh: bool = True) -> None:
        if refresh:
            self._children = self.me.children(recursive=True)
        self.kernel = max(self.kernel, self.me.memory_info().rss)
        total = 0
        for child in self._children:
            try:
                rss = child.memory_info().rss
            except psutil.Error:
                continue
            self.workers[child.pid] = max(self.workers.get(child.pid, 0), rss)
            total += rss
        self.workers_total = max(self.workers_total, total)

    def stop(self) -> None:
        self._done.set()
        self.join()
        self.sample()


def item_count(ddb: Any, table: str) -> int:
    while True:
        try:
            return int(ddb.describe_table(TableName=table)["Table"]["ItemCount"])
        except RuntimeError:  # moto counts the items while a worker's put_item adds one: ask again
            continue


def wait_for_items(ddb: Any, table: str, expected: int, timeout: float) -> None:
    """Poll every 20 ms: each poll takes the kernel's GIL for about a millisecond."""
    wait_until(
        lambda: item_count(ddb, table) >= expected, timeout=timeout, interval=0.02, what=f"{expected} tasks stored"
    )


def post_all(stack: Stack, tasks: int, clients: int, stages: Stages, offset: int = 0) -> set[str]:
    """POST ``tasks`` tasks from ``clients`` threads; return the accepted task ids."""
    session_local = threading.local()

    def post(index: int) -> str:
        session = getattr(session_local, "session", None)
        if session is None:
            import requests

            session = session_local.session = requests.Session()
        stages.local.handle_ms = 0.0
        started = time.perf_counter()
        response = session.post(stack.api_url, json=task_body(offset + index), timeout=30)
        ms = (time.perf_counter() - started) * 1000
        if response.status_code != 202:
            raise SystemExit(f"POST /task answered {response.status_code}: {response.text}")
        with stages.lock:
            stages.client_ms.append(ms - stages.local.handle_ms)
        return str(response.json()["task_id"])

    with ThreadPoolExecutor(max_workers=clients, thread_name_prefix="client") as pool:
        return set(pool.map(post, range(tasks)))


@dataclass
class PipelineRun:
    rate: float
    seconds: float
    post_seconds: float
    stages: Stages
    memory: MemoryPeaks
    cpu: tuple[float, float]  # CPU seconds used meanwhile: kernel process, workers
    kernel_user_system: tuple[float, float]  # the kernel process's share in user and in system (kernel) mode


def pipeline(rt: Any, tasks: int, clients: int) -> PipelineRun:
    stack = Stack.day3("bench", visibility_timeout=60, function_timeout=30)
    ddb = stack.client("dynamodb")
    # Warm up as a running workshop would be: every create_task worker and the pollers' process_task workers.
    warm = post_all(stack, clients * 2, clients, Stages(), offset=-clients * 2)
    wait_for_items(ddb, stack.names.table, len(warm), 60)
    offline.wait_idle(60)

    stages = Stages()
    memory = MemoryPeaks()
    memory.start()
    kernel_cpu, worker_cpu = memory.cpu_seconds()
    user, system = memory.user_system()
    with rt.using(StageTimings(stages, stack.names.create_function, stack.names.process_function)):
        started = time.perf_counter()
        accepted = post_all(stack, tasks, clients, stages)
        posted = time.perf_counter()
        wait_for_items(ddb, stack.names.table, len(warm) + tasks, 600)
        elapsed = time.perf_counter() - started
    kernel_after, workers_after = memory.cpu_seconds()
    user_after, system_after = memory.user_system()
    memory.stop()
    cpu = (
        kernel_after - kernel_cpu,
        sum(used - worker_cpu.get(pid, 0.0) for pid, used in workers_after.items()),
    )
    offline.wait_idle(60)
    stored = {item["task_id"] for item in stack.items()}
    if len(accepted) != tasks or stored != accepted | warm:
        raise SystemExit(f"expected exactly the {tasks} accepted tasks stored, found {len(stored - warm)}")
    split = (user_after - user, system_after - system)
    return PipelineRun(tasks / elapsed, elapsed, posted - started, stages, memory, cpu, split)


# --- reporting ---------------------------------------------------------------------------------------------


def summary(values: list[float]) -> str:
    if not values:
        return "n/a"
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"median {statistics.median(values):7.2f} ms, p95 {p95:7.2f} ms, n={len(values)}"


def report_stages(run: PipelineRun, tasks: int) -> None:
    s = run.stages
    wall = run.seconds * 1000
    print("per stage: time per call; 'busy' = summed time per task and as a share of the wall time (>100%: parallel)")
    rows = [
        ("client: requests + mock routing", s.client_ms, 1),
        ("API proxy: event, checks, reply", s.proxy_ms, 1),
        ("create_task invoke", s.create_ms, 1),
        ("functions' AWS calls, in the kernel", s.calls_ms, 1),
        ("queue: poller receive + delete", s.poller_ms, 10),
        ("process_task invoke", s.process_ms, 10),
    ]
    for label, values, per in rows:
        total = sum(values)
        unit = "per call   " if values is s.calls_ms else "per request" if per == 1 else "per batch  "
        print(f"  {label:34s} {summary(values)} {unit}  busy {total / tasks:6.2f} ms/task, {100 * total / wall:4.0f}%")
    sizes = statistics.mean(s.batch_sizes) if s.batch_sizes else 0
    print(f"  queue wait, sent -> first received {summary(s.waits_ms)} (mean batch {sizes:.1f} messages)")
    print(f"  all POSTs answered after {run.post_seconds:.2f} s of {run.seconds:.2f} s")
    kernel, workers = run.cpu
    user, system = run.kernel_user_system
    print(
        f"  CPU per task: kernel process {1000 * kernel / tasks:.2f} ms, workers {1000 * workers / tasks:.2f} ms "
        f"({100 * (kernel + workers) / run.seconds / (os.cpu_count() or 1):.0f}% of {os.cpu_count()} CPUs)"
    )
    calls_cpu = sum(s.calls_cpu_ms) / tasks
    print(
        f"  kernel CPU per task: {1000 * user / tasks:.2f} ms user, {1000 * system / tasks:.2f} ms system; "
        f"{calls_cpu:.2f} ms answering the functions' {len(s.calls_cpu_ms) / tasks:.1f} AWS calls (moto, IAM), "
        f"{1000 * kernel / tasks - calls_cpu:.2f} ms the rest (clients, API proxy, invokes, pollers, logs)"
    )
    print(
        f"  moto, the API proxy, the pollers and the workers' calls share the kernel process's one GIL: at "
        f"{1000 * kernel / tasks:.2f} ms of its CPU per task the pipeline cannot pass {tasks / kernel:.0f} tasks/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000, help="tasks to send (default 1000)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent HTTP clients (default 8)")
    parser.add_argument("--invokes", type=int, default=200, help="warm invokes timed for the overhead (default 200)")
    parser.add_argument("--floor-client", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor_client:
        floor_client()
        return
    if args.tasks <= 0:
        parser.error("--tasks must be positive")

    print(f"offline pipeline benchmark: {args.tasks} tasks, {args.clients} clients, {os.cpu_count()} CPUs")
    with offline.running() as rt:
        run = pipeline(rt, args.tasks, args.clients)
        floor_inproc = floor(args.tasks, None)
        floor_http = floor(args.tasks, rt.endpoint_url)
        iam, lam = boto3.client("iam", region_name=REGION), boto3.client("lambda", region_name=REGION)
        logs_allowed = [{"Effect": "Allow", "Action": "logs:*", "Resource": "*"}]
        lam.create_function(
            FunctionName="timed",
            Runtime="python3.13",
            Role=role(iam, "timed-role", logs_allowed),
            Handler="app.handler",
            Code={"ZipFile": package(TIMED)},
            Timeout=10,
        )
        with rt.using(InvokeTimes()) as invoke_times:
            overhead, overhead_p95, _ = warm_overhead(lam, "timed", args.invokes)
        runtime_ms = statistics.median(invoke_times.ms[1:])  # after warm_overhead's own warm-up invoke

    print(f"pipeline: {run.rate:7.0f} tasks/s ({args.tasks} tasks stored in {run.seconds:.2f} s)")
    print(f"floor in-process:   {floor_inproc:5.0f} tasks/s; pipeline takes {floor_inproc / run.rate:.2f}x its time")
    print(f"  (one thread, CPU-bound: {1000 / floor_inproc:.2f} ms of CPU per task, moto's and the client's SDK)")
    print(f"floor over HTTP:    {floor_http:5.0f} tasks/s; pipeline takes {floor_http / run.rate:.2f}x its time")
    report_stages(run, args.tasks)
    print(
        f"warm invoke overhead (lambda.invoke minus handler time): median {overhead:.2f} ms, p95 {overhead_p95:.2f} ms"
    )
    print(
        f"  of which the runtime's invoke (worker round trip, START/END/REPORT logs, metrics): median "
        f"{runtime_ms:.2f} ms; the caller's SDK and moto's dispatch of Invoke: about {overhead - runtime_ms:.2f} ms"
    )
    mem = run.memory
    peak_worker = max(mem.workers.values(), default=0)
    print(
        f"peak memory: kernel process {mem.kernel / 2**20:.0f} MiB; workers {len(mem.workers)} processes, "
        f"largest {peak_worker / 2**20:.0f} MiB, all together {mem.workers_total / 2**20:.0f} MiB"
    )


if __name__ == "__main__":
    main()
