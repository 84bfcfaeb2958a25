"""A chat's lock is a lease: renewed while its answer runs, released only by its owner."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from bot.redis_client import connect
from bot.services.generations import LOCK_SECONDS, Generations
from bot.settings import Settings

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


async def test_the_next_message_waits_for_the_answer_before_to_record_however_long(
    generations: Generations,
) -> None:
    """Redis refused writes for a while (a failover): the delivered answer's record, which
    gives its lock back, is retried every second. The user's next message waits for it,
    not for a fixed patience, and is not told an answer is still being written."""
    assert await generations.lock_soon(CHAT, USER, 1, patience=1.0)
    with generations.finishing(CHAT, USER):
        waiting = asyncio.create_task(generations.lock_soon(CHAT, USER, 2, patience=0.2))
        await asyncio.sleep(1.0)  # longer than its patience
        assert not waiting.done()
        await generations.unlock(CHAT, USER, 1)  # the record got through
    assert await waiting
    assert await generations.redis.get(Generations.lock_key(CHAT, USER)) == b"2"


async def test_another_chats_record_does_not_hold_a_message_up(generations: Generations) -> None:
    assert await generations.lock_soon(CHAT, USER, 1, patience=1.0)
    with generations.finishing(CHAT + 1, USER):
        assert not await generations.lock_soon(CHAT, USER, 2, patience=0.2)
    await generations.unlock(CHAT, USER, 1)


async def test_many_leases_ending_while_renewals_wait_on_a_busy_pool_all_end(
    redis_url: str,
) -> None:
    """Hundreds of answers ending while their renewals queue for a small pool's
    connections: every lease ends. (Renewals stopped by a cancel alone went on forever
    for some: the cancel was lost inside redis-py, the answer never finished, and its
    chat stayed locked.)"""
    settings = Settings(_env_file=None, bot_token="1:x", redis_url=redis_url)
    client = connect(settings, max_connections=20)
    generations = Generations(client, 7)
    rng = random.Random(5)

    async def answer(number: int) -> None:
        assert await generations.lock_soon(number, number, number, patience=5.0)
        async with generations.lease(number, number, number, every=0.005):
            await asyncio.sleep(rng.random() * 0.3)
        await generations.unlock(number, number, number)

    try:
        async with asyncio.timeout(20):
            await asyncio.gather(*(answer(n) for n in range(300)))
        assert [k async for k in client.scan_iter("busy:*")] == []
    finally:
        await client.aclose()
