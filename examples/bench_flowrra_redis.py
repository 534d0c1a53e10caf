"""flowrra 0.1.8's RedisBackend under the workloads of examples/bench_redis.rs.

Usage: python bench_flowrra_redis.py URL WORKLOAD N ROUNDS
Prints one JSON line: {"rounds": [{metric: value, ...}, ...]}.
"""

import asyncio
import json
import sys
import time
from datetime import datetime, timedelta

import redis.asyncio as aioredis
from flowrra.backends.redis import RedisBackend
from flowrra.task import TaskResult, TaskStatus


async def lifecycle(backend: RedisBackend, n: int, callers: int) -> float:
    async def one(i: int) -> None:
        task_id = f"life-{i}"
        now = datetime.utcnow()
        await backend.store(task_id, TaskResult(task_id, TaskStatus.PENDING, task_name="bench",
                                                submitted_at=now, args=(i,)))
        await backend.store(task_id, TaskResult(task_id, TaskStatus.RUNNING, task_name="bench",
                                                submitted_at=now, started_at=now, args=(i,)))
        await backend.store(task_id, TaskResult(task_id, TaskStatus.SUCCESS, task_name="bench",
                                                submitted_at=now, started_at=now,
                                                finished_at=now, result=i * i, args=(i,)))
        await backend.get(task_id)

    async def caller(offset: int) -> None:
        for i in range(offset, n, callers):
            await one(i)

    start = time.perf_counter()
    await asyncio.gather(*(caller(c) for c in range(callers)))
    return n / (time.perf_counter() - start)


async def waiters(url: str, backend: RedisBackend, n: int) -> dict:
    client = aioredis.from_url(url)
    tasks = [asyncio.create_task(backend.wait_for(f"wait-{i}", timeout=120)) for i in range(n)]
    # flowrra subscribes after its first read: store only once every waiter listens, or the
    # completion would be lost until the timeout.
    while True:
        counts = await client.pubsub_numsub(*[f"flowrra:complete:wait-{i}" for i in range(n)])
        if sum(count for _, count in counts) >= n:
            break
        await asyncio.sleep(0.005)
    clients = await client.client_list()
    pubsub = sum(1 for c in clients if int(c.get("sub", 0)) > 0 or int(c.get("psub", 0)) > 0)
    start = time.perf_counter()
    for i in range(n):
        await backend.store(f"wait-{i}", TaskResult(f"wait-{i}", TaskStatus.SUCCESS, result=i))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    await client.aclose()
    return {"all_woken_secs": elapsed, "pubsub_connections": pubsub}


async def listing(backend: RedisBackend, n: int) -> dict:
    statuses = [TaskStatus.SUCCESS, TaskStatus.FAILED, TaskStatus.PENDING, TaskStatus.RUNNING]
    base = datetime(2026, 1, 1)
    for i in range(n):
        task_id = f"list-{i}"
        await backend.store(task_id, TaskResult(task_id, statuses[i % 4],
                                                submitted_at=base + timedelta(seconds=i)))
    out = {}
    for key, offset in (("page0_micros", 0), ("page_deep_micros", n // 8)):
        samples = []
        for _ in range(5):
            start = time.perf_counter()
            await backend.list_by_status(TaskStatus.SUCCESS, limit=50, offset=offset)
            samples.append((time.perf_counter() - start) * 1e6)
        samples.sort()
        out[key] = samples[len(samples) // 2]
    return out


async def main() -> None:
    url, workload, n, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    results = []
    for _ in range(rounds):
        backend = RedisBackend(url)
        await backend.clear()
        if workload == "lifecycle1":
            results.append({"tasks_per_sec": await lifecycle(backend, n, 1)})
        elif workload == "lifecycle64":
            results.append({"tasks_per_sec": await lifecycle(backend, n, 64)})
        elif workload == "waiters":
            results.append(await waiters(url, backend, n))
        elif workload == "list":
            results.append(await listing(backend, n))
        else:
            raise SystemExit(f"unknown workload {workload}")
        await backend.clear()
        await backend.close()
    print(json.dumps({"rounds": results}))


if __name__ == "__main__":
    asyncio.run(main())
