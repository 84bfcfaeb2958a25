"""The daily-limit counters under load: reservations per second, round trips, exactness.
Two child processes, each with its own event loop and Redis clients, run
``bot.services.quota.Quota`` unchanged against a throwaway redis-server; after every phase
each user's hash is read back and compared with what the clients were told. See
bench/README.md for the phases, the round-trip counts and the goals."""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisError

from bench import kit
from bot.catalog import Catalog, load_catalog
from bot.services.quota import Grant, Quota, Reservation

RATE_FLOOR = 1000  # reservations per second per process
BURST = 200  # reservations fired at once per process in the small-cap phases
SMALL_CAP = 5
START_DELAY = 0.05  # seconds between telling the children and their common start
SCRIPT_COMMANDS = ("evalsha", "eval", "evalsha_ro", "eval_ro", "fcall", "fcall_ro")
# what the quota scripts call inside Redis (counted in INFO commandstats too)
INSIDE_SCRIPTS = frozenset({"hget", "hincrby", "hset", "expire"})
WARM_USERS = 9_000_000  # user ids for warm-ups, apart from every measured range
UTC = ZoneInfo("UTC")
QUICK = {"count": 300, "rounds": 1, "users": 50, "concurrency": 10, "warm": 30, "burst_rounds": 2}

# name -> (overall daily allowance in credits, 0 = none; model id -> (cost, own cap))
CATALOGS: dict[str, tuple[int, dict[str, tuple[int, int | None]]]] = {
    "roomy": (1_000_000, {"chat": (1, 1_000_000), "free": (1, None), "dear": (4, None)}),
    "tight": (6, {"chat": (1, 2), "free": (1, None), "dear": (4, None)}),
    "cap5-model": (0, {"chat": (1, SMALL_CAP), "free": (1, None), "dear": (4, None)}),
    "cap5-overall": (SMALL_CAP, {"chat": (1, None), "free": (1, None), "dear": (4, None)}),
}


def make_catalogs() -> dict[str, Catalog]:
    catalogs = {}
    with tempfile.TemporaryDirectory(prefix="bench-quota-") as tmp:
        for name, (overall, models) in CATALOGS.items():
            path = kit.write_catalog(
                Path(tmp) / f"{name}.toml",
                {"model": "chat", "daily_limit": overall},
                {"p": {"kind": "ollama", "base_url": "http://127.0.0.1:1"}},  # never called
                [
                    {"id": m, "title": m.title(), "provider": "p", "name": m, "cost": cost}
                    | {"daily_limit": cap}
                    for m, (cost, cap) in models.items()
                ],
            )
            catalogs[name] = load_catalog(path, {})
    return catalogs


def app_client(url: str, max_connections: int | None = None) -> Redis:
    """A client with the app's timeouts, health checks and retries (and, if given, a
    wider pool than redis-py's default)."""
    extra: dict[str, Any] = {} if max_connections is None else {"max_connections": max_connections}
    return Redis.from_url(
        url,
        socket_timeout=5,
        socket_connect_timeout=3,
        health_check_interval=30,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=2),
        **extra,
    )


def noon_today() -> float:
    now = datetime.now(UTC)
    return now.replace(hour=12, minute=0, second=0, microsecond=0).timestamp()


# -- the children ----------------------------------------------------------------------------


class Worker:
    """One bot-like process (see kit.Child): its own loop, its own clients, one Quota per
    catalog; its connections count what they send."""

    def __init__(self, index: int, url: str, now: float) -> None:
        self.index, self.url, self.now = index, url, now
        self.info = {"ready": True}
        self.wire = kit.RedisWire().__enter__()
        self.catalogs = make_catalogs()
        self.redis = app_client(url)
        self.burst_redis = app_client(url, max_connections=BURST + 56)
        self.quotas = {n: self.quota(self.redis, n) for n in self.catalogs}
        self.burst_quotas = {n: self.quota(self.burst_redis, n) for n in self.catalogs}
        self.kept: list[Reservation] = []  # the last phase's reservations, in order

    def quota(self, redis: Redis, catalog: str) -> Quota:
        return Quota(redis, self.catalogs[catalog], UTC, clock=lambda: self.now)

    async def aclose(self) -> None:
        await self.redis.aclose()
        await self.burst_redis.aclose()
        self.wire.__exit__()

    async def warm(self, concurrency: int, count: int, burst: bool = False) -> dict[str, Any]:
        """Fill the pool (every connection used once just now) and load the scripts."""
        quota = self.quotas["roomy"]
        chat = quota.catalog.models["chat"]
        jobs = iter(range(count))
        base = WARM_USERS + self.index * 1000

        async def work() -> None:
            for i in jobs:
                await quota.reserve(base + i % 100, [chat])
                await quota.refund(await quota.reserve(base + i % 100, [chat]), ["chat"])

        await asyncio.gather(*(work() for _ in range(concurrency)))
        if burst:
            bq, user = self.burst_quotas["roomy"], WARM_USERS + 500_000 + self.index
            await asyncio.gather(*(bq.reserve(user, [chat]) for _ in range(BURST)))
        return {}

    async def timed(self, start_at: float, work: Callable[[], Awaitable[Any]]) -> dict[str, Any]:
        """``work()`` from the common start: its window, this process's CPU, the wire."""
        await asyncio.sleep(max(0.0, start_at - time.monotonic()))
        sent0 = self.wire.counts()
        cpu0, t0 = time.process_time(), time.monotonic()
        await work()
        t1, cpu1 = time.monotonic(), time.process_time()
        sent = kit.RedisWire.since(sent0, self.wire.counts())
        return {"start": t0, "end": t1, "cpu": cpu1 - cpu0, **sent}

    async def reserve(
        self,
        catalog: str,
        base: int,
        users: int,
        count: int,
        concurrency: int,
        models: list[list[str]],
        seed: int,
        start_at: float,
    ) -> dict[str, Any]:
        quota = self.quotas[catalog]
        rng = random.Random(seed)
        choices = [[quota.catalog.models[m] for m in group] for group in models]
        jobs = [(base + rng.randrange(users), rng.choice(choices)) for _ in range(count)]
        results: list[Reservation | None] = [None] * len(jobs)
        todo = iter(enumerate(jobs))

        async def work() -> None:
            for i, (user, group) in todo:
                results[i] = await quota.reserve(user, group)

        timing = await self.timed(start_at, lambda: _together(work, concurrency))
        self.kept = [r for r in results if r is not None]
        assert len(self.kept) == len(jobs)
        return {**timing, "ops": len(jobs), **_tally(self.kept)}

    async def refund(
        self,
        catalog: str,
        every: int,
        concurrency: int,
        start_at: float,
        burst_client: bool = False,
    ) -> dict[str, Any]:
        """Refund the granted models of every ``every``-th kept reservation that has any."""
        quota = (self.burst_quotas if burst_client else self.quotas)[catalog]
        cost = {m.id: m.cost for m in quota.catalog.models.values()}
        chosen = [r for r in self.kept if r.granted][::every]
        backs: list[int] = [0] * len(chosen)
        todo = iter(enumerate(chosen))

        async def work() -> None:
            for i, r in todo:
                backs[i] = await quota.refund(r, r.granted)

        timing = await self.timed(start_at, lambda: _together(work, concurrency))
        refunded: Counter[tuple[int, str]] = Counter()
        for r, back in zip(chosen, backs, strict=True):
            if back:  # this process gave the credits back (not a refund already made)
                assert back == sum(cost[m] for m in r.granted)
                refunded.update((_user(r), m) for m in r.granted)
        return {
            **timing,
            "ops": len(chosen),
            "credits": sum(backs),
            "asked": sum(cost[m] for r in chosen for m in r.granted),
            "refunded": dict(refunded),
        }

    async def burst(
        self,
        catalog: str,
        model: str,
        user: int,
        count: int,
        start_at: float,
        ids: list[str] | None = None,
        app_pool: bool = False,
    ) -> dict[str, Any]:
        """``count`` reservations for one user at once (request ids given or fresh)."""
        redis = app_client(self.url) if app_pool else self.burst_redis
        quota = self.quota(redis, catalog) if app_pool else self.burst_quotas[catalog]
        spec = quota.catalog.models[model]
        rids: list[str | None] = list(ids) if ids else [None] * count
        outcomes: list[Reservation | BaseException] = []  # gather's, exceptions returned

        async def work() -> None:
            calls = (quota.reserve(user, [spec], request_id=r) for r in rids)
            outcomes.extend(await asyncio.gather(*calls, return_exceptions=True))

        try:
            timing = await self.timed(start_at, work)
        finally:
            if app_pool:
                await redis.aclose()
        self.kept = [r for r in outcomes if isinstance(r, Reservation)]
        errors = Counter(
            f"{type(e).__name__}: {e}" for e in outcomes if not isinstance(e, Reservation)
        )
        return {**timing, "ops": len(outcomes), "errors": dict(errors), **_tally(self.kept)}


async def _together(work: Callable[[], Awaitable[None]], concurrency: int) -> None:
    await asyncio.gather(*(work() for _ in range(concurrency)))


async def start_worker(index: int, url: str, now: float) -> Worker:
    return Worker(index, url, now)


def _user(reservation: Reservation) -> int:
    return int(reservation.key.split("{", 1)[1].split("}", 1)[0])


def _tally(reservations: list[Reservation]) -> dict[str, Any]:
    """Per (user, model): grants; per code: counts; the denials, for the justice check."""
    grants: Counter[tuple[int, str]] = Counter()
    codes: Counter[str] = Counter()
    denials: Counter[tuple[int, str, int]] = Counter()
    for r in reservations:
        for model, grant in r.grants.items():
            codes[grant.name] += 1
            if grant == Grant.OK:
                grants[(_user(r), model)] += 1
            else:
                denials[(_user(r), model, int(grant))] += 1
    return {"grants": dict(grants), "codes": dict(codes), "denials": dict(denials)}


def run_all(children: list[kit.Child], op: str, **cmd: Any) -> list[dict[str, Any]]:
    """``op`` in every child (one common start instant); their replies."""
    cmd["start_at"] = time.monotonic() + START_DELAY
    for i, child in enumerate(children):
        child.send(op, **({**cmd, "seed": cmd["seed"] * 10 + i} if "seed" in cmd else cmd))
    return [child.reply() for child in children]


# -- Redis-side measurement and checks ---------------------------------------------------


def server_delta(before: kit.RedisInfo, after: kit.RedisInfo) -> dict[str, Any]:
    """A phase at the server: script calls (and their time), every other command."""
    calls: dict[str, int] = {}
    usec = failed = scripts = 0
    for name, (c, u, f) in after.commands.items():
        c0, u0, f0 = before.commands.get(name, (0, 0, 0))
        if name == "info" or c == c0:  # the probe's own INFO calls
            continue
        calls[name] = c - c0
        failed += f - f0
        if name in SCRIPT_COMMANDS:
            scripts += c - c0
            usec += u - u0
    return {
        "scripts": scripts,
        "others": {n: c for n, c in calls.items() if n not in SCRIPT_COMMANDS},
        "failed": failed,
        "script_usec": usec,
        "cpu": after.cpu - before.cpu,
        "wall": after.at - before.at,
        "memory": after.memory - before.memory,
    }


class Ledger:
    """What the clients were told, per user, to compare with the hashes in Redis."""

    def __init__(self, catalogs: dict[str, Catalog]) -> None:
        self.catalogs = catalogs
        self.state: dict[int, dict[str, Any]] = defaultdict(lambda: kit.quota_hash({}))

    def add(self, catalog: str, counts: dict[tuple[int, str], int], sign: int) -> None:
        """Grants (``sign`` 1) or refunds (-1) as the clients reported them."""
        models = self.catalogs[catalog].models
        for (user, model), n in counts.items():
            s = self.state[user]
            s["total"] += sign * models[model].cost * n
            s["m"][model] += sign * n
            s["live"] += sign * n
            s["x"] += n if sign < 0 else 0

    def expected(self, user: int) -> dict[str, Any]:
        s = self.state.get(user) or kit.quota_hash({})
        return {**s, "m": +Counter(s["m"])}


async def read_users(redis: Redis, quota: Quota, users: range) -> dict[int, dict[str, Any]]:
    date, _ = quota.day()
    out: dict[int, dict[str, Any]] = {}
    ids = list(users)
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        async with redis.pipeline(transaction=False) as pipe:
            for user in chunk:
                pipe.hgetall(quota.key(user, date))
            raws = await pipe.execute()
        out.update({u: kit.quota_hash(raw) for u, raw in zip(chunk, raws, strict=True)})
    return out


def check_users(
    ledger: Ledger, catalog: Catalog, actual: dict[int, dict[str, Any]], denials: dict[Any, int]
) -> dict[str, Any]:
    """Compare Redis with the ledger; caps never exceeded; every denial justified."""
    overall = catalog.defaults.daily_limit
    over_cap = 0
    for got in actual.values():
        over_cap += bool(overall) and got["total"] > overall
        for model, n in got["m"].items():
            cap = catalog.models[model].daily_limit
            over_cap += bool(cap) and n > (cap or 0)
    unjust = 0
    for (user, model, code), n in denials.items():
        got, spec = actual[user], catalog.models[model]
        if code == Grant.MODEL_CAP:
            justified = bool(spec.daily_limit) and got["m"][model] >= (spec.daily_limit or 0)
        elif code == Grant.OVERALL_CAP:
            justified = bool(overall) and got["total"] + spec.cost > overall
        else:  # REFUNDED: never expected, every request id here is fresh
            justified = False
        unjust += 0 if justified else n
    return {
        "mismatched": [u for u, got in actual.items() if got != ledger.expected(u)],
        "over_cap": over_cap,
        "unjust": unjust,
        "redis_grants": sum(sum(s["m"].values()) + s["x"] for s in actual.values()),
        "redis_live": sum(sum(s["m"].values()) for s in actual.values()),
    }


async def hash_bytes(redis: Redis, quota: Quota, users: range) -> int:
    """``MEMORY USAGE`` summed over these users' hashes of the day."""
    date, _ = quota.day()
    async with redis.pipeline(transaction=False) as pipe:
        for user in users:
            pipe.memory_usage(quota.key(user, date), samples=0)
        sizes = await pipe.execute()
    return sum(size or 0 for size in sizes)


def merge_rows(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Rounds of one phase as one row: counts summed, rates the median of the rounds'."""
    first = rows[0]
    delta: dict[str, Any] = {k: 0 for k in first["delta"] if k != "others"}
    others: Counter[str] = Counter()
    codes: Counter[str] = Counter()
    sent: Counter[str] = Counter()
    for row in rows:
        for k in delta:
            delta[k] += row["delta"][k]
        others.update(row["delta"]["others"])
        codes.update(row["codes"])
        sent.update(row["sent"])
    merged = {
        **first,
        "phase": f"{first['phase']} x{len(rows)}",
        **{k: sum(r[k] for r in rows) for k in ("ops", "wall", "cpu", "writes")},
        "delta": {**delta, "others": dict(others)},
        "codes": codes,
        "sent": dict(sent),
        "rate": statistics.median(r["rate"] for r in rows),
        "rates": [r["rate"] for r in rows],
        "per_proc": [
            statistics.median(r["per_proc"][i] for r in rows) for i in range(len(first["per_proc"]))
        ],
    }
    grants = [r["bytes_per_grant"] for r in rows if "bytes_per_grant" in r]
    if grants:
        merged["bytes_per_grant"] = statistics.median(grants)
    return merged


def merge_checks(checks: list[tuple[str, str, str, bool]]) -> tuple[str, str, str, bool]:
    """Rounds' checks as one: the first failing round's figures, else the last round's."""
    bad = [c for c in checks if not c[3]]
    _, want, got, _ = bad[0] if bad else checks[-1]
    label = f"{checks[0][0]} x{len(checks)}"
    if bad:
        return label, want, f"{got} ({len(bad)} of {len(checks)} rounds failed)", False
    return label, want, f"{got} (last round; all {len(checks)} passed)", True


# -- the phases ------------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace, url: str, now: float) -> None:
        self.args, self.url, self.now = args, url, now
        self.redis = Redis.from_url(url)
        self.catalogs = make_catalogs()
        self.ledger = Ledger(self.catalogs)
        self.reader = Quota(self.redis, self.catalogs["roomy"], UTC, clock=lambda: now)
        self.rows: list[dict[str, Any]] = []  # throughput and round trips
        self.checks: list[tuple[str, str, str, bool]] = []  # what, expected, got, ok
        self.notes: list[str] = []
        self.server_version = "?"

    def check(self, what: str, expected: str, got: str, ok: bool) -> None:
        self.checks.append((what, expected, got, ok))

    async def user_hash(self, user: int) -> dict[str, Any]:
        return kit.quota_hash(await self.redis.hgetall(self.reader.key(user, self.reader.day()[0])))

    def warm(self, children: list[kit.Child], burst: bool = False) -> None:
        for child in children:
            child.send("warm", concurrency=self.args.concurrency, count=self.args.warm, burst=burst)
        for child in children:
            child.reply()

    async def cold_start(self) -> None:
        await self.redis.script_flush()
        client = app_client(self.url)
        quota = Quota(client, self.catalogs["roomy"], UTC, clock=lambda: self.now)
        chat = quota.catalog.models["chat"]
        try:
            with kit.RedisWire() as wire:
                for label in ("cold: 1st reservation, new client", "cold: 2nd reservation"):
                    before = await kit.RedisInfo.take(self.redis)
                    sent0 = wire.counts()
                    await quota.reserve(WARM_USERS + 900_000, [chat])
                    sent = kit.RedisWire.since(sent0, wire.counts())
                    d = server_delta(before, await kit.RedisInfo.take(self.redis))
                    self.rows.append({"phase": label, "ops": 1, "delta": d, "goal": False, **sent})
        finally:
            await client.aclose()

    async def phase(
        self,
        label: str,
        children: list[kit.Child],
        op: str,
        cmd: dict[str, Any],
        users: range | None = None,
        rate_goal: bool = True,
    ) -> list[dict[str, Any]]:
        if op != "burst":  # bursts use their own, already warm, client
            self.warm(children)
        before = await kit.RedisInfo.take(self.redis)
        replies = run_all(children, op, **cmd)
        d = server_delta(before, await kit.RedisInfo.take(self.redis))
        start, end = min(r["start"] for r in replies), max(r["end"] for r in replies)
        ops = sum(r["ops"] for r in replies)
        row = {
            "phase": label,
            "ops": ops,
            "wall": end - start,
            "rate": ops / (end - start),
            "cpu": sum(r["cpu"] for r in replies),
            "delta": d,
            "codes": sum((Counter(r.get("codes", {})) for r in replies), Counter()),
            "goal": True,
            "rate_goal": rate_goal,
            "per_proc": [r["ops"] / (r["end"] - r["start"]) for r in replies],
            "writes": sum(r["writes"] for r in replies),
            "sent": dict(sum((Counter(r["sent"]) for r in replies), Counter())),
        }
        self.rows.append(row)
        if users is None:
            return replies
        catalog = self.catalogs[cmd["catalog"]]
        denials: Counter[Any] = Counter()
        for r in replies:
            if op == "refund":
                self.ledger.add(cmd["catalog"], r["refunded"], -1)
            else:
                self.ledger.add(cmd["catalog"], r["grants"], 1)
                denials.update(r["denials"])
        actual = await read_users(self.redis, self.reader, users)
        result = check_users(self.ledger, catalog, actual, dict(denials))
        told = sum(sum(s["m"].values()) for s in map(self.ledger.expected, users))
        want = f"m:* {told}, 0 users differ"
        got = f"m:* {result['redis_live']}, {len(result['mismatched'])} users differ"
        good = not result["mismatched"] and result["redis_live"] == told
        if op != "refund":
            want += ", 0 over a cap, 0 unjust denials"
            got += f", {result['over_cap']} over a cap, {result['unjust']} unjust denials"
            good = good and result["over_cap"] == 0 and result["unjust"] == 0
            size = await hash_bytes(self.redis, self.reader, users)
            row["bytes_per_grant"] = size / max(1, result["redis_grants"])
        else:
            credits = sum(r["credits"] for r in replies)
            asked = sum(r["asked"] for r in replies)  # each reservation refunded once
            want += f", {asked} credits back"
            got += f", {credits} credits back"
            good = good and credits == asked
        self.check(label, want, got, good)
        return replies

    async def main_phases(self, children: list[kit.Child]) -> None:
        """(a) reserve with caps far away, (b) refund half, (c) reserve with tight caps,
        (d) three models per call; each phase ``--rounds`` times on fresh user ids, in one
        process then (a)-(c) in two; each label's rows and checks folded into one."""
        n, users, rounds = self.args.count, self.args.users, self.args.rounds
        mixed, three = [["chat"], ["free"], ["dear"]], [["chat", "free", "dear"]]
        for procs in (1, 2):
            group, who = children[:procs], f"{procs}p"
            plan: list[tuple[str, str, str, int, list[list[str]], int]] = [
                (f"{who} reserve, caps far", "reserve", "roomy", 1, [["chat"]], n),
                (f"{who} refund half of those", "refund", "roomy", 1, [], 0),
                (f"{who} reserve, mostly denied", "reserve", "tight", 2, mixed, n),
            ]
            if procs == 1:
                plan.append(("1p reserve, 3 models/call", "reserve", "roomy", 3, three, n // 2))
            rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
            checks: dict[str, list[tuple[str, str, str, bool]]] = defaultdict(list)
            for round_ in range(rounds):
                for label, op, catalog, kind, models, count in plan:
                    base = (procs * 10 + kind) * 1_000_000 + round_ * 100_000
                    cmd: dict[str, Any] = {"catalog": catalog, "concurrency": self.args.concurrency}
                    if op == "refund":
                        cmd["every"] = 2
                    else:
                        cmd |= {"base": base, "users": users, "models": models, "seed": base}
                        cmd["count"] = max(1, count)
                    await self.phase(label, group, op, cmd, range(base, base + users))
                    rows[label].append(self.rows.pop())
                    checks[label].append(self.checks.pop())
            self.rows += [merge_rows(r) for r in rows.values()]
            self.checks += [merge_checks(c) for c in checks.values()]

    async def small_caps(self, children: list[kit.Child]) -> None:
        rounds = self.args.burst_rounds
        for catalog, what in (("cap5-model", "model cap 5"), ("cap5-overall", "overall cap 5")):
            totals = []
            for round_ in range(rounds):
                user = 3_000_000 + round_ + (100 if catalog == "cap5-overall" else 0)
                cmd = {"catalog": catalog, "model": "chat", "user": user, "count": BURST}
                label = f"2p x {BURST} at once, {what}"
                replies = await self.phase(label, children, "burst", cmd, rate_goal=False)
                told = sum(sum(r["grants"].values()) for r in replies)
                errors = sum(sum(r["errors"].values()) for r in replies)
                got = await self.user_hash(user)
                totals.append((told, got["m"]["chat"], got["total"], errors))
            self.rows[-rounds:] = [merge_rows(self.rows[-rounds:])]
            self.check(
                f"2p x {BURST} at once for one user, {what}, {rounds} rounds",
                f"{SMALL_CAP} granted, m:chat {SMALL_CAP}, total {SMALL_CAP}, 0 errors",
                "; ".join(f"{t[0]}/{t[1]}/{t[2]}/{t[3]}err" for t in totals),
                all(t == (SMALL_CAP, SMALL_CAP, SMALL_CAP, 0) for t in totals),
            )
        # the same request ids from both processes at once (a retry race), then both
        # refund the same half at once: counted once, given back once
        user = 3_000_500
        ids = [f"retry-{i}" for i in range(BURST)]
        replies = run_all(
            children, "burst", catalog="roomy", model="chat", user=user, ids=ids, count=BURST
        )
        seen = [sum(r["grants"].values()) for r in replies]
        got = await self.user_hash(user)
        self.check(
            f"2p reserve the same {BURST} request ids at once",
            f"each process told {BURST} OK; m:chat {BURST}",
            f"told {seen}; m:chat {got['m']['chat']}, r: fields {got['live']}",
            seen == [BURST, BURST] and got["m"]["chat"] == BURST and got["live"] == BURST,
        )
        replies = run_all(
            children, "refund", catalog="roomy", every=2, concurrency=BURST, burst_client=True
        )
        credits = sum(r["credits"] for r in replies)
        got = await self.user_hash(user)
        half = BURST // 2
        self.check(
            f"2p refund the same {half} reservations at once",
            f"{half} credits back in all; m:chat {half}, {half} x",
            f"{credits} back ({[r['credits'] for r in replies]}); m:chat {got['m']['chat']}, "
            f"{got['x']} x",
            credits == half and got["m"]["chat"] == half and got["x"] == half,
        )

    async def app_pool_burst(self, children: list[kit.Child]) -> None:
        (reply,) = run_all(
            children[:1],
            "burst",
            catalog="cap5-model",
            model="chat",
            user=3_000_900,
            count=BURST,
            app_pool=True,
        )
        errors = reply["errors"]
        self.notes.append(
            f"The app's client (redis-py default pool, max 100 connections) firing {BURST} "
            f"reservations at once: {sum(errors.values())} of {BURST} raised "
            + (", ".join(f"{e} x{n}" for e, n in errors.items()) or "nothing")
            + f"; granted {sum(reply['grants'].values())}."
        )


# -- report ----------------------------------------------------------------------------------


def _names(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {c}" for n, c in sorted(counts.items())) or "0"


def round_trips(row: dict[str, Any]) -> dict[str, Any]:
    """One row's round trips, from the client's writes and the server's commandstats."""
    d, ops = row["delta"], row["ops"]
    client_other = {n: c for n, c in row["sent"].items() if n not in SCRIPT_COMMANDS}
    client_scripts = sum(c for n, c in row["sent"].items() if n in SCRIPT_COMMANDS)
    # commandstats counts the commands a script calls, too: those are not round trips
    inside = sum(c for n, c in d["others"].items() if n in INSIDE_SCRIPTS)
    unexplained = {
        n: c - client_other.get(n, 0)
        for n, c in d["others"].items()
        if n not in INSIDE_SCRIPTS and c > client_other.get(n, 0)
    }
    one = row["writes"] == ops and client_scripts == ops and not client_other
    return {
        "client_other": client_other,
        "inside": inside - sum(client_other.get(n, 0) for n in INSIDE_SCRIPTS),
        "unexplained": unexplained,
        "one": one and d["scripts"] == ops and not d["failed"] and not unexplained,
    }


def report(bench: Bench) -> tuple[bool, bool]:
    """Print the tables; (goals met, the counters' checks passed)."""
    goals = True
    args = bench.args
    print(
        f"\nredis-server {bench.server_version}, {kit.machine()} (redis-server and the "
        f"clients share the CPUs); {args.count} reservations per process, {args.users} "
        f"users, {args.concurrency} in flight per process.\n"
    )
    head = (
        f"{'phase':<36} | {'ops':>6} | {'ops/s':>6} | {'ops/s':>11} | {'RT/op':>5} | "
        f"{'EVALSHA':>7} | {'other':>5} | {'in-script':>9} | {'srv us':>6} | {'cli us':>6} | "
        f"{'redis':>5} | goal"
    )
    print(head)
    print(
        f"{'':<36} | {'':>6} | {'total':>6} | {'per proc':>11} | {'(cli)':>5} | "
        f"{'/op srv':>7} | {'cmds':>5} | {'cmds/op':>9} | {'/call':>6} | {'CPU/op':>6} | "
        f"{'CPU%':>5} | 1 RT/op, >={RATE_FLOOR}/s/proc"
    )
    print("-" * len(head))
    for row in bench.rows:
        d, ops = row["delta"], row["ops"]
        rt = round_trips(row)
        per_call = d["script_usec"] / d["scripts"] if d["scripts"] else 0.0
        other = sum(rt["client_other"].values()) + sum(rt["unexplained"].values())
        rate, per_proc, cli, redis_cpu = f"{'-':>6}", "-", f"{'-':>6}", f"{'-':>5}"
        if "wall" in row:
            rate = f"{row['rate']:>6.0f}"
            per_proc = "/".join(f"{p:.0f}" for p in row["per_proc"])
            cli = f"{row['cpu'] / ops * 1e6:>6.0f}"
            redis_cpu = f"{d['cpu'] / d['wall'] * 100:>5.0f}"
        verdict = "-"
        if row["goal"]:
            fast = not row["rate_goal"] or all(p >= RATE_FLOOR for p in row["per_proc"])
            goals = goals and rt["one"] and fast
            verdict = "yes" if rt["one"] and fast else ("NO (RT)" if not rt["one"] else "NO (rate)")
            verdict += "" if row["rate_goal"] else " (RT only)"
        print(
            f"{row['phase']:<36} | {ops:>6} | {rate} | {per_proc:>11} | "
            f"{row['writes'] / ops:>5.2f} | {d['scripts'] / ops:>7.2f} | {other:>5} | "
            f"{rt['inside'] / ops:>9.2f} | {per_call:>6.1f} | {cli} | {redis_cpu} | {verdict}"
        )
    print(
        "\nRT/op: the client's writes per call (each waits for its reply); EVALSHA/op: "
        "script calls at the server\n(INFO commandstats, failed ones included); other cmds: "
        "any other command a client sent; in-script:\nthe HGET/HINCRBY/HSET/EXPIRE the "
        "script runs inside Redis (commandstats counts them too; not round trips)."
    )
    print("\nCold start (this process, after SCRIPT FLUSH, a new client with the app's settings):")
    for row in (row for row in bench.rows if not row["goal"]):
        d = row["delta"]
        server = {n: c for n, c in d["others"].items() if n not in INSIDE_SCRIPTS}
        print(
            f"  {row['phase']:<36} {row['writes']} round trip(s); client sent: "
            f"{_names(row['sent'])}; server: scripts {d['scripts']} ({d['failed']} failed), "
            f"{_names(server)}"
        )
    print("\nOutcomes per phase (grant codes over all models reserved):")
    for row in (row for row in bench.rows if row.get("codes")):
        total = sum(row["codes"].values())
        parts = ", ".join(f"{c} {n} ({n / total:.0%})" for c, n in sorted(row["codes"].items()))
        extra = ""
        if len(row.get("rates", ())) > 1:
            extra += "; ops/s by round " + "/".join(f"{r:.0f}" for r in row["rates"])
        if "bytes_per_grant" in row:
            extra += f"; {row['bytes_per_grant']:.0f} B of hash per grant"
        print(f"  {row['phase']:<36} {parts}{extra}")
    print("\nCorrectness (Redis read back after each phase and compared per user):")
    width = max(len(c[0]) for c in bench.checks)
    for what, expected, got, good in bench.checks:
        print(f"  {what:<{width}} | {'yes' if good else 'NO':<3} | want {expected}")
        print(f"  {'':<{width}} |     | got  {got}")
    if bench.notes:
        print("\nNotes:\n" + "\n".join(f"  {note}" for note in bench.notes))
    return goals, all(c[3] for c in bench.checks)


async def run(args: argparse.Namespace, server_url: str) -> tuple[bool, bool]:
    now = noon_today()
    bench = Bench(args, server_url, now)
    bench.server_version = (await bench.redis.info("server"))["redis_version"]
    started = [kit.Child(start_worker, i, server_url, now, name=f"quota-{i}") for i in range(2)]
    try:
        with kit.children(*started) as children:
            await bench.cold_start()
            bench.warm(children, burst=True)
            await bench.main_phases(children)
            bench.warm(children, burst=True)  # the burst clients again: none idle too long
            await bench.small_caps(children)
            await bench.app_pool_burst(children)
    finally:
        await bench.redis.aclose()
    return report(bench)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument(
        "--count", type=int, default=10_000, help="reservations per process and round"
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the main phases")
    parser.add_argument("--users", type=int, default=1000, help="user ids to spread over")
    parser.add_argument("--concurrency", type=int, default=50, help="in flight per process")
    parser.add_argument("--warm", type=int, default=300, help="warm-up reservations per phase")
    parser.add_argument("--burst-rounds", type=int, default=5, help="rounds per small cap")
    args = kit.parse(parser, argv, QUICK)
    if not (1 <= args.count <= 1_000_000 and 1 <= args.users <= 90_000 and 1 <= args.rounds <= 9):
        parser.error("count must be 1..1000000, users 1..90000, rounds 1..9")
    if not 1 <= args.concurrency <= 90:
        parser.error("concurrency must be 1..90 (the app's pool holds 100 connections)")
    if args.warm < 1 or args.burst_rounds < 1:
        parser.error("warm and burst-rounds must be >= 1")
    try:
        with kit.redis_server() as server:
            goals, checks = asyncio.run(run(args, server.url))
    except RedisError as exc:
        print(f"Redis failed: {exc}", file=sys.stderr)
        return 1
    return kit.verdict(args, goals, checks)


if __name__ == "__main__":
    sys.exit(main())
