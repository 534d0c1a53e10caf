"""A flowrra 0.1.8 process sharing one Redis with resulthub, driven by tests/redis_flowrra.rs.

Commands (each prints one JSON document on stdout):
  store URL ID          store PENDING -> RUNNING -> SUCCESS for ID, the way a worker does;
                        prints the last record's to_dict
  read URL ID [ID ...]  get() each ID, list_by_status() every status, wait_for() the ids
                        that are complete; prints {"get": .., "lists": .., "waited": ..}
  wait URL ID TIMEOUT   wait_for(ID, TIMEOUT); prints the record's to_dict
  store-now URL ID      store ID as SUCCESS with flowrra's own default times (datetime.now(),
                        the host's local wall time); prints {"record": to_dict, "before": ..,
                        "after": ..} with the Unix times around the store
  times URL ID          get(ID); prints its submitted_at as Python takes a naive time (local),
                        in Unix seconds: {"submitted_at": ..}
"""

import asyncio
import json
import sys
import time
from datetime import datetime, timedelta

from flowrra.backends.redis import RedisBackend
from flowrra.task import TaskResult, TaskStatus


async def store(url: str, task_id: str) -> dict:
    backend = RedisBackend(url)
    submitted = datetime(2026, 11, 26, 12, 0, 0, 123456)
    pending = TaskResult(
        task_id=task_id,
        status=TaskStatus.PENDING,
        task_name="py.add",
        submitted_at=submitted,
        args=(2, 3),
        kwargs={"scale": 1, "mode": "fast"},
    )
    await backend.store(task_id, pending)
    running = TaskResult(
        task_id=task_id,
        status=TaskStatus.RUNNING,
        task_name="py.add",
        submitted_at=submitted,
        started_at=submitted + timedelta(seconds=1),
        args=(2, 3),
        kwargs={"scale": 1, "mode": "fast"},
    )
    await backend.store(task_id, running)
    done = TaskResult(
        task_id=task_id,
        status=TaskStatus.SUCCESS,
        task_name="py.add",
        result={"sum": 5, "items": [1, "two", None, 2.5], "text": "h\u00e9llo \u2713"},
        submitted_at=submitted,
        started_at=submitted + timedelta(seconds=1),
        finished_at=submitted + timedelta(seconds=2, microseconds=1),
        retries=1,
        args=(2, 3),
        kwargs={"scale": 1, "mode": "fast"},
    )
    await backend.store(task_id, done)
    await backend.close()
    return done.to_dict


async def read(url: str, ids: list[str]) -> dict:
    backend = RedisBackend(url)
    got = {}
    for task_id in ids:
        record = await backend.get(task_id)
        got[task_id] = record.to_dict if record else None
    lists = {}
    for status in TaskStatus:
        records = await backend.list_by_status(status)
        lists[status.value] = [record.task_id for record in records]
    waited = {}
    for task_id, record in got.items():
        if record and record["status"] in ("success", "failed"):
            result = await backend.wait_for(task_id, timeout=5)
            waited[task_id] = result.to_dict
    await backend.close()
    return {"get": got, "lists": lists, "waited": waited}


async def wait(url: str, task_id: str, timeout: float) -> dict:
    backend = RedisBackend(url)
    result = await backend.wait_for(task_id, timeout=timeout)
    await backend.close()
    return result.to_dict


async def store_now(url: str, task_id: str) -> dict:
    backend = RedisBackend(url)
    before = time.time()
    record = TaskResult(task_id=task_id, status=TaskStatus.SUCCESS, submitted_at=datetime.now())
    await backend.store(task_id, record)
    after = time.time()
    await backend.close()
    return {"record": record.to_dict, "before": before, "after": after}


async def times(url: str, task_id: str) -> dict:
    backend = RedisBackend(url)
    record = await backend.get(task_id)
    await backend.close()
    # A naive datetime's timestamp() reads it as local time, as flowrra's own code would.
    return {"submitted_at": record.submitted_at.timestamp()}


def main() -> None:
    command, url, *rest = sys.argv[1:]
    if command == "store":
        out = asyncio.run(store(url, rest[0]))
    elif command == "read":
        out = asyncio.run(read(url, rest))
    elif command == "store-now":
        out = asyncio.run(store_now(url, rest[0]))
    elif command == "times":
        out = asyncio.run(times(url, rest[0]))
    elif command == "wait":
        out = asyncio.run(wait(url, rest[0], float(rest[1])))
    else:
        raise SystemExit(f"unknown command {command}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
