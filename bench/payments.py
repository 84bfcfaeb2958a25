"""Paid credits under load: reservations per second with paid balances in play vs
without (the quota script must stay one round trip), exactness of the paid balances, and
the pre-checkout decision's latency (signature, price, Redis reachable) while
reservations run. One process, a throwaway redis-server, ``Quota`` and ``Payments``
unchanged."""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from redis.asyncio import Redis

from bench import kit
from bot.catalog import Catalog, load_catalog
from bot.services.payments import Payments, Signer
from bot.services.quota import Grant, Quota

CATALOG = """\
[defaults]
model = "chat"
daily_limit = {overall}

[providers.p]
kind = "ollama"
base_url = "http://127.0.0.1:1"

[[models]]
id = "chat"
title = "Chat"
provider = "p"
name = "chat"
cost = 2

[[packs]]
id = "s100"
title = "100 credits"
stars = 50
credits = 100
"""

UTC = ZoneInfo("UTC")
BALANCE = 10_000_000  # each user's paid credits in the paid phase: never runs out
P99_GOAL = 0.5  # seconds for a pre-checkout decision (Telegram allows 10)
RATE_SHARE_GOAL = 0.5  # paid reservations per second, as a share of free ones


def catalog(tmp: Path, overall: int) -> Catalog:
    path = tmp / f"models-{overall}.toml"
    path.write_text(CATALOG.format(overall=overall))
    return load_catalog(path, {})


async def reserve_many(
    quota: Quota, cat: Catalog, users: int, total: int, concurrency: int, first_user: int
) -> tuple[float, dict[Grant, int]]:
    model = cat.models["chat"]
    grants: dict[Grant, int] = {}
    queue = iter(range(total))

    async def worker() -> None:
        for i in queue:
            r = await quota.reserve(first_user + i % users, [model])
            grant = r.grants["chat"]
            grants[grant] = grants.get(grant, 0) + 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return total / (time.perf_counter() - started), grants


async def run(args: argparse.Namespace, url: str, tmp: Path) -> kit.Table:
    table = kit.Table()
    redis = Redis.from_url(url, max_connections=args.concurrency + 20)
    await redis.ping()
    free_cat, paid_cat = catalog(tmp, 0), catalog(tmp, 1)
    free_q, paid_q = Quota(redis, free_cat, UTC), Quota(redis, paid_cat, UTC)
    payments = Payments(redis, paid_cat, Signer.for_bot("1:bench", None))
    await reserve_many(free_q, free_cat, args.users, args.warm, args.concurrency, 9_000_000)
    # without paid balances: the free allowance only (no cap)
    with kit.RedisWire() as wire:
        before = wire.counts()
        free_rate, free_grants = await reserve_many(
            free_q, free_cat, args.users, args.ops, args.concurrency, 1
        )
        free_rt = kit.RedisWire.since(before, wire.counts())
    # paid balances in play: a free allowance of 1 credit (cost 2): every request is paid
    pipe = redis.pipeline(transaction=False)
    for user in range(100_001, 100_001 + args.users):
        pipe.hset(f"paid:{{{user}}}", "balance", BALANCE)
    await pipe.execute()
    with kit.RedisWire() as wire:
        before = wire.counts()
        paid_rate, paid_grants = await reserve_many(
            paid_q, paid_cat, args.users, args.ops, args.concurrency, 100_001
        )
        paid_rt = kit.RedisWire.since(before, wire.counts())
    spent = 0
    for user in range(100_001, 100_001 + args.users):
        spent += BALANCE - int(await redis.hget(f"paid:{{{user}}}", "balance") or 0)
    paid_ok = paid_grants.get(Grant.PAID, 0)
    ledger = 0
    for user in range(100_001, 100_001 + args.users):
        ledger += await redis.xlen(f"ledger:{{{user}}}")

    # pre-checkout decisions while paid reservations run
    latencies: list[float] = []
    pack = paid_cat.packs["s100"]

    async def decide(user: int) -> None:
        payload = payments.payload_for(pack, user)
        started = time.perf_counter()
        payments.check(payload, user, pack.stars, "XTR")
        assert await payments.reachable()
        latencies.append(time.perf_counter() - started)

    async def checkouts() -> None:
        for i in range(args.checkouts):
            await decide(200_000 + i)
            await asyncio.sleep(0.002)

    load = asyncio.create_task(
        reserve_many(paid_q, paid_cat, args.users, args.ops, args.concurrency, 100_001)
    )
    await checkouts()
    await load
    await redis.aclose()

    def per_op(d: dict[str, Any]) -> float:
        ops: int = args.ops
        return (int(d["writes"]) - int(d["setup_writes"])) / ops

    table.add("reservations/s, free allowance only", f"{free_rate:,.0f}")
    table.add(
        "reservations/s, paid credits in play",
        f"{paid_rate:,.0f} ({paid_rate / free_rate:.0%})",
        f">= {RATE_SHARE_GOAL:.0%} of free",
        paid_rate >= RATE_SHARE_GOAL * free_rate,
    )
    for name, wire_counts in (("free", free_rt), ("paid", paid_rt)):
        trips = per_op(wire_counts)
        table.add(
            f"round trips per reservation, {name}", f"{trips:.3f}", "1", trips <= 1.0, check=True
        )
    table.add(
        "free phase grants",
        str({g.name: n for g, n in free_grants.items()}),
        f"OK {args.ops}",
        free_grants.get(Grant.OK, 0) == args.ops,
        check=True,
    )
    expected = args.ops  # a free allowance of 1 credit never covers a cost of 2
    table.add(
        "paid grants / credits taken / ledger entries",
        f"{paid_ok} / {spent} / {ledger}",
        f"{expected} / {2 * expected} / {expected}",
        paid_ok == expected and spent == 2 * expected and ledger == expected,
        check=True,
    )
    p50, p99 = kit.pct(latencies, 50), kit.pct(latencies, 99)
    table.add("pre-checkout decision p50 under load", f"{p50 * 1000:.2f} ms")
    table.at_most("pre-checkout decision p99 under load", p99 * 1000, P99_GOAL * 1000, ".2f", " ms")
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    kit.options(
        parser,
        ops=(20_000, "reservations per phase"),
        users=(500, "user ids to spread over"),
        concurrency=(50, "reservations in flight"),
        warm=(2_000, "warm-up reservations"),
        checkouts=(300, "pre-checkout decisions timed"),
    )
    args = kit.parse(parser, argv, {"ops": 1_000, "users": 50, "warm": 100, "checkouts": 30})
    print(kit.machine())
    with kit.redis_server() as server, tempfile.TemporaryDirectory() as tmp:
        table = asyncio.run(run(args, server.url, Path(tmp)))
    table.print()
    return kit.verdict(args, table.goals, table.checks)


if __name__ == "__main__":
    sys.exit(main())
