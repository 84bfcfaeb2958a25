"""Usage figures for admins (/stats), kept in Redis so that every replica adds to them:
users today (a HyperLogLog), requests per model and failures per provider."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

KEEP_SECONDS = 8 * 24 * 3600  # a week of days


@dataclass(frozen=True)
class DayStats:
    users: int
    requests: dict[str, int]  # model id -> requests answered or attempted
    failures: dict[str, int]  # provider -> failed requests


class Stats:
    def __init__(self, redis: Redis, bot_id: int) -> None:
        self.redis = redis
        self.prefix = f"stats:{bot_id}"

    def _keys(self, date: str) -> tuple[str, str]:
        return f"{self.prefix}:{date}", f"{self.prefix}:{date}:users"

    def queue_request(
        self, pipe: Pipeline, date: str, user_id: int, model_id: str, provider: str, failed: bool
    ) -> None:
        counts, users = self._keys(date)
        pipe.hincrby(counts, f"req:{model_id}", 1)
        if failed:
            pipe.hincrby(counts, f"fail:{provider}", 1)
        pipe.pfadd(users, str(user_id))
        pipe.expire(counts, KEEP_SECONDS)
        pipe.expire(users, KEEP_SECONDS)

    async def day(self, date: str) -> DayStats:
        counts, users = self._keys(date)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(counts)
            pipe.pfcount(users)
            raw, unique = await pipe.execute()
        requests: dict[str, int] = {}
        failures: dict[str, int] = {}
        for field, value in _items(raw):
            kind, _, name = field.partition(":")
            (requests if kind == "req" else failures)[name] = int(value)
        return DayStats(int(unique), requests, failures)


def _items(raw: dict[Any, Any]) -> list[tuple[str, Any]]:
    return [(k.decode() if isinstance(k, bytes) else k, v) for k, v in raw.items()]
