"""Writes that must survive a Sentinel failover wait for a replica (``WAIT``), and are
sent again until one has them: a real primary and replica, the replica stopped
(SIGSTOP) for longer than one wait."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from bot.redis_client import Replicated, connect
from bot.settings import Settings
from tests.redis_sentinel import MASTER_NAME, SentinelSet
from tests.test_quota import catalog, quota

USER = 7


@pytest.fixture
def pair() -> Iterator[SentinelSet]:
    """A primary and its replica (the Sentinels are not used here)."""
    with SentinelSet(quick=True) as cell:
        yield cell


async def test_a_reservation_is_sent_again_until_a_replica_has_it(
    pair: SentinelSet, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    primary, replica = Redis.from_url(pair.primary.url), Redis.from_url(pair.replica.url)
    cat = catalog(tmp_path)
    q = quota(primary, cat, replicated=Replicated(1))
    process = pair.replica.process
    assert process is not None
    os.kill(process.pid, signal.SIGSTOP)  # no acknowledgement for 1.5 s: longer than a wait
    asyncio.get_running_loop().call_later(1.5, os.kill, process.pid, signal.SIGCONT)
    try:
        with caplog.at_level(logging.WARNING, logger="bot.services.quota"):
            reservation = await q.reserve(USER, [cat.models["cheap"]])
        assert reservation.ok("cheap")
        assert "not acknowledged by a replica" in caplog.text  # sent twice...
        usage = await q.usage(USER)
        assert usage.total == 1  # ...and counted once
        key = q.key(USER, q.day()[0])
        assert await replica.hget(key, "m:cheap") == b"1"  # the replica had it on return
    finally:
        os.kill(process.pid, signal.SIGCONT)
        await primary.aclose()
        await replica.aclose()


async def test_without_replicas_nothing_is_waited_for(redis_url: str, tmp_path: Path) -> None:
    client = Redis.from_url(redis_url)
    try:
        assert Replicated.of(client).replicas == 0
        cat = catalog(tmp_path)
        assert (await quota(client, cat).reserve(USER, [cat.models["cheap"]])).ok("cheap")
    finally:
        await client.aclose()


async def test_under_sentinel_one_replica_is_waited_for(pair: SentinelSet) -> None:
    settings = Settings(
        bot_token="1:x",
        redis_url="redis://127.0.0.1:1/0",
        redis_sentinels=pair.sentinels,
        redis_sentinel_master=MASTER_NAME,
    )
    client = connect(settings)
    try:
        assert Replicated.of(client).replicas == 1
    finally:
        await client.aclose()
