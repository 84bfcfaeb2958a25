"""What a Sentinel failover costs, per set-up: writes acknowledged and then lost, and how
long writes are refused (README "Scaling out").

For each set-up (replicas, ``min-replicas-to-write``): a real primary, its replicas and
three Sentinels on loopback (tests/redis_sentinel.py); ``--writers`` tasks INCRement one
counter through the bot's own Sentinel client (``bot.redis_client.connect``) as fast as
Redis answers; after ``--before`` seconds a Sentinel is told to fail over
(``SENTINEL FAILOVER``), and the writers go on until writes went through again for a
while. Then the counter, read from the new primary once the set has settled, says how many
acknowledged increments were lost. Figures only, no goals: what is lost depends on the
timing of each failover. The bot's own run through a failover (messages, limits,
answers) is tests/test_redis_sentinel.py."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from dataclasses import dataclass, field

from redis.exceptions import RedisError

from bench import kit
from bot import redis_client
from bot.settings import Settings
from tests.redis_sentinel import MASTER_NAME, SentinelSet

KEY = "failover:counter"
QUICK = {"setups": "1:1", "before": 1.0}


@dataclass
class Probe:
    replicas: int
    min_replicas: int
    acknowledged: int = 0
    counted: int = 0
    errors: list[tuple[float, str]] = field(default_factory=list)  # (s after failover, kind)
    failed_over: float = 0.0
    back_after: float = 0.0  # the primary named by Sentinel changed this long after

    @property
    def lost(self) -> int:
        return self.acknowledged - self.counted

    @property
    def refused(self) -> str:
        after = [at for at, _ in self.errors if at >= 0]
        if not after:
            return "none"
        return f"{min(after):.1f} to {max(after):.1f} s after ({len(after)} errors)"


async def probe(cell: SentinelSet, replicas: int, least: int, args: argparse.Namespace) -> Probe:
    settings = Settings(
        bot_token="1:x", redis_sentinels=cell.sentinels, redis_sentinel_master=MASTER_NAME
    )
    client = redis_client.connect(settings, max_connections=args.writers + 4)
    found = Probe(replicas, least)
    stop = asyncio.Event()
    began = time.monotonic()

    async def writer() -> None:
        while not stop.is_set():
            try:
                await client.incr(KEY)
                found.acknowledged += 1
            except RedisError as exc:
                at = time.monotonic() - (found.failed_over or began + 1e9)
                found.errors.append((at, type(exc).__name__))
                await asyncio.sleep(0.05)

    writers = [asyncio.create_task(writer()) for _ in range(args.writers)]
    try:
        await asyncio.sleep(args.before)
        old = cell.master_port()
        found.failed_over = time.monotonic()
        await asyncio.to_thread(cell.failover)
        found.back_after = time.monotonic() - found.failed_over
        # on until the old primary is a replica again and writes went through for a while
        deadline = found.failed_over + args.deadline
        while time.monotonic() < deadline:
            last_error = max((at for at, _ in found.errors), default=-1.0)
            quiet = time.monotonic() - found.failed_over - last_error
            if cell.role(old) == "slave" and quiet > args.quiet:
                break
            await asyncio.sleep(0.2)
    finally:
        stop.set()
        await asyncio.gather(*writers)
    await asyncio.to_thread(cell.wait_replicating, cell.master_port(), 30)
    found.counted = int(await client.get(KEY) or 0)
    await redis_client.aclose(client)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    kit.options(
        parser,
        setups=("1:0,1:1,2:1,2:2", "replicas:min-replicas-to-write, comma-separated"),
        writers=(5, "tasks writing at once"),
        before=(3.0, "seconds of writes before the failover"),
        quiet=(2.0, "seconds of writes without an error that end a run"),
        deadline=(45.0, "seconds after the failover a run ends at the latest"),
    )
    args = kit.parse(parser, argv, QUICK)
    setups = [tuple(int(x) for x in s.split(":")) for s in args.setups.split(",")]
    print(f"\nbench.failover: a forced Sentinel failover per set-up; {kit.machine()}.\n")
    table = kit.Table()
    for replicas, least in setups:
        with SentinelSet(replicas=replicas, min_replicas=least) as cell:
            found = asyncio.run(probe(cell, replicas, least, args))
        name = f"{replicas} replica(s), min-replicas-to-write {least}"
        table.add(f"{name}: acknowledged writes lost", f"{found.lost} of {found.acknowledged}")
        table.add("  refused", found.refused)
        table.add("  Sentinel names the new primary after", f"{found.back_after:.1f} s")
    table.print()
    return kit.verdict(args, table.goals, table.checks)


if __name__ == "__main__":
    sys.exit(main())
