"""Usage figures for admins (/stats), kept in Redis so that every replica adds to them:
users today (HyperLogLogs), requests per model and failures per provider.

Every request is counted, so one key for all of them would be a hot spot on a Redis
Cluster (one slot, one node, whatever the number of nodes). The day's counters are
therefore split into ``SHARDS`` shards by user id (``user % SHARDS``), each a hash
``stats:{<bot id>:<shard>}:<date>`` and a HyperLogLog ``...:users`` in one slot of its
own; /stats adds them up (a pipeline of the hashes, and the HyperLogLogs counted at
once). A user always counts in the same shard, so the shards' user sets are disjoint and
their counts add up.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

KEEP_SECONDS = 8 * 24 * 3600  # a week of days
SHARDS = 16  # enough to spread over the masters of any cluster the bot is likely to meet


@dataclass(frozen=True)
class DayStats:
    users: int
    requests: dict[str, int]  # model id -> requests answered or attempted
    failures: dict[str, int]  # provider -> failed requests


class Stats:
    def __init__(self, redis: Redis, bot_id: int) -> None:
        self.redis = redis
        self.bot_id = bot_id

    def _keys(self, date: str, shard: int) -> tuple[str, str]:
        counts = f"stats:{{{self.bot_id}:{shard}}}:{date}"
        return counts, f"{counts}:users"

    def queue_request(
        self, pipe: Pipeline, date: str, user_id: int, model_id: str, provider: str, failed: bool
    ) -> None:
        counts, users = self._keys(date, user_id % SHARDS)
        pipe.hincrby(counts, f"req:{model_id}", 1)
        if failed:
            pipe.hincrby(counts, f"fail:{provider}", 1)
        pipe.pfadd(users, str(user_id))
        pipe.expire(counts, KEEP_SECONDS)
        pipe.expire(users, KEEP_SECONDS)

    async def day(self, date: str) -> DayStats:
        keys = [self._keys(date, shard) for shard in range(SHARDS)]
        async with self.redis.pipeline(transaction=False) as pipe:
            for counts, _ in keys:
                pipe.hgetall(counts)
            # PFCOUNT may not ride in a cluster's pipeline (redis-py refuses it): asked
            # at once, apart
            counted = asyncio.gather(*(self.redis.pfcount(users) for _, users in keys))
            replies, unique = await asyncio.gather(pipe.execute(), counted)
        requests: dict[str, int] = {}
        failures: dict[str, int] = {}
        for raw in replies:
            for field, value in _items(raw):
                kind, _, name = field.partition(":")
                into = requests if kind == "req" else failures
                into[name] = into.get(name, 0) + int(value)
        return DayStats(sum(int(n) for n in unique), requests, failures)


def _items(raw: dict[Any, Any]) -> list[tuple[str, Any]]:
    return [(k.decode() if isinstance(k, bytes) else k, v) for k, v in raw.items()]
