#!/usr/bin/env python3
"""Benchmark peer: the same workloads as resulthub's Rust bench, run against
flowrra's InMemoryBackend (flowrra 0.1.8).

The Rust bench runs this script as a subprocess and parses its stdout, so
stdout carries exactly one JSON line at the end; everything else goes to
stderr.

    python bench_flowrra.py --workload {L1,L64,W,WP,P,M} --n N --rounds R [--warmup W]

Output:
    {"system": "flowrra", "workload": "L1", "n": N, "python": "3.11.7",
     "flowrra": "0.1.8", "rounds": [{<metrics>}, ...]}

Only the standard library and flowrra are used.
"""

import argparse
import asyncio
import gc
import json
import os
import platform
import random
import statistics
import sys
import time
from datetime import datetime, timedelta
from importlib.metadata import version

from flowrra.backends.memory import InMemoryBackend
from flowrra.task import TaskResult, TaskStatus

PENDING = TaskStatus.PENDING
RUNNING = TaskStatus.RUNNING
SUCCESS = TaskStatus.SUCCESS
FAILED = TaskStatus.FAILED
RETRYING = TaskStatus.RETRYING

TASK_NAME = "bench.add"
L64_CALLERS = 64
WAIT_TIMEOUT_S = 60.0
# The order P cycles statuses in (i % 5); the Rust bench uses the same order.
STATUS_CYCLE = (PENDING, RUNNING, SUCCESS, FAILED, RETRYING)
P_SEED = 42
P_BASE = datetime(2024, 1, 1)
P_SPAN_S = 365 * 24 * 3600
PAGE_LIMIT = 100
PAGE_OFFSETS = (0, 10_000)
PAGE_REPEATS = 5
M_MAX_WAITERS = 100_000


def log(msg):
    print(f"[bench_flowrra] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# L1 / L64: PENDING -> RUNNING -> SUCCESS -> get, per task
# --------------------------------------------------------------------------

async def lifecycle(backend, i):
    """One task's life, exactly as the Rust bench writes it.

    PENDING carries the task fields (name, args, submitted_at); RUNNING and
    SUCCESS are fresh records with only the attempt's fields, as flowrra's
    executors write them. Each timestamp is read when its record is built.
    """
    task_id = f"task-{i}"
    await backend.store(task_id, TaskResult(
        task_id=task_id,
        status=PENDING,
        task_name=TASK_NAME,
        submitted_at=datetime.now(),
        args=[i, 1],
        kwargs={},
    ))
    await backend.store(task_id, TaskResult(
        task_id=task_id,
        status=RUNNING,
        started_at=datetime.now(),
    ))
    await backend.store(task_id, TaskResult(
        task_id=task_id,
        status=SUCCESS,
        result={"sum": i + 1},
        finished_at=datetime.now(),
    ))
    got = await backend.get(task_id)
    # Cheap, and keeps the read from being a no-op (the Rust side checks too).
    if got is None or got.status is not SUCCESS:
        raise RuntimeError(f"{task_id}: lifecycle did not end in SUCCESS")


async def run_l1(n):
    backend = InMemoryBackend()
    t0 = time.perf_counter()
    for i in range(n):
        await lifecycle(backend, i)
    elapsed = time.perf_counter() - t0
    return {"tasks_per_s": n / elapsed}


async def run_l64(n):
    backend = InMemoryBackend()

    async def caller(k):
        for i in range(k, n, L64_CALLERS):
            await lifecycle(backend, i)

    # InMemoryBackend's methods never suspend, so the 64 callers interleave
    # only at task boundaries chosen by the event loop; what this measures is
    # flowrra's cost with 64 coroutines scheduled, not parallelism.
    t0 = time.perf_counter()
    await asyncio.gather(*(caller(k) for k in range(L64_CALLERS)))
    elapsed = time.perf_counter() - t0
    return {"tasks_per_s": n / elapsed}


# --------------------------------------------------------------------------
# W: N waiters parked in wait_for, then woken by one producer
# --------------------------------------------------------------------------

def wake_record(task_id, i):
    # Only what completion needs, like the Rust bench's W producer: the record
    # content is not what W measures.
    return TaskResult(task_id=task_id, status=SUCCESS, result={"sum": i})


async def park_waiters(backend, n, tasks):
    """Yield until every one of the n waiters is really blocked.

    wait_for creates backend._events[id] synchronously on its first step, so
    len(_events) == n means every waiter has started. On Python 3.11
    asyncio.wait_for runs Event.wait() in an inner task that only starts on a
    later loop pass, so we also wait until each Event has a parked waiter;
    otherwise store() would set an Event nobody waits on yet and the wake-up
    we time would be a different (cheaper) path.
    """
    def check_failures():
        for t in tasks:
            if t.done():
                t.result()  # re-raises whatever killed the waiter
                raise RuntimeError("a waiter returned before its record was stored")

    while len(backend._events) < n:
        check_failures()
        await asyncio.sleep(0)
    events = list(backend._events.values())
    while not all(getattr(ev, "_waiters", True) for ev in events):
        check_failures()
        await asyncio.sleep(0)


def percentile(sorted_values, p):
    """The sample at rank round(p% of (len - 1)), no interpolation.

    The same rule as the Rust bench (whose round() goes half away from zero,
    hence int(x + 0.5) rather than Python's round-half-even), so p50 here is
    the same sample the Rust side would pick.
    """
    rank = int(p / 100 * (len(sorted_values) - 1) + 0.5)
    return sorted_values[min(rank, len(sorted_values) - 1)]


async def run_w(n, pending_first=False):
    backend = InMemoryBackend()
    ids = [f"task-{i}" for i in range(n)]
    woke = [0.0] * n
    store_start = [0.0] * n
    if pending_first:
        # WP: every id is stored PENDING before its waiter registers.
        for task_id in ids:
            await backend.store(task_id, TaskResult(task_id=task_id, status=PENDING))

    async def waiter(i):
        result = await backend.wait_for(ids[i], timeout=WAIT_TIMEOUT_S)
        woke[i] = time.perf_counter()
        if result.status is not SUCCESS:
            raise RuntimeError(f"{ids[i]}: woke with {result.status}")

    tasks = [asyncio.create_task(waiter(i)) for i in range(n)]
    await park_waiters(backend, n, tasks)

    for i in range(n):
        record = wake_record(ids[i], i)
        store_start[i] = time.perf_counter()
        await backend.store(ids[i], record)
    # store() never suspends, so no waiter runs until this loop is done: the
    # latencies include the rest of the producer's loop, as they would for
    # any single-threaded asyncio producer.
    await asyncio.gather(*tasks)

    latencies_us = sorted((woke[i] - store_start[i]) * 1e6 for i in range(n))
    return {
        "all_woken_s": max(woke) - store_start[0],
        "p50_us": percentile(latencies_us, 50),
        "p99_us": percentile(latencies_us, 99),
    }


# --------------------------------------------------------------------------
# P: list_by_status pages over a large store
# --------------------------------------------------------------------------

async def load_pagination(backend, n):
    # Seeded so the Rust side can draw from the same distribution; the exact
    # values need not match Rust's.
    rng = random.Random(P_SEED)
    for i in range(n):
        task_id = f"task-{i}"
        submitted_at = P_BASE + timedelta(seconds=rng.randrange(0, P_SPAN_S))
        await backend.store(task_id, TaskResult(
            task_id=task_id,
            status=STATUS_CYCLE[i % len(STATUS_CYCLE)],
            submitted_at=submitted_at,
        ))


def check_page(page, offset, n):
    matching = len(range(STATUS_CYCLE.index(SUCCESS), n, len(STATUS_CYCLE)))
    expected = min(PAGE_LIMIT, max(0, matching - offset))
    if len(page) != expected:
        raise RuntimeError(f"offset {offset}: got {len(page)} records, expected {expected}")
    if expected < PAGE_LIMIT:
        log(f"note: offset {offset} holds only {expected} SUCCESS records at n={n}")
    if any(r.status is not SUCCESS for r in page):
        raise RuntimeError(f"offset {offset}: page holds a non-SUCCESS record")
    if any(a.submitted_at < b.submitted_at for a, b in zip(page, page[1:])):
        raise RuntimeError(f"offset {offset}: page is not newest-first")


async def run_p(n):
    backend = InMemoryBackend()
    t_load = time.perf_counter()
    await load_pagination(backend, n)
    log(f"P: loaded {n} records in {time.perf_counter() - t_load:.2f} s (not timed)")
    # Loading leaves a lot of young objects; collect now so a pending
    # collection does not land inside a timed call.
    gc.collect()

    metrics = {}
    for offset in PAGE_OFFSETS:
        times_us = []
        page = None
        for _ in range(PAGE_REPEATS):
            t0 = time.perf_counter()
            page = await backend.list_by_status(SUCCESS, limit=PAGE_LIMIT, offset=offset)
            times_us.append((time.perf_counter() - t0) * 1e6)
        check_page(page, offset, n)
        metrics[f"page{offset}_us"] = statistics.median(times_us)
    return metrics


# --------------------------------------------------------------------------
# M: resident memory per stored record and per parked waiter
# --------------------------------------------------------------------------

def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def run_m(n):
    # A small record: the L SUCCESS record's payload (name, args, result,
    # submitted_at), the same fields the Rust bench's small_record sets.
    records = InMemoryBackend()
    gc.collect()
    before = rss_bytes()
    for i in range(n):
        task_id = f"task-{i}"
        await records.store(task_id, TaskResult(
            task_id=task_id,
            status=SUCCESS,
            task_name=TASK_NAME,
            result={"sum": i + 1},
            submitted_at=datetime.now(),
            args=[i, 1],
            kwargs={},
        ))
    gc.collect()
    bytes_per_record = (rss_bytes() - before) / n

    # Waiters: `records` stays alive on purpose, so the waiters are allocated
    # from fresh memory rather than into pages freed by the record phase
    # (which RSS would not show as growth).
    n_w = min(n, M_MAX_WAITERS)
    waiters = InMemoryBackend()

    async def waiter(i):
        # The id is built inside the waiter because a real caller owns its id
        # string too, and it becomes the key of backend._events.
        await waiters.wait_for(f"task-{i}", timeout=WAIT_TIMEOUT_S)

    gc.collect()
    before = rss_bytes()
    tasks = [asyncio.create_task(waiter(i)) for i in range(n_w)]
    await park_waiters(waiters, n_w, tasks)
    gc.collect()
    bytes_per_waiter = (rss_bytes() - before) / n_w

    for t in tasks:
        t.cancel()
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    unexpected = [o for o in outcomes if not isinstance(o, asyncio.CancelledError)]
    if unexpected:
        raise RuntimeError(f"{len(unexpected)} waiters did not end cancelled: {unexpected[0]!r}")
    log(f"M: {n} records, {n_w} waiters (cancelled cleanly)")

    return {"bytes_per_record": bytes_per_record, "bytes_per_waiter": bytes_per_waiter}


WORKLOADS = {
    "L1": run_l1,
    "L64": run_l64,
    "W": run_w,
    "WP": lambda n: run_w(n, pending_first=True),
    "P": run_p,
    "M": run_m,
}


async def main(args):
    run = WORKLOADS[args.workload]
    warmup, rounds = args.warmup, args.rounds
    if args.workload == "M":
        # A warm-up would leave freed memory that the measured round reuses,
        # hiding growth from RSS; and RSS deltas only make sense once.
        if warmup or rounds != 1:
            log("M: runs exactly one round, no warm-up (ignoring --rounds/--warmup)")
        warmup, rounds = 0, 1

    measured = []
    for r in range(warmup + rounds):
        # Start each round without the previous round's garbage pending.
        gc.collect()
        metrics = await run(args.n)
        if r < warmup:
            log(f"{args.workload} n={args.n} warm-up {r + 1}/{warmup}: {metrics}")
        else:
            log(f"{args.workload} n={args.n} round {r - warmup + 1}/{rounds}: {metrics}")
            measured.append(metrics)
    return measured


def parse_args():
    parser = argparse.ArgumentParser(
        description="Run resulthub's bench workloads against flowrra's InMemoryBackend; "
                    "prints one JSON line to stdout.")
    parser.add_argument("--workload", required=True, choices=sorted(WORKLOADS))
    parser.add_argument("--n", type=int, required=True, help="number of tasks / records")
    parser.add_argument("--rounds", type=int, required=True, help="measured rounds (M always runs 1)")
    parser.add_argument("--warmup", type=int, default=1, help="unreported warm-up rounds (default 1; M runs none)")
    args = parser.parse_args()
    if args.n < 1:
        parser.error("--n must be at least 1")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.warmup < 0:
        parser.error("--warmup must not be negative")
    return args


if __name__ == "__main__":
    cli = parse_args()
    rounds = asyncio.run(main(cli))
    print(json.dumps({
        "system": "flowrra",
        "workload": cli.workload,
        "n": cli.n,
        "python": platform.python_version(),
        "flowrra": version("flowrra"),
        "rounds": rounds,
    }), flush=True)
