"""The daily-limit counters under load: reservations per second, round trips, exactness.

Run from the repository root, either way::

    .venv/bin/python -m bench.quota
    .venv/bin/python bench/quota.py [--count 10000] [--rounds 3] [--users 1000]
                                    [--concurrency 50]

A throwaway redis-server (``tests.redis_server.RedisServer``, loopback only) serves two
child processes, each with its own event loop and its own Redis client built as
``App.build`` builds it (timeouts, 30 s health checks, retries, redis-py's default pool of
100 connections). Each child runs ``bot.services.quota.Quota`` unchanged: one Lua script
per reservation or refund, sent as EVALSHA. The clock is fixed at noon UTC today, so a
run never straddles midnight. Before every timed phase each child makes a warm-up (the
pool filled, the scripts loaded); the children then start at one ``time.monotonic()``
instant.

Phases, in order:

1. Cold start, in this process: ``SCRIPT FLUSH``, then a new client's first and second
   reservation (what a restart of Redis or of the bot costs once).
2. One process, ``--rounds`` rounds of: (a) ``--count`` reservations, ``--concurrency``
   in flight, users drawn at random from ``--users`` ids, with a catalog whose overall
   and model caps are far away (nothing is denied); (b) refunds of every other grant of
   (a), as many in flight; (c) ``--count`` reservations with a tight catalog (overall 6
   credits, ``chat`` capped at 2 a day, ``dear`` costing 4) where most are denied; (d)
   ``--count``/2 /compare-style reservations of three models in one call. Each round
   uses fresh user ids; a phase's rate is the median of its rounds.
3. The same (a)-(c) in two processes at once, both on one set of user ids per round.
4. Small caps: two processes each fire 200 reservations at once for one user (a burst
   client with room for 200 connections), five rounds each for a model cap of 5 and for
   an overall cap of 5 credits; then both processes reserve the same 200 request ids at
   once (a retry race) and refund the same 100 of them at once.
5. The app's own client (default pool) firing 200 reservations at once: what a burst
   wider than the pool does.

Round trips are counted twice. At the server, ``INFO commandstats`` deltas around each
phase: script calls (``evalsha``/``eval``, failed ones included) and every other command
(this script's own ``INFO`` left out); Redis counts the commands a script calls inside
(HGET, HINCRBY, HSET, EXPIRE) there too, so those are shown apart, as in-script work. At
the client, the connections count their writes (each waits for its reply: one round
trip) and name every command sent, connection set-up and health-check PINGs included.
Redis CPU is ``used_cpu_user + used_cpu_sys`` over the phase's window.

After each phase every user's hash is read back and compared with what the clients were
told: ``m:<model>`` = grants - refunds, ``total`` = credits, one ``r:`` field per grant
(``x`` once refunded), no cap exceeded, and every denial justified by the final counters
(a model-cap denial needs the model's counter at its cap; an overall one needs the total
plus the cost above the allowance).

Goals: exactly one round trip per reservation and per refund in steady state (one client
write, one script call at the server, no other command); counters equal to the grants
reported; exactly 5 granted for a cap of 5; each process at least ``RATE_FLOOR``
reservations/s (this bench's own floor, about 30x Telegram's ~30 messages/s per bot).
The machine is shared by redis-server and both clients: the rates are noisy, the round
trips and the counters are exact. Prints the tables; exits 1 when a goal is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import random
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar
from zoneinfo import ZoneInfo

# ``python bench/quota.py`` puts bench/ first on sys.path; the bot and the test helpers
# are imported from the repository root (in this process and in the children).
ROOT = str(Path(__file__).resolve().parent.parent)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from redis.asyncio import Redis  # noqa: E402
from redis.asyncio.connection import Connection as RedisConnection  # noqa: E402
from redis.asyncio.retry import Retry  # noqa: E402
from redis.backoff import ExponentialBackoff  # noqa: E402
from redis.exceptions import RedisError  # noqa: E402

from bot.catalog import Catalog, load_catalog  # noqa: E402
from bot.services.quota import Grant, Quota, Reservation  # noqa: E402
from tests.redis_server import RedisServer  # noqa: E402

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

RATE_FLOOR = 1000  # reservations per second per process
BURST = 200  # reservations fired at once per process in the small-cap phases
BURST_ROUNDS = 5
SMALL_CAP = 5
WARM = 300  # warm-up reservations per child before each timed phase
START_DELAY = 0.05  # seconds between telling the children and their common start
REPLY_TIMEOUT = 60.0  # seconds to wait for a child's reply
SCRIPT_COMMANDS = ("evalsha", "eval", "evalsha_ro", "eval_ro", "fcall", "fcall_ro")
# what the quota scripts call inside Redis (counted in INFO commandstats too)
INSIDE_SCRIPTS = frozenset({"hget", "hincrby", "hset", "expire"})
WARM_USERS = 9_000_000  # user ids for warm-ups, apart from every measured range
UTC = ZoneInfo("UTC")

# name -> (overall daily allowance in credits, 0 = none; model id -> (cost, own cap))
CATALOGS: dict[str, tuple[int, dict[str, tuple[int, int | None]]]] = {
    "roomy": (1_000_000, {"chat": (1, 1_000_000), "free": (1, None), "dear": (4, None)}),
    "tight": (6, {"chat": (1, 2), "free": (1, None), "dear": (4, None)}),
    "cap5-model": (0, {"chat": (1, SMALL_CAP), "free": (1, None), "dear": (4, None)}),
    "cap5-overall": (SMALL_CAP, {"chat": (1, None), "free": (1, None), "dear": (4, None)}),
}


def catalog_toml(name: str) -> str:
    overall, models = CATALOGS[name]
    lines = [
        "[defaults]",
        'model = "chat"',
        f"daily_limit = {overall}",
        "",
        "[providers.p]",
        'kind = "ollama"',
        'base_url = "http://127.0.0.1:1"',  # never called
    ]
    for model, (cost, cap) in models.items():
        lines += ["", "[[models]]", f'id = "{model}"', f'title = "{model.title()}"']
        lines += ['provider = "p"', f'name = "{model}"', f"cost = {cost}"]
        if cap is not None:
            lines.append(f"daily_limit = {cap}")
    return "\n".join(lines) + "\n"


def make_catalogs() -> dict[str, Catalog]:
    with tempfile.TemporaryDirectory(prefix="bench-quota-") as tmp:
        catalogs = {}
        for name in CATALOGS:
            path = Path(tmp) / f"{name}.toml"
            path.write_text(catalog_toml(name), encoding="utf-8")
            catalogs[name] = load_catalog(path, {})
        return catalogs


class CountingConnection(RedisConnection):
    """A redis-py connection that counts what the client sends, per process.

    Every ``send_packed_command`` is one write followed by reading its reply: one round
    trip (the quota service sends no pipelines). ``send_command`` names each command,
    connection set-up and health-check PINGs included.
    """

    writes: ClassVar[int] = 0
    names: ClassVar[Counter[str]] = Counter()

    async def send_command(self, *args: Any, **kwargs: Any) -> None:
        words = [a.decode() if isinstance(a, bytes) else str(a) for a in args[:2]]
        name = words[0].lower()
        if name in ("client", "script", "config", "memory") and len(words) > 1:
            name += "|" + words[1].lower()
        CountingConnection.names[name] += 1
        await super().send_command(*args, **kwargs)

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        CountingConnection.writes += 1
        await super().send_packed_command(command, check_health)


def wire() -> tuple[int, Counter[str]]:
    return CountingConnection.writes, Counter(CountingConnection.names)


def wire_delta(before: tuple[int, Counter[str]]) -> dict[str, Any]:
    writes, names = wire()
    return {"writes": writes - before[0], "sent": dict(names - before[1])}


def app_client(url: str, max_connections: int | None = None) -> Redis:
    """A client built as ``App.build`` builds it (plus, if given, a wider pool), whose
    connections count what they send."""
    extra: dict[str, Any] = {} if max_connections is None else {"max_connections": max_connections}
    return Redis.from_url(
        url,
        connection_class=CountingConnection,
        socket_timeout=5,
        socket_connect_timeout=3,
        health_check_interval=30,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=2),
        **extra,
    )


def noon_today() -> float:
    now = datetime.now(UTC)
    return now.replace(hour=12, minute=0, second=0, microsecond=0).timestamp()


# -- the children ------------------------------------------------------------------


class Worker:
    """One bot-like process: its own loop, its own clients, one Quota per catalog."""

    def __init__(self, index: int, url: str, now: float) -> None:
        self.index = index
        self.url = url
        self.catalogs = make_catalogs()
        self.redis = app_client(url)
        self.burst_redis = app_client(url, max_connections=BURST + 56)
        self.quotas = {
            n: Quota(self.redis, c, UTC, clock=lambda: now) for n, c in self.catalogs.items()
        }
        self.burst_quotas = {
            n: Quota(self.burst_redis, c, UTC, clock=lambda: now) for n, c in self.catalogs.items()
        }
        self.now = now
        self.kept: list[Reservation] = []  # the last phase's reservations, in order

    async def close(self) -> None:
        await self.redis.aclose()
        await self.burst_redis.aclose()

    async def warm(self, concurrency: int, burst: bool) -> dict[str, Any]:
        """Fill the pool (every connection used once just now) and load the scripts."""
        quota = self.quotas["roomy"]
        chat = quota.catalog.models["chat"]
        jobs = iter(range(WARM))

        async def work() -> None:
            for i in jobs:
                await quota.reserve(WARM_USERS + self.index * 1000 + i % 100, [chat])
                res = await quota.reserve(WARM_USERS + self.index * 1000 + i % 100, [chat])
                await quota.refund(res, ["chat"])

        await asyncio.gather(*(work() for _ in range(concurrency)))
        if burst:
            bq = self.burst_quotas["roomy"]
            user = WARM_USERS + 500_000 + self.index
            await asyncio.gather(*(bq.reserve(user, [chat]) for _ in range(BURST)))
        return {}

    async def reserve(self, cmd: dict[str, Any]) -> dict[str, Any]:
        quota = self.quotas[cmd["catalog"]]
        models = quota.catalog.models
        rng = random.Random(cmd["seed"])
        choices = [[models[m] for m in group] for group in cmd["models"]]
        jobs = [
            (cmd["base"] + rng.randrange(cmd["users"]), rng.choice(choices))
            for _ in range(cmd["count"])
        ]
        results: list[Reservation | None] = [None] * len(jobs)
        todo = iter(enumerate(jobs))

        async def work() -> None:
            for i, (user, group) in todo:
                results[i] = await quota.reserve(user, group)

        await _start_at(cmd["start_at"])
        sent0 = wire()
        cpu0, t0 = time.process_time(), time.monotonic()
        await asyncio.gather(*(work() for _ in range(cmd["concurrency"])))
        t1, cpu1 = time.monotonic(), time.process_time()
        sent = wire_delta(sent0)
        kept = [r for r in results if r is not None]
        assert len(kept) == len(jobs)
        self.kept = kept
        ops = len(jobs)
        return {"start": t0, "end": t1, "cpu": cpu1 - cpu0, "ops": ops, **sent, **_tally(kept)}

    async def refund(self, cmd: dict[str, Any]) -> dict[str, Any]:
        """Refund the granted models of every ``every``-th kept reservation that has any."""
        quotas = self.burst_quotas if cmd.get("burst_client") else self.quotas
        quota = quotas[cmd["catalog"]]
        cost = {m.id: m.cost for m in quota.catalog.models.values()}
        granted = [r for r in self.kept if r.granted]
        chosen = granted[:: cmd["every"]]
        asked = sum(cost[m] for r in chosen for m in r.granted)
        backs: list[int] = [0] * len(chosen)
        todo = iter(enumerate(chosen))
        refunded: Counter[tuple[int, str]] = Counter()

        async def work() -> None:
            for i, r in todo:
                backs[i] = await quota.refund(r, r.granted)

        await _start_at(cmd["start_at"])
        sent0 = wire()
        cpu0, t0 = time.process_time(), time.monotonic()
        await asyncio.gather(*(work() for _ in range(cmd["concurrency"])))
        t1, cpu1 = time.monotonic(), time.process_time()
        sent = wire_delta(sent0)
        for r, back in zip(chosen, backs, strict=True):
            if back:  # this process gave the credits back (not a refund already made)
                assert back == sum(cost[m] for m in r.granted)
                for m in r.granted:
                    refunded[(_user(r), m)] += 1
        return {
            "start": t0,
            "end": t1,
            "cpu": cpu1 - cpu0,
            "ops": len(chosen),
            **sent,
            "credits": sum(backs),
            "asked": asked,
            "refunded": dict(refunded),
        }

    async def burst(self, cmd: dict[str, Any]) -> dict[str, Any]:
        """``count`` reservations for one user at once (request ids given or fresh)."""
        if cmd.get("app_pool"):
            redis = app_client(self.url)
            quota = Quota(redis, self.catalogs[cmd["catalog"]], UTC, clock=lambda: self.now)
        else:
            redis, quota = self.burst_redis, self.burst_quotas[cmd["catalog"]]
        model = quota.catalog.models[cmd["model"]]
        ids = cmd.get("ids") or [None] * cmd["count"]
        try:
            await _start_at(cmd["start_at"])
            sent0 = wire()
            cpu0, t0 = time.process_time(), time.monotonic()
            outcomes = await asyncio.gather(
                *(quota.reserve(cmd["user"], [model], request_id=rid) for rid in ids),
                return_exceptions=True,
            )
            t1, cpu1 = time.monotonic(), time.process_time()
            sent = wire_delta(sent0)
        finally:
            if cmd.get("app_pool"):
                await redis.aclose()
        kept = [r for r in outcomes if isinstance(r, Reservation)]
        errors = Counter(
            f"{type(e).__name__}: {e}" for e in outcomes if isinstance(e, BaseException)
        )
        self.kept = kept
        return {
            "start": t0,
            "end": t1,
            "cpu": cpu1 - cpu0,
            "ops": len(ids),
            **sent,
            "errors": dict(errors),
            **_tally(kept),
        }

    async def handle(self, cmd: dict[str, Any]) -> dict[str, Any]:
        op = cmd["op"]
        if op == "warm":
            return await self.warm(cmd["concurrency"], cmd.get("burst", False))
        if op == "reserve":
            return await self.reserve(cmd)
        if op == "refund":
            return await self.refund(cmd)
        if op == "burst":
            return await self.burst(cmd)
        raise ValueError(f"unknown op {op!r}")


def _user(reservation: Reservation) -> int:
    return int(reservation.key.split("{", 1)[1].split("}", 1)[0])


def _tally(reservations: list[Reservation]) -> dict[str, Any]:
    """Per (user, model): grants; per code: counts; the denials, for the justice check."""
    grants: Counter[tuple[int, str]] = Counter()
    codes: Counter[str] = Counter()
    denials: Counter[tuple[int, str, int]] = Counter()
    for r in reservations:
        user = _user(r)
        for model, grant in r.grants.items():
            codes[grant.name] += 1
            if grant == Grant.OK:
                grants[(user, model)] += 1
            else:
                denials[(user, model, int(grant))] += 1
    return {"grants": dict(grants), "codes": dict(codes), "denials": dict(denials)}


async def _start_at(when: float) -> None:
    await asyncio.sleep(max(0.0, when - time.monotonic()))


def _child(index: int, url: str, now: float, conn: Connection) -> None:
    asyncio.run(_child_async(index, url, now, conn))


async def _child_async(index: int, url: str, now: float, conn: Connection) -> None:
    worker = Worker(index, url, now)
    loop = asyncio.get_running_loop()
    try:
        conn.send({"ready": True})
        while True:
            cmd = await loop.run_in_executor(None, conn.recv)
            if cmd["op"] == "stop":
                break
            try:
                conn.send(await worker.handle(cmd))
            except Exception as exc:  # report it to the parent, which fails the run
                conn.send({"error": f"{type(exc).__name__}: {exc}"})
    finally:
        await worker.close()


class Child:
    def __init__(self, index: int, url: str, now: float) -> None:
        context = multiprocessing.get_context("spawn")
        self.conn, child_conn = context.Pipe()
        self.process = context.Process(
            target=_child, args=(index, url, now, child_conn), name=f"quota-{index}", daemon=True
        )
        self.process.start()
        child_conn.close()

    def send(self, cmd: dict[str, Any]) -> None:
        self.conn.send(cmd)

    def reply(self) -> dict[str, Any]:
        if not self.conn.poll(REPLY_TIMEOUT):
            raise RuntimeError(f"{self.process.name} did not answer within {REPLY_TIMEOUT:g}s")
        answer: dict[str, Any] = self.conn.recv()
        if "error" in answer:
            raise RuntimeError(f"{self.process.name}: {answer['error']}")
        return answer

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.send({"op": "stop"})
        self.process.join(5)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(5)


def run_all(children: list[Child], cmd: dict[str, Any]) -> list[dict[str, Any]]:
    """Send ``cmd`` to every child (one common start instant), collect their replies."""
    cmd = {**cmd, "start_at": time.monotonic() + START_DELAY}
    for i, child in enumerate(children):
        child.send({**cmd, "seed": cmd["seed"] * 10 + i} if "seed" in cmd else cmd)
    return [child.reply() for child in children]


# -- Redis-side measurement and checks ---------------------------------------------


class Probe:
    """INFO deltas around a phase: commands by name, server CPU, memory."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def snapshot(self) -> dict[str, Any]:
        stats = await self.redis.info("commandstats")
        cpu = await self.redis.info("cpu")
        memory = await self.redis.info("memory")
        commands = {
            name.removeprefix("cmdstat_"): (
                int(v["calls"]),
                int(v["usec"]),
                int(v.get("failed_calls", 0)) + int(v.get("rejected_calls", 0)),
            )
            for name, v in stats.items()
        }
        return {
            "commands": commands,
            "cpu": float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"]),
            "memory": int(memory["used_memory"]),
            "at": time.monotonic(),
        }

    @staticmethod
    def delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
        calls: dict[str, int] = {}
        usec = failed = scripts = 0
        for name, (c, u, f) in after["commands"].items():
            c0, u0, f0 = before["commands"].get(name, (0, 0, 0))
            if name == "info" or c == c0:  # this probe's own INFO calls
                continue
            calls[name] = c - c0
            failed += f - f0
            if name in SCRIPT_COMMANDS:
                scripts += c - c0
                usec += u - u0
        return {
            "scripts": scripts,
            "others": {n: c for n, c in calls.items() if n not in SCRIPT_COMMANDS},  # all
            "failed": failed,
            "script_usec": usec,
            "cpu": after["cpu"] - before["cpu"],
            "wall": after["at"] - before["at"],
            "memory": after["memory"] - before["memory"],
        }


def parse_hash(raw: dict[bytes, bytes]) -> dict[str, Any]:
    state: dict[str, Any] = {"total": 0, "m": Counter(), "live": 0, "x": 0}
    for field, value in raw.items():
        name = field.decode()
        if name == "total":
            state["total"] = int(value)
        elif name.startswith("m:"):
            state["m"][name[2:]] = int(value)
        elif name.startswith("r:"):
            state["x" if value == b"x" else "live"] += 1
    state["m"] = +state["m"]  # drop zero counts (a model refunded back to 0)
    return state


class Ledger:
    """What the clients were told, per user, to compare with the hashes in Redis."""

    def __init__(self, catalogs: dict[str, Catalog]) -> None:
        self.catalogs = catalogs
        self.state: dict[int, dict[str, Any]] = defaultdict(
            lambda: {"total": 0, "m": Counter(), "live": 0, "x": 0}
        )

    def granted(self, catalog: str, grants: dict[tuple[int, str], int]) -> None:
        models = self.catalogs[catalog].models
        for (user, model), n in grants.items():
            s = self.state[user]
            s["total"] += models[model].cost * n
            s["m"][model] += n
            s["live"] += n

    def refunded(self, catalog: str, refunded: dict[tuple[int, str], int]) -> None:
        models = self.catalogs[catalog].models
        for (user, model), n in refunded.items():
            s = self.state[user]
            s["total"] -= models[model].cost * n
            s["m"][model] -= n
            s["live"] -= n
            s["x"] += n

    def expected(self, user: int) -> dict[str, Any]:
        s = self.state.get(user) or {"total": 0, "m": Counter(), "live": 0, "x": 0}
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
        out.update({u: parse_hash(raw) for u, raw in zip(chunk, raws, strict=True)})
    return out


def check_users(
    ledger: Ledger, catalog: Catalog, actual: dict[int, dict[str, Any]], denials: dict[Any, int]
) -> dict[str, Any]:
    """Compare Redis with the ledger; caps never exceeded; every denial justified."""
    mismatched = [u for u, got in actual.items() if got != ledger.expected(u)]
    overall = catalog.defaults.daily_limit
    over_cap = 0
    for got in actual.values():
        if overall and got["total"] > overall:
            over_cap += 1
        for model, n in got["m"].items():
            cap = catalog.models[model].daily_limit
            if cap and n > cap:
                over_cap += 1
    unjust = 0
    for (user, model, code), n in denials.items():
        got = actual[user]
        spec = catalog.models[model]
        if code == Grant.MODEL_CAP:
            justified = bool(spec.daily_limit) and got["m"][model] >= (spec.daily_limit or 0)
        elif code == Grant.OVERALL_CAP:
            justified = bool(overall) and got["total"] + spec.cost > overall
        else:  # REFUNDED: never expected, every request id here is fresh
            justified = False
        unjust += 0 if justified else n
    return {
        "mismatched": mismatched,
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
    delta["others"] = dict(others)
    merged = {
        **first,
        "phase": f"{first['phase']} x{len(rows)}",
        "ops": sum(r["ops"] for r in rows),
        "wall": sum(r["wall"] for r in rows),
        "cpu": sum(r["cpu"] for r in rows),
        "delta": delta,
        "codes": codes,
        "writes": sum(r["writes"] for r in rows),
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


# -- the phases --------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace, url: str, now: float) -> None:
        self.args = args
        self.url = url
        self.now = now
        self.redis = Redis.from_url(url)
        self.probe = Probe(self.redis)
        self.catalogs = make_catalogs()
        self.ledger = Ledger(self.catalogs)
        self.reader = Quota(self.redis, self.catalogs["roomy"], UTC, clock=lambda: now)
        self.rows: list[dict[str, Any]] = []  # throughput and round trips
        self.checks: list[tuple[str, str, str, bool]] = []  # what, expected, got, ok
        self.notes: list[str] = []
        self.server_version = "?"

    def check(self, what: str, expected: str, got: str, ok: bool) -> None:
        self.checks.append((what, expected, got, ok))

    async def cold_start(self) -> None:
        await self.redis.script_flush()
        client = app_client(self.url)
        quota = Quota(client, self.catalogs["roomy"], UTC, clock=lambda: self.now)
        chat = quota.catalog.models["chat"]
        try:
            for label in ("cold: 1st reservation, new client", "cold: 2nd reservation"):
                before = await self.probe.snapshot()
                sent0 = wire()
                await quota.reserve(WARM_USERS + 900_000, [chat])
                sent = wire_delta(sent0)
                d = Probe.delta(before, await self.probe.snapshot())
                self.rows.append({"phase": label, "ops": 1, "delta": d, "goal": False, **sent})
        finally:
            await client.aclose()

    async def phase(
        self,
        label: str,
        children: list[Child],
        cmd: dict[str, Any],
        users: range | None = None,
        rate_goal: bool = True,
    ) -> list[dict[str, Any]]:
        if cmd["op"] != "burst":  # bursts use their own, already warm, client
            for child in children:
                child.send({"op": "warm", "concurrency": self.args.concurrency})
            for child in children:
                child.reply()
        before = await self.probe.snapshot()
        replies = run_all(children, cmd)
        d = Probe.delta(before, await self.probe.snapshot())
        start = min(r["start"] for r in replies)
        end = max(r["end"] for r in replies)
        ops = sum(r["ops"] for r in replies)
        codes: Counter[str] = Counter()
        sent: Counter[str] = Counter()
        for r in replies:
            codes.update(r.get("codes", {}))
            sent.update(r["sent"])
        row = {
            "phase": label,
            "ops": ops,
            "wall": end - start,
            "rate": ops / (end - start),
            "cpu": sum(r["cpu"] for r in replies),
            "delta": d,
            "codes": codes,
            "goal": True,
            "rate_goal": rate_goal,
            "per_proc": [r["ops"] / (r["end"] - r["start"]) for r in replies],
            "writes": sum(r["writes"] for r in replies),
            "sent": dict(sent),
        }
        self.rows.append(row)
        catalog = self.catalogs[cmd["catalog"]]
        if users is not None:
            denials: Counter[Any] = Counter()
            for r in replies:
                if cmd["op"] == "refund":
                    self.ledger.refunded(cmd["catalog"], r["refunded"])
                else:
                    self.ledger.granted(cmd["catalog"], r["grants"])
                    denials.update(r["denials"])
            actual = await read_users(self.redis, self.reader, users)
            result = check_users(self.ledger, catalog, actual, dict(denials))
            told = sum(sum(s["m"].values()) for s in map(self.ledger.expected, users))
            want = f"m:* {told}, 0 users differ"
            got = f"m:* {result['redis_live']}, {len(result['mismatched'])} users differ"
            good = not result["mismatched"] and result["redis_live"] == told
            if cmd["op"] != "refund":
                want += ", 0 over a cap, 0 unjust denials"
                got += f", {result['over_cap']} over a cap, {result['unjust']} unjust denials"
                good = good and result["over_cap"] == 0 and result["unjust"] == 0
                row["bytes_per_grant"] = await hash_bytes(self.redis, self.reader, users) / max(
                    1, result["redis_grants"]
                )
            else:
                credits = sum(r["credits"] for r in replies)
                asked = sum(r["asked"] for r in replies)  # each reservation refunded once
                want += f", {asked} credits back"
                got += f", {credits} credits back"
                good = good and credits == asked
            self.check(label, want, got, good)
        return replies

    async def rounds(self, plan: list[tuple[str, list[Child], Any]], count: int) -> None:
        """Run ``plan`` (label, children, a function of the round giving cmd and users)
        ``count`` times in turn; fold each label's rows and checks into one."""
        rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
        checks: dict[str, list[tuple[str, str, str, bool]]] = defaultdict(list)
        for round_ in range(count):
            for label, children, make in plan:
                cmd, users = make(round_)
                await self.phase(label, children, cmd, users)
                rows[label].append(self.rows.pop())
                checks[label].append(self.checks.pop())
        for label in rows:
            self.rows.append(merge_rows(rows[label]))
            self.checks.append(merge_checks(checks[label]))

    async def main_phases(self, children: list[Child]) -> None:
        n, users, concurrency = self.args.count, self.args.users, self.args.concurrency

        def reserve(
            catalog: str, kind: int, procs: int, models: list[list[str]], count: int
        ) -> Any:
            def make(round_: int) -> tuple[dict[str, Any], range]:
                base = (procs * 10 + kind) * 1_000_000 + round_ * 100_000
                cmd = {
                    "op": "reserve",
                    "catalog": catalog,
                    "base": base,
                    "users": users,
                    "count": count,
                    "concurrency": concurrency,
                    "models": models,
                    "seed": base,
                }
                return cmd, range(base, base + users)

            return make

        def refund(procs: int) -> Any:
            def make(round_: int) -> tuple[dict[str, Any], range]:
                base = (procs * 10 + 1) * 1_000_000 + round_ * 100_000
                cmd = {"op": "refund", "catalog": "roomy", "every": 2, "concurrency": concurrency}
                return cmd, range(base, base + users)

            return make

        mixed = [["chat"], ["free"], ["dear"]]
        for procs in (1, 2):
            group = children[:procs]
            who = f"{procs}p"
            plan = [
                (f"{who} reserve, caps far", group, reserve("roomy", 1, procs, [["chat"]], n)),
                (f"{who} refund half of those", group, refund(procs)),
                (f"{who} reserve, mostly denied", group, reserve("tight", 2, procs, mixed, n)),
            ]
            if procs == 1:
                three = [["chat", "free", "dear"]]
                compare = reserve("roomy", 3, 1, three, max(1, n // 2))
                plan.append(("1p reserve, 3 models/call", group, compare))
            await self.rounds(plan, self.args.rounds)

    async def small_caps(self, children: list[Child]) -> None:
        for catalog, what in (("cap5-model", "model cap 5"), ("cap5-overall", "overall cap 5")):
            totals = []
            for round_ in range(BURST_ROUNDS):
                user = 3_000_000 + round_ + (100 if catalog == "cap5-overall" else 0)
                cmd = {
                    "op": "burst",
                    "catalog": catalog,
                    "model": "chat",
                    "user": user,
                    "count": BURST,
                }
                replies = await self.phase(
                    f"2p x {BURST} at once, {what}", children, cmd, rate_goal=False
                )
                told = sum(sum(r["grants"].values()) for r in replies)
                errors = sum(sum(r["errors"].values()) for r in replies)
                got = parse_hash(
                    await self.redis.hgetall(self.reader.key(user, self.reader.day()[0]))
                )
                totals.append((told, got["m"]["chat"], got["total"], errors))
            self.rows[-BURST_ROUNDS:] = [merge_rows(self.rows[-BURST_ROUNDS:])]
            ok = all(t == (SMALL_CAP, SMALL_CAP, SMALL_CAP, 0) for t in totals)
            self.check(
                f"2p x {BURST} at once for one user, {what}, {BURST_ROUNDS} rounds",
                f"{SMALL_CAP} granted, m:chat {SMALL_CAP}, total {SMALL_CAP}, 0 errors",
                "; ".join(f"{t[0]}/{t[1]}/{t[2]}/{t[3]}err" for t in totals),
                ok,
            )
        # the same request ids from both processes at once (a retry race), then both
        # refund the same half at once: counted once, given back once
        user = 3_000_500
        ids = [f"retry-{i}" for i in range(BURST)]
        cmd = {
            "op": "burst",
            "catalog": "roomy",
            "model": "chat",
            "user": user,
            "ids": ids,
            "count": BURST,
        }
        replies = run_all(children, cmd)
        seen = [sum(r["grants"].values()) for r in replies]
        got = parse_hash(await self.redis.hgetall(self.reader.key(user, self.reader.day()[0])))
        self.check(
            f"2p reserve the same {BURST} request ids at once",
            f"each process told {BURST} OK; m:chat {BURST}",
            f"told {seen}; m:chat {got['m']['chat']}, r: fields {got['live']}",
            seen == [BURST, BURST] and got["m"]["chat"] == BURST and got["live"] == BURST,
        )
        refund = {
            "op": "refund",
            "catalog": "roomy",
            "every": 2,
            "concurrency": BURST,
            "burst_client": True,
        }
        replies = run_all(children, refund)
        credits = sum(r["credits"] for r in replies)
        got = parse_hash(await self.redis.hgetall(self.reader.key(user, self.reader.day()[0])))
        half = BURST // 2
        self.check(
            f"2p refund the same {half} reservations at once",
            f"{half} credits back in all; m:chat {half}, {half} x",
            f"{credits} back ({[r['credits'] for r in replies]}); m:chat {got['m']['chat']}, "
            f"{got['x']} x",
            credits == half and got["m"]["chat"] == half and got["x"] == half,
        )

    async def app_pool_burst(self, children: list[Child]) -> None:
        user = 3_000_900
        cmd = {
            "op": "burst",
            "catalog": "cap5-model",
            "model": "chat",
            "user": user,
            "count": BURST,
            "app_pool": True,
        }
        (reply,) = run_all(children[:1], cmd)
        errors = reply["errors"]
        failed = sum(errors.values())
        self.notes.append(
            f"The app's client (redis-py default pool, max 100 connections) firing {BURST} "
            f"reservations at once: {failed} of {BURST} raised "
            + (", ".join(f"{e} x{n}" for e, n in errors.items()) or "nothing")
            + f"; granted {sum(reply['grants'].values())}."
        )


# -- report ------------------------------------------------------------------------


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
    one = (
        row["writes"] == ops
        and client_scripts == ops
        and not client_other
        and d["scripts"] == ops
        and not d["failed"]
        and not unexplained
    )
    return {
        "client_other": client_other,
        "inside": inside - sum(client_other.get(n, 0) for n in INSIDE_SCRIPTS),
        "unexplained": unexplained,
        "one": one,
    }


def report(bench: Bench) -> bool:
    ok = True
    print(
        f"\nredis-server {bench.server_version}, Python {sys.version.split()[0]}, "
        f"{os.cpu_count()} CPUs (shared by redis-server and the clients), load average "
        f"{os.getloadavg()[0]:.2f}; {bench.args.count} reservations per process, "
        f"{bench.args.users} users, {bench.args.concurrency} in flight per process.\n"
    )
    head = (
        f"{'phase':<36} | {'ops':>6} | {'ops/s':>6} | {'ops/s':>11} | {'RT/op':>5} | "
        f"{'EVALSHA':>7} | {'other':>5} | {'in-script':>9} | {'srv us':>6} | {'cli us':>6} | "
        f"{'redis':>5} | goal"
    )
    sub = (
        f"{'':<36} | {'':>6} | {'total':>6} | {'per proc':>11} | {'(cli)':>5} | "
        f"{'/op srv':>7} | {'cmds':>5} | {'cmds/op':>9} | {'/call':>6} | {'CPU/op':>6} | "
        f"{'CPU%':>5} | 1 RT/op, >={RATE_FLOOR}/s/proc"
    )
    print(head)
    print(sub)
    print("-" * len(head))
    for row in bench.rows:
        d, ops = row["delta"], row["ops"]
        rt = round_trips(row)
        per_call = d["script_usec"] / d["scripts"] if d["scripts"] else 0.0
        other = sum(rt["client_other"].values()) + sum(rt["unexplained"].values())
        if "wall" in row:
            rate = f"{row['rate']:>6.0f}"
            per_proc = "/".join(f"{p:.0f}" for p in row["per_proc"])
            cli = f"{row['cpu'] / ops * 1e6:>6.0f}"
            redis_cpu = f"{d['cpu'] / d['wall'] * 100:>5.0f}"
        else:
            rate, per_proc, cli, redis_cpu = f"{'-':>6}", "-", f"{'-':>6}", f"{'-':>5}"
        verdict = "-"
        if row["goal"]:
            fast = not row["rate_goal"] or all(p >= RATE_FLOOR for p in row["per_proc"])
            ok = ok and rt["one"] and fast
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
    for row in bench.rows:
        if not row["goal"]:
            d = row["delta"]
            print(
                f"  {row['phase']:<36} {row['writes']} round trip(s); client sent: "
                f"{_names(row['sent'])}; server: scripts {d['scripts']} ({d['failed']} failed), "
                f"{_names({n: c for n, c in d['others'].items() if n not in INSIDE_SCRIPTS})}"
            )
    print("\nOutcomes per phase (grant codes over all models reserved):")
    for row in bench.rows:
        if row.get("codes"):
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
        ok = ok and good
        print(f"  {what:<{width}} | {'yes' if good else 'NO':<3} | want {expected}")
        print(f"  {'':<{width}} |     | got  {got}")
    if bench.notes:
        print("\nNotes:")
        for note in bench.notes:
            print(f"  {note}")
    return ok


async def run(args: argparse.Namespace, server: RedisServer) -> bool:
    now = noon_today()
    bench = Bench(args, server.url, now)
    bench.server_version = (await bench.redis.info("server"))["redis_version"]
    children = [Child(i, server.url, now) for i in range(2)]
    try:
        for child in children:
            child.reply()  # ready
        await bench.cold_start()
        for child in children:
            child.send({"op": "warm", "concurrency": args.concurrency, "burst": True})
        for child in children:
            child.reply()
        await bench.main_phases(children)
        for child in children:  # the burst clients again: none idle past the health check
            child.send({"op": "warm", "concurrency": args.concurrency, "burst": True})
        for child in children:
            child.reply()
        await bench.small_caps(children)
        await bench.app_pool_burst(children)
    finally:
        for child in children:
            child.stop()
        await bench.redis.aclose()
    return report(bench)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--count", type=int, default=10_000, help="reservations per process and round"
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the main phases")
    parser.add_argument("--users", type=int, default=1000, help="user ids to spread over")
    parser.add_argument("--concurrency", type=int, default=50, help="in flight per process")
    args = parser.parse_args(argv)
    if not (1 <= args.count <= 1_000_000 and 1 <= args.users <= 90_000 and 1 <= args.rounds <= 9):
        parser.error("count must be 1..1000000, users 1..90000, rounds 1..9")
    if not 1 <= args.concurrency <= 90:
        parser.error("concurrency must be 1..90 (the app's pool holds 100 connections)")
    server = RedisServer()
    server.start()
    try:
        ok = asyncio.run(run(args, server))
    except RedisError as exc:
        print(f"Redis failed: {exc}", file=sys.stderr)
        return 1
    finally:
        server.cleanup()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
