"""The Redis client, from the settings (SPEC "Redis topologies"): redis-py's own clients
for each topology, with the same pool and retry options; no failover logic of our own.

- one server: ``REDIS_URL`` as ``redis://``, ``rediss://`` (TLS; ``?ssl_ca_certs=...``
  and the other ``ssl_*`` options ride in the URL) or ``unix://``;
- a Redis Cluster (``REDIS_CLUSTER=1``): ``REDIS_URL`` names any node, the client learns
  the others and routes each command, script and pipeline by its keys' slots (every key
  of a user carries the ``{<user>}`` hash tag, so a user's scripts and transactions stay
  on one slot; a pipeline over several slots is split by node and sent in parallel);
- Sentinel (``REDIS_SENTINELS``, ``REDIS_SENTINEL_MASTER``): each new connection asks the
  Sentinels where the master is; connections to a demoted master are dropped (Sentinel
  kills them, and redis-py drops one that meets READONLY), so the bot follows a failover
  by itself. ``REDIS_URL``'s user, password, database and TLS still apply (its host and
  port do not).

``RedisCluster`` is not a subclass of ``Redis`` but answers every command, script,
pipeline and pub/sub call the bot makes (tests/test_redis_cluster.py runs the bot on one),
so it is handed out as a ``Redis``. One difference is smoothed over: a cluster that
cannot be reached raises redis-py's ``RedisClusterException``, which is no ``RedisError``;
here it becomes :class:`ClusterDown`, a ``ConnectionError``, so the bot fails closed and
tells its users as it does when one Redis is down.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, cast

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import ClusterPipeline, RedisCluster
from redis.asyncio.connection import SSLConnection, parse_url
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, RedisError, SlotNotCoveredError

from bot.settings import Settings

log = logging.getLogger(__name__)

POOL_TIMEOUT = 10.0  # seconds a burst waits for a free connection before failing
TIMEOUTS: dict[str, Any] = {
    "socket_timeout": 5,
    "socket_connect_timeout": 3,
    "health_check_interval": 30,
}
SENTINEL_TIMEOUT = 1.0  # seconds for one Sentinel to answer (the next one is asked then)
# what a connection to the master may take from REDIS_URL under Sentinel
_FROM_URL = ("username", "password", "db")


def _retry() -> Retry:
    # a short retry: an outage is told to the user in about a second, and the next
    # request reconnects by itself once Redis (or the new master) is back
    return Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=2)


class ClusterDown(RedisConnectionError):
    """No node of the Redis Cluster answers, or a slot has no node."""


def _down(exc: RedisClusterException) -> Exception:
    """``exc`` as a ConnectionError when it says the cluster is out of reach; other
    cluster exceptions (a cross-slot transaction: a bug) stay what they are."""
    if type(exc) is RedisClusterException or isinstance(exc, SlotNotCoveredError):
        return ClusterDown(str(exc))
    return exc


class Cluster(RedisCluster):
    """redis-py's cluster client, its unreachable-cluster errors made ConnectionErrors."""

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().execute_command(*args, **kwargs)
        except RedisClusterException as exc:
            raise _down(exc) from exc

    def pipeline(self, transaction: Any | None = None, shard_hint: Any | None = None) -> Any:
        if shard_hint:
            raise RedisClusterException("shard_hint is deprecated in cluster mode")
        return _ClusterPipeline(self, transaction)  # type: ignore[abstract]


class _ClusterPipeline(ClusterPipeline):
    async def execute(self, raise_on_error: bool = True, allow_redirections: bool = True) -> Any:
        try:
            return await super().execute(raise_on_error, allow_redirections)
        except RedisClusterException as exc:
            raise _down(exc) from exc


class BlockingSentinelPool(SentinelConnectionPool, BlockingConnectionPool):
    """redis-py's Sentinel pool (each new connection asks the Sentinels for the master),
    blocking like :class:`BlockingConnectionPool`: a burst waits for a free connection."""


def connect(settings: Settings, max_connections: int = 50) -> Redis:
    """The client for the settings' topology; at most ``max_connections`` connections
    (per node on a cluster)."""
    url = settings.redis_url.get_secret_value()
    if settings.redis_sentinels:
        return _sentinel(settings, url, max_connections)
    if settings.redis_cluster:
        cluster = Cluster.from_url(url, max_connections=max_connections, retry=_retry(), **TIMEOUTS)
        return cast(Redis, cluster)
    pool = BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=POOL_TIMEOUT, retry=_retry(), **TIMEOUTS
    )
    return Redis(connection_pool=pool)


def _sentinel(settings: Settings, url: str, max_connections: int) -> Redis:
    parsed: dict[str, Any] = dict(parse_url(url))
    options = {k: parsed[k] for k in _FROM_URL if k in parsed}
    if parsed.get("connection_class") is SSLConnection:
        options["ssl"] = True
        options.update({k: v for k, v in parsed.items() if k.startswith("ssl_")})
    timeouts = {"socket_timeout": SENTINEL_TIMEOUT, "socket_connect_timeout": SENTINEL_TIMEOUT}
    sentinels = list(settings.redis_sentinels)
    sentinel = Sentinel(sentinels, sentinel_kwargs=timeouts)  # type: ignore[no-untyped-call]
    assert settings.redis_sentinel_master is not None  # the settings check both are set
    client: Redis = sentinel.master_for(
        settings.redis_sentinel_master,
        connection_pool_class=BlockingSentinelPool,
        max_connections=max_connections,
        timeout=POOL_TIMEOUT,
        retry=_retry(),
        **TIMEOUTS,
        **options,
    )
    return client


class Replicated:
    """Writes that must survive a Sentinel failover: Redis replicates asynchronously, and
    Sentinel promotes a replica without waiting for it to catch up, so the last writes a
    primary acknowledged (a reservation, a lock given back) may be missing on the new
    one; under load, the last few hundred milliseconds' worth. Such a write rides in a
    pipeline that ends with ``WAIT``, and is sent again (each is idempotent) until a
    replica has it: the one Sentinel promotes is the most up to date. Elsewhere (one
    server, a cluster) nothing is waited for."""

    WAIT_MS = 1000  # how long one write waits for a replica's acknowledgement
    ATTEMPTS = 3  # sends of a write no replica acknowledged, before going on without

    def __init__(self, replicas: int) -> None:
        self.replicas = replicas

    @classmethod
    def of(cls, redis: Redis) -> Replicated:
        """One replica waited for under Sentinel, none elsewhere."""
        sentinel = isinstance(getattr(redis, "connection_pool", None), SentinelConnectionPool)
        return cls(1 if sentinel else 0)

    async def execute(self, redis: Redis, queue: Callable[[Any, bool], None]) -> list[Any]:
        """A pipeline that ``queue(pipe, again)`` fills, and its results. Under Sentinel it
        ends with WAIT and, while no replica has acknowledged it, is filled (``again``:
        a resend, after the first went through) and sent again, ``ATTEMPTS`` in all."""
        again = False
        for _ in range(self.ATTEMPTS if self.replicas else 1):
            async with redis.pipeline(transaction=False) as pipe:
                queue(pipe, again)
                if self.replicas:
                    pipe.execute_command("WAIT", self.replicas, self.WAIT_MS)
                results = await pipe.execute()
            if not self.replicas:
                return list(results)
            if int(results[-1]) >= self.replicas:
                break
            log.warning("writes not acknowledged by a replica within %d ms", self.WAIT_MS)
            again = True
        return list(results[:-1])


async def ready(redis: Redis) -> None:
    """At start, before updates are served: a cluster client learns the slot map now.
    (redis-py 8.1's cluster client, asked by many tasks at once before it has, may fail
    some of them with an AttributeError.) If the cluster is unreachable, the first
    command tries again."""
    if isinstance(redis, RedisCluster):
        try:
            await redis.initialize()
        except (RedisError, RedisClusterException, OSError) as exc:
            log.warning("Redis Cluster not reachable at start: %s", exc)


async def describe(redis: Redis) -> str:
    """What ``python -m bot check`` says of the Redis it reached."""
    info = await redis.info("server")
    version = f"Redis {info.get('redis_version', '?')}"
    if isinstance(redis, RedisCluster):
        return f"{version}, a cluster of {len(redis.get_primaries())} masters"
    pool = redis.connection_pool
    if isinstance(pool, SentinelConnectionPool):
        host, port = await pool.get_master_address()  # type: ignore[no-untyped-call]
        return f"{version}, master {pool.service_name!r} at {host}:{port} (Sentinel)"
    return version


async def aclose(redis: Redis) -> None:
    """Close the client and its connections (and a Sentinel client's own to the
    Sentinels)."""
    if isinstance(redis, RedisCluster):
        await redis.aclose()
        return
    manager = getattr(redis.connection_pool, "sentinel_manager", None)
    await redis.aclose(close_connection_pool=True)
    if isinstance(manager, Sentinel):
        for client in manager.sentinels:
            await client.aclose()
