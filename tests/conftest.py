"""Shared fixtures: a real Redis for the session, flushed before each test that uses it,
and checked after it: every key the test left must expire, but for those listed in
``PERMANENT_KEYS`` (and those a test seeds itself and names with
``@pytest.mark.keys_without_expiry(<regex>, ...)``)."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Iterable, Iterator

import pytest
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from tests import harness
from tests import hypothesis_profiles as _hypothesis_profiles  # noqa: F401 - loads "suite"
from tests.redis_server import RedisServer

# The keys the bot keeps without an expiry, on purpose; any other key left without a TTL
# grows Redis forever (one per user, chat or request) and fails the test that left it.
PERMANENT_KEYS = (
    # the /compare leaderboard: the running total of every vote (bot/services/compare_store.py)
    re.compile(r"votes:\d+"),
    # the arena's counted outcomes per pair of models: the data its leaderboard is fitted
    # from (bot/services/arena_store.py)
    re.compile(r"arena:pairs:\d+"),
    # a user's paid credits, plan and the charges credited: bought with money, they must
    # not expire, and a charge id must stay known so it is never credited twice
    # (bot/services/payments.py)
    re.compile(r"paid:\{\d+\}"),
    # a user's ledger of paid credits and debits, trimmed by length (MAXLEN ~)
    re.compile(r"ledger:\{\d+\}"),
)


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """How many pytest-xdist workers ``-n auto`` (pyproject.toml's addopts) starts: two
    per core, at most eight. Most tests wait on timers, sockets and subprocesses rather
    than compute: on two cores, four workers took the suite from 8 minutes in one
    process to 2.5, where two took 4.

    One test file (``pytest tests/test_x.py``, or tests in it) runs in this process, as
    without xdist: each worker first imports the bot and the doubles, seconds a small
    file does not win back. ``PYTEST_XDIST_AUTO_NUM_WORKERS`` decides when set; ``-n N``
    names a number; ``-n 0`` (and ``--pdb``) runs everything in this process."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None  # xdist's own hook reads it
    named = {arg.split("::")[0] for arg in config.args}
    if len(named) == 1 and os.path.isfile(next(iter(named))):
        return 0
    return min(2 * len(os.sched_getaffinity(0)), 8)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "keys_without_expiry(*patterns): keys the test writes itself without a TTL "
        "(regular expressions, matched whole), left out of the check after it",
    )


async def keys_without_expiry(url: str, allowed: Iterable[str] = ()) -> list[str]:
    """The keys in the Redis at ``url`` that have no TTL and are neither
    ``PERMANENT_KEYS`` nor matched by one of the ``allowed`` regular expressions."""
    patterns = [*PERMANENT_KEYS, *(re.compile(pattern) for pattern in allowed)]
    client = aioredis.from_url(url)
    try:
        found = []
        async for raw in client.scan_iter(count=1000):
            key = raw.decode(errors="replace")
            if any(pattern.fullmatch(key) for pattern in patterns):
                continue
            if await client.ttl(raw) == -1:  # -2: gone meanwhile
                found.append(key)
        return sorted(found)
    finally:
        await client.aclose()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
async def redis_url(
    redis_server: RedisServer, request: pytest.FixtureRequest
) -> AsyncIterator[str]:
    """The test Redis's URL, with an empty database; afterwards, no key the test left may
    lack an expiry (see ``PERMANENT_KEYS`` and the ``keys_without_expiry`` mark)."""
    if redis_server.process is None:  # a previous test stopped it for an outage
        redis_server.start()
    client = aioredis.from_url(redis_server.url)
    await client.flushall()
    await client.aclose()
    yield redis_server.url
    if redis_server.process is None:  # the test left it stopped: nothing to look at
        return
    allowed = [
        pattern
        for mark in request.node.iter_markers("keys_without_expiry")
        for pattern in mark.args
    ]
    try:
        found = await keys_without_expiry(redis_server.url, allowed)
    except RedisError:  # down or restarting after an outage test: nothing to tell
        return
    if found:
        pytest.fail(
            f"keys without an expiry left in Redis: {', '.join(found)} (give them a TTL, "
            "list them in tests/conftest.py PERMANENT_KEYS, or, for keys the test writes "
            "itself, mark it @pytest.mark.keys_without_expiry(<regex>))",
            pytrace=False,
        )


@pytest.fixture(params=["off", "auto"])
def rich_too(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run a test twice: answers as text, then as rich messages (RICH_MESSAGES=auto).
    Use it with ``pytestmark = pytest.mark.usefixtures("rich_too")``."""
    saved = dict(harness.RICH_DEFAULT)
    harness.RICH_DEFAULT["rich_messages"] = request.param
    try:
        yield request.param
    finally:
        harness.RICH_DEFAULT.update(saved)
