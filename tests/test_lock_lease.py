"""A chat's lock is a lease: renewed while its answer runs, released only by its owner."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from bot.services.generations import LOCK_SECONDS, Generations

CHAT, USER = -100, 42


@pytest.fixture
async def generations(redis_url: str) -> AsyncIterator[Generations]:
    client = Redis.from_url(redis_url)
    try:
        yield Generations(client, 7)
    finally:
        await client.aclose()


async def test_a_running_answer_renews_its_lease(generations: Generations) -> None:
    redis, key = generations.redis, Generations.lock_key(CHAT, USER)
    assert await generations.lock_soon(CHAT, USER, 1, patience=1.0)
    await redis.expire(key, 2)  # the lease is about to run out
    async with generations.lease(CHAT, USER, 1, every=0.1):
        await asyncio.sleep(0.4)
        assert await redis.ttl(key) > LOCK_SECONDS - 5
    await generations.unlock(CHAT, USER, 1)
    assert await redis.exists(key) == 0


async def test_a_lease_never_renews_or_frees_another_owners_lock(generations: Generations) -> None:
    redis, key = generations.redis, Generations.lock_key(CHAT, USER)
    assert await generations.lock_soon(CHAT, USER, 1, patience=1.0)
    async with generations.lease(CHAT, USER, 1, every=0.1):
        await redis.set(key, 2, ex=5)  # /stop freed it, and answer 2 took the chat
        await asyncio.sleep(0.4)
        assert 0 < await redis.ttl(key) <= 5  # not renewed for answer 1
    await generations.unlock(CHAT, USER, 1)  # answer 1's bookkeeping
    assert await redis.get(key) == b"2"  # answer 2 still holds it
