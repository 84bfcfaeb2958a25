"""Soak test (issue #6): two replicas of the real ``python -m bot`` in webhook mode on one
Redis (or, with ``--cluster``, a Redis Cluster of three masters), thousands of messages
from hundreds of users, faults injected on both sides (upstream 500/503, Telegram 429s,
updates delivered twice, daily caps reached); every message's fate, the counters,
refunds, histories, Redis requests per message, memory and logs are checked. See
bench/README.md."""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import dataclasses
import gc
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from bench import kit
from bot.texts import EN
from tests.doubles.base import Reply
from tests.doubles.openai_api import OpenAIDouble
from tests.doubles.telegram import ApiError
from tests.harness import KEYS, WEBHOOK_PATH, WEBHOOK_SECRET
from tests.redis_cluster import RedisClusterServers
from tests.redis_server import free_port

API_KEY = KEYS["OPENAI_API_KEY"]
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
MODEL_TITLE = "Soak Model"
MODEL_ID = "soak"
QUESTION = "what is the capital of France?"
HISTORY_MAX_MESSAGES = 40  # the bot's default, set explicitly for the replicas
GOAL_RSS_GROWTH_MB = 50.0
FIRST_USER_ID = 200_001
REPLICAS = 2
QUICK = {
    "messages": 100,
    "users": 20,
    "tg_429": 2,
    "tg_429_notices": 1,
    "ramp": 0.5,
    "think_min": 0.05,
    "think_max": 0.2,
    "deadline": 40.0,
    "settle": 10.0,
    # the cluster is the path the tests cover least (one Redis is everywhere else), and it
    # costs a few seconds more
    "cluster": True,
}

# What the bot may send instead of an answer (English: the users' language_code is "en").
ERROR_SENTENCES = {
    getattr(EN, f.name).format(model=MODEL_TITLE)
    for f in dataclasses.fields(EN)
    if f.name.startswith("error_") or f.name == "empty_answer"
}
LIMIT_PREFIX = EN.limit_overall.split("{", 1)[0]


# -- the doubles ---------------------------------------------------------------------


class SoakTelegram(kit.FinalsTelegram):
    """The fake Bot API: raw requests not kept (memory); the next ``notice_429`` limit
    notices answered 429 (a 429 picked at random mostly lands on an answer)."""

    def __init__(self) -> None:
        super().__init__()
        self.notice_429 = 0

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        response: web.StreamResponse = await handler(request)
        return response

    async def _dispatch(self, method: str, params: dict[str, Any]) -> Any:
        text = str(params.get("text", ""))
        if method == "sendMessage" and self.notice_429 > 0 and text.startswith(LIMIT_PREFIX):
            self.notice_429 -= 1
            raise ApiError(429, "Too Many Requests: retry after 1", retry_after=1)
        return await super()._dispatch(method, params)

    def new_message(self, user_id: int, text: str) -> dict[str, Any]:
        """A user's private message as it appears in an update (not kept in the chat)."""
        sender = {"id": user_id, "is_bot": False, "first_name": f"U{user_id}"}
        message = self._new_message(self.chats[user_id], {**sender, "language_code": "en"})
        return {**message, "text": text}


class SoakLLM(OpenAIDouble):
    """The fake OpenAI API, timed (raw requests not kept); the prompts in ``failing`` get
    their status (500/503) on every attempt."""

    def __init__(self, key: str, failing: dict[str, int], reply: Reply) -> None:
        super().__init__(key=key)
        self.failing = failing
        self.default = reply
        self.timing = kit.time_requests(self)

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        response: web.StreamResponse = await handler(request)
        return response

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        status = self.failing.get(request.get("prompt", ""))
        if status is not None and self.authorized(request):
            error = {"message": "injected upstream failure", "type": "server_error"}
            body = {"error": {**error, "param": None, "code": None}}
            return web.json_response(body, status=status)
        return await super()._answer(request)


# -- the replicas ----------------------------------------------------------------------


def _proc_status(pid: int, field_name: str) -> int | None:
    """A ``kB`` field of /proc/<pid>/status (VmRSS, VmHWM), in bytes."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _proc_cpu(pid: int) -> float | None:
    """User + system CPU seconds of a process (/proc/<pid>/stat)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class ReplicaProcess:
    """One ``python -m bot`` in webhook mode on its own port."""

    index: int
    port: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    ready_after: float | None = None
    rss: list[tuple[float, int]] = field(default_factory=list)
    exit_code: int | None = None
    stop_seconds: float | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{WEBHOOK_PATH}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, env: dict[str, str], cwd: Path) -> None:
        env = {**env, "WEBHOOK_PORT": str(self.port)}
        self.started = time.monotonic()
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bot"],
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def sample(self) -> int | None:
        rss = _proc_status(self.pid, "VmRSS") if self.alive() else None
        if rss is not None:
            self.rss.append((time.monotonic(), rss))
        return rss

    def cpu(self) -> float:
        return _proc_cpu(self.pid) or 0.0

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    async def stop(self, grace: float) -> None:
        """SIGTERM (the bot's own graceful shutdown), then SIGKILL after ``grace``."""
        if self.process is None:
            return
        began = time.monotonic()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(self.process.wait, grace)
        except subprocess.TimeoutExpired:
            self.process.kill()
            await asyncio.to_thread(self.process.wait)
        self.stop_seconds = time.monotonic() - began
        self.exit_code = self.process.returncode


# -- Redis: one server or a cluster ----------------------------------------------------


@dataclass(frozen=True)
class Store:
    """Where the replicas keep their state: REDIS_URL, and every node's URL."""

    url: str
    nodes: list[str]
    cluster: bool

    def client(self) -> Redis:
        if self.cluster:
            return RedisCluster.from_url(self.url, decode_responses=True)  # type: ignore[return-value]
        return Redis.from_url(self.url, decode_responses=True)

    def describe(self) -> str:
        if self.cluster:
            return f"a Redis Cluster of {len(self.nodes)} masters (REDIS_CLUSTER=1)"
        return "one Redis"


@contextlib.contextmanager
def store(cluster: bool) -> Iterator[Store]:
    """A throwaway redis-server, or a 3-master Redis Cluster."""
    if not cluster:
        with kit.redis_server() as server:
            yield Store(server.url, [server.url], cluster=False)
        return
    servers = RedisClusterServers()
    servers.start()
    try:
        yield Store(servers.url, [node.url for node in servers.nodes], cluster=True)
    finally:
        servers.cleanup()


async def redis_load(where: Store) -> Counter[str]:
    """Requests (read events: one per request a client sends, a pipeline included),
    commands and CPU microseconds every node has used so far."""
    load: Counter[str] = Counter()
    for url in where.nodes:
        client = Redis.from_url(url)
        try:
            stats, cpu = await client.info("stats"), await client.info("cpu")
        finally:
            await client.aclose()
        load["requests"] += int(stats["total_reads_processed"])
        load["commands"] += int(stats["total_commands_processed"])
        load["cpu_us"] += round((float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])) * 1e6)
        load["info"] += 2  # these two INFOs: one request, one command each
    return load


# -- the plan and the driver -----------------------------------------------------------


@dataclass
class Msg:
    """One message a user sends, and what became of it."""

    user: int
    index: int
    prompt: str
    fail: int | None  # the upstream status injected for it, or None
    duplicate: bool = False  # POSTed to both replicas at once
    update_id: int = 0
    replica: int = -1
    posted: float | None = None  # the POST began
    acked: float | None = None  # every POST of it answered
    status: int | None = None  # the webhook's answer (after Telegram-like redelivery)
    deliveries: int = 0  # POSTs made (redeliveries included)
    finals: list[str] = field(default_factory=list)  # the bot's final messages for it

    @property
    def answer(self) -> str:
        return f"echo: {self.prompt}"


def make_plan(args: argparse.Namespace) -> dict[int, list[Msg]]:
    rng = random.Random(args.seed)
    base, extra = divmod(args.messages, args.users)
    shares = [base + (1 if k < extra else 0) for k in range(args.users)]
    failing = set(rng.sample(range(args.messages), round(args.messages * args.fail_rate)))
    duplicated = set(rng.sample(range(args.messages), round(args.messages * args.duplicates)))
    plan: dict[int, list[Msg]] = {}
    number = 0
    for k, share in enumerate(shares):
        user = FIRST_USER_ID + k
        msgs = []
        for i in range(share):
            fail = (500 if number % 2 else 503) if number in failing else None
            prompt = f"u{user} m{i}: {QUESTION}"
            msgs.append(Msg(user, i, prompt, fail, duplicate=number in duplicated))
            number += 1
        plan[user] = msgs
    return plan


class Driver:
    """Telegram's webhook delivery and the load balancer: POSTs updates to the replicas
    in turn, and plays the users."""

    def __init__(
        self,
        args: argparse.Namespace,
        tg: SoakTelegram,
        replicas: list[ReplicaProcess],
        plan: dict[int, list[Msg]],
    ) -> None:
        self.args = args
        self.tg = tg
        self.replicas = replicas
        self.plan = plan
        self.rng = random.Random(args.seed + 1)
        self.next_replica = 0
        self.next_update_id = 500_000_001
        self.posted = 0
        self.total = sum(len(msgs) for msgs in plan.values())
        n = max(args.tg_429, 0)
        self.inject_at = {round(self.total * (k + 1) / (n + 1)) for k in range(n)}
        self.injected_429 = 0
        self.warm_mark: float | None = None  # when a tenth of the messages were posted
        self.session: aiohttp.ClientSession | None = None
        self.deadline = 0.0
        self.interval = 1 / args.rate if args.rate > 0 else 0.0
        self.next_slot = 0.0

    async def run(self) -> float:
        """Play every user; returns the seconds it took."""
        connector = aiohttp.TCPConnector(limit=self.args.connections)
        began = time.monotonic()
        self.deadline = began + self.args.deadline
        async with aiohttp.ClientSession(connector=connector) as session:
            self.session = session
            await asyncio.gather(*(self._user(user, msgs) for user, msgs in self.plan.items()))
        return time.monotonic() - began

    async def _user(self, user: int, msgs: list[Msg]) -> None:
        self.tg.user(id=user, first_name=f"U{user}")
        await asyncio.sleep(self.rng.uniform(0, self.args.ramp))
        for msg in msgs:
            await self._slot()
            if time.monotonic() > self.deadline:
                return
            before = len(self.tg.finals[user])
            await self._post(msg)
            await self.tg.wait_finals(before + 1, self.args.answer_timeout, user)
            await asyncio.sleep(self.rng.uniform(self.args.think_min, self.args.think_max))

    async def _slot(self) -> None:
        """Wait for the next sending slot: at most ``--rate`` messages a second overall."""
        if not self.interval:
            return
        now = time.monotonic()
        slot = max(now, self.next_slot)
        self.next_slot = slot + self.interval
        if slot > now:
            await asyncio.sleep(slot - now)

    async def _post(self, msg: Msg) -> None:
        self.posted += 1
        if self.posted in self.inject_at:
            self.tg.fail_next("sendMessage", 429, retry_after=1)
            self.injected_429 += 1
        if self.warm_mark is None and self.posted >= self.total / 10:
            self.warm_mark = time.monotonic()
        msg.update_id = self.next_update_id
        self.next_update_id += 1
        update = {"update_id": msg.update_id, "message": self.tg.new_message(msg.user, msg.prompt)}
        body = json.dumps(update).encode()
        msg.replica = self.next_replica
        self.next_replica = (self.next_replica + 1) % len(self.replicas)
        targets = [msg.replica]
        if msg.duplicate:
            targets = list(range(len(self.replicas)))
        msg.posted = time.monotonic()
        statuses = await asyncio.gather(*(self._deliver(msg, body, index) for index in targets))
        msg.acked = time.monotonic()
        msg.status = 200 if 200 in statuses else max(statuses)

    async def _deliver(self, msg: Msg, body: bytes, index: int) -> int:
        """POST until a 2xx, like Telegram: another replica after a failure."""
        assert self.session is not None
        headers = {SECRET_HEADER: WEBHOOK_SECRET, "Content-Type": "application/json"}
        status = 0
        for attempt in range(3):
            replica = self.replicas[(index + attempt) % len(self.replicas)]
            msg.deliveries += 1
            try:
                async with self.session.post(replica.url, data=body, headers=headers) as response:
                    await response.read()
                    status = response.status
            except (aiohttp.ClientError, TimeoutError):
                status = 0
            if 200 <= status < 300:
                return status
            await asyncio.sleep(0.5)
        return status


async def watch_lag(lags: list[float], every: float = 0.02) -> None:
    """How late this process's event loop wakes up (ms): when it lags, the doubles' and
    the driver's timestamps are late too, and the overhead figures with them."""
    while True:
        before = time.monotonic()
        await asyncio.sleep(every)
        lags.append((time.monotonic() - before - every) * 1e3)


async def sample_rss(replicas: list[ReplicaProcess], every: float) -> None:
    while True:
        for replica in replicas:
            replica.sample()
        await asyncio.sleep(every)


# -- the audit -------------------------------------------------------------------------


def classify(msg: Msg, text: str) -> str:
    if text == msg.answer:
        return "answer"
    if text in ERROR_SENTENCES:
        return "error"
    if text.startswith(LIMIT_PREFIX):
        return "limit"
    if text == EN.still_answering:
        return "busy"
    if text == EN.service_unavailable:
        return "unavailable"
    return "other"


def attribute(tg: SoakTelegram, plan: dict[int, list[Msg]]) -> list[tuple[int, float, str]]:
    """Give every final message to the user's message it answers: the last one POSTed
    before it. Returns the final messages that came before any message (none expected)."""
    strays: list[tuple[int, float, str]] = []
    for user, msgs in plan.items():
        sent = [m for m in msgs if m.posted is not None]
        times = [m.posted or 0.0 for m in sent]
        for at, text in tg.finals.get(user, []):
            position = bisect.bisect_right(times, at) - 1
            if position < 0:
                strays.append((user, at, text))
            else:
                sent[position].finals.append(text)
    return strays


@dataclass
class Audit:
    users: int = 0
    counted: int = 0  # m:soak over all users
    standing: int = 0  # r: fields not refunded
    refunded: int = 0  # r: fields refunded
    total_credits: int = 0
    over_spent: int = 0  # requests counted without an answer delivered
    under_counted: int = 0  # answers delivered without a count
    over_cap_users: int = 0
    refund_mismatch_users: int = 0
    inconsistent_users: int = 0  # m:soak, total and standing r: fields disagree
    history_bad_users: int = 0
    examples: list[str] = field(default_factory=list)


async def audit_redis(where: Store, plan: dict[int, list[Msg]], cap: int) -> Audit:
    audit = Audit()
    pattern = re.compile(r"^quota:\{(\d+)\}:")
    per_user: dict[int, dict[str, Any]] = {}
    client = where.client()
    try:
        async for key in client.scan_iter(match="quota:*", count=1000):
            if (match := pattern.match(str(key))) is None:
                continue
            day = kit.quota_hash(await client.hgetall(key))
            state = per_user.setdefault(int(match.group(1)), day)
            if state is not day:  # several days: add them up
                for name in ("total", "m", "live", "x"):
                    state[name] += day[name]
        histories: dict[int, list[str]] = {}
        for user in plan:
            items = await client.lrange(f"history:{{{user}}}:{user}", 0, -1)
            histories[user] = [str(item) for item in items]
    finally:
        await client.aclose()

    audit.users = len(per_user)
    for user, msgs in plan.items():
        state = per_user.get(user) or kit.quota_hash({})
        answers = [m for m in msgs if m.finals and classify(m, m.finals[0]) == "answer"]
        errors = [m for m in msgs if m.finals and classify(m, m.finals[0]) == "error"]
        counted, total = int(state["m"][MODEL_ID]), int(state["total"])
        standing, refunded = int(state["live"]), int(state["x"])
        audit.counted += counted
        audit.standing += standing
        audit.refunded += refunded
        audit.total_credits += total
        audit.over_spent += max(0, counted - len(answers))
        audit.under_counted += max(0, len(answers) - counted)
        if cap and total > cap:
            audit.over_cap_users += 1
        if refunded != len(errors) or standing != len(answers):
            audit.refund_mismatch_users += 1
            if len(audit.examples) < 5:
                audit.examples.append(
                    f"user {user}: {standing} standing / {len(answers)} answers, "
                    f"{refunded} refunded / {len(errors)} error sentences"
                )
        if not counted == total == standing:
            audit.inconsistent_users += 1
        expected = []
        for m in answers:
            expected += [("user", m.prompt), ("assistant", m.answer)]
        expected = expected[-HISTORY_MAX_MESSAGES:]
        got = [(item["r"], item["c"]) for item in map(json.loads, histories[user])]
        if got != expected:
            audit.history_bad_users += 1
            if len(audit.examples) < 5:
                audit.examples.append(
                    f"user {user}: history of {len(got)} entries, expected {len(expected)}"
                )
    return audit


_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (\w+) (\S+) \[update [^\]]*\]: (.*)$")


def scan_log(path: Path, secrets: list[str]) -> dict[str, Any]:
    text = path.read_text(encoding="utf-8", errors="replace")
    levels: Counter[str] = Counter()
    messages: Counter[str] = Counter()
    for line in text.splitlines():
        match = _LINE.match(line)
        if match is None:
            continue
        level, logger, message = match.groups()
        levels[level] += 1
        if level in ("WARNING", "ERROR", "CRITICAL"):
            # the same event with different ids/numbers counts as one kind
            messages[f"{level} {logger}: {re.sub(r'[0-9]+', 'N', message)[:110]}"] += 1
    return {
        "levels": levels,
        "kinds": messages,
        "tracebacks": text.count("Traceback (most recent call last)"),
        "handled": len(re.findall(r"Update id=\d+ is handled", text)),
        "not_handled": len(re.findall(r"Update id=\d+ is not handled", text)),
        "leaks": sum(text.count(secret) for secret in secrets),
    }


# -- the run ---------------------------------------------------------------------------


async def run(args: argparse.Namespace, where: Store, tmp: Path) -> dict[str, Any]:
    plan = make_plan(args)
    failing = {m.prompt: m.fail for msgs in plan.values() for m in msgs if m.fail is not None}
    reply = Reply(first_delay=args.first_delay, chunk_delay=args.chunk_delay)
    results: dict[str, Any] = {"plan": plan}
    tg, llm = SoakTelegram(), SoakLLM(API_KEY, failing, reply)
    async with tg, llm:
        tg.notice_429 = args.tg_429_notices
        catalog = kit.write_catalog(
            tmp / "models.toml",
            {"model": MODEL_ID, "daily_limit": args.daily_limit},
            {
                "soak": {
                    "kind": "openai",
                    "base_url": f"{llm.url}/v1",
                    "api_key_env": "SOAK_API_KEY",
                    "timeout": 20,
                    "max_retries": 1,
                }
            },
            [{"id": MODEL_ID, "title": MODEL_TITLE, "provider": "soak", "name": "soak-model"}],
        )
        keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")
        env = {k: v for k, v in os.environ.items() if k in keep}
        env.update(
            PYTHONPATH=kit.ROOT,
            PYTHONUNBUFFERED="1",
            BOT_TOKEN=tg.token,
            TELEGRAM_API_URL=tg.url,
            REDIS_URL=where.url,
            REDIS_CLUSTER="1" if where.cluster else "0",
            MODELS_FILE=str(catalog),
            SOAK_API_KEY=API_KEY,
            # the URL Telegram is given (never called); each replica serves its path on its port
            WEBHOOK_URL=f"http://127.0.0.1:1{WEBHOOK_PATH}",
            WEBHOOK_SECRET=WEBHOOK_SECRET,
            WEBHOOK_HOST="127.0.0.1",
            LOG_LEVEL=args.log_level,
            HISTORY_MAX_MESSAGES=str(HISTORY_MAX_MESSAGES),
            SHUTDOWN_GRACE_SECONDS="5",
            RICH_MESSAGES="off",  # the audit reads final messages as text (sendMessage)
        )
        replicas = [
            ReplicaProcess(i, free_port(), tmp / f"replica{i}.log") for i in range(REPLICAS)
        ]
        try:
            for replica in replicas:
                replica.start(env, tmp)
            await wait_ready(tg, replicas, args.start_timeout)
            for replica in replicas:
                replica.rss.clear()
                replica.sample()
            results["rss_start"] = [r.rss[-1][1] for r in replicas]
            results["cpu_start"] = [r.cpu() for r in replicas]
            lags: list[float] = []
            results["lags"] = lags
            watchers = [
                asyncio.create_task(sample_rss(replicas, 0.5)),
                asyncio.create_task(watch_lag(lags)),
            ]
            driver = Driver(args, tg, replicas, plan)
            # The doubles keep every call they answered: full collections over that
            # growing heap would stall this process's loop (and its timestamps).
            gc.disable()
            try:
                load_before = await redis_load(where)
                results["seconds"] = await driver.run()
                results["settle"] = await settle(tg, plan, args.settle)
                results["redis"] = (await redis_load(where)) - load_before
            finally:
                gc.enable()
                for watcher in watchers:
                    watcher.cancel()
                await asyncio.gather(*watchers, return_exceptions=True)
            for replica in replicas:
                replica.sample()
            results["cpu_end"] = [r.cpu() for r in replicas]
            results["rss_end"] = [r.rss[-1][1] for r in replicas]
            results["rss_peak"] = [max(rss for _, rss in r.rss) for r in replicas]
            mark = driver.warm_mark
            results["rss_warm"] = [
                next((rss for at, rss in r.rss if mark is not None and at >= mark), None)
                for r in replicas
            ]
            results["injected_429"] = driver.injected_429
            results["metrics"] = [await scrape_metrics(r) for r in replicas]
        finally:
            for replica in replicas:
                await replica.stop(grace=15)
        results["replicas"] = replicas
        results["strays"] = attribute(tg, plan)
        results["llm_arrived"] = dict(llm.timing.arrived)
        results["llm_attempts"] = Counter(llm.timing.attempts)
        results["notice_429_left"] = tg.notice_429
        results["tg_429"] = [
            c.text or "" for c in tg.calls("sendMessage") if c.status == 429 and c.text is not None
        ]
        results["tg_failed"] = Counter(
            (c.method, c.status) for c in tg.api_calls if not c.ok and c.status != 429
        )
        results["tg_methods"] = Counter(c.method for c in tg.api_calls)
    results["audit"] = await audit_redis(where, plan, args.daily_limit)
    secrets = [env["BOT_TOKEN"], API_KEY, WEBHOOK_SECRET]
    results["logs"] = [scan_log(r.log_path, secrets) for r in replicas]
    return results


async def scrape_metrics(replica: ReplicaProcess) -> tuple[int, int]:
    """GET /metrics on a replica's webhook server: (status, sample lines)."""
    url = f"http://127.0.0.1:{replica.port}/metrics"
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(url, timeout=aiohttp.ClientTimeout(5)) as response,
        ):
            text = await response.text()
            samples = [line for line in text.splitlines() if line and not line.startswith("#")]
            return response.status, len(samples) if response.status == 200 else 0
    except (aiohttp.ClientError, TimeoutError):
        return 0, 0


async def wait_ready(tg: SoakTelegram, replicas: list[ReplicaProcess], seconds: float) -> None:
    """Until every replica answers /healthz and has set the webhook."""
    deadline = time.monotonic() + seconds
    pending = set(range(len(replicas)))
    async with aiohttp.ClientSession() as session:
        while pending:
            for index in sorted(pending):
                replica = replicas[index]
                if not replica.alive():
                    raise RuntimeError(f"replica {index} exited at start:\n{replica.log_tail()}")
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    url = f"http://127.0.0.1:{replica.port}/healthz"
                    async with session.get(url, timeout=aiohttp.ClientTimeout(2)) as response:
                        if response.status == 200:
                            replica.ready_after = time.monotonic() - replica.started
                            pending.discard(index)
            if time.monotonic() > deadline:
                tails = "\n".join(replicas[i].log_tail() for i in pending)
                raise RuntimeError(f"replicas {sorted(pending)} not ready in {seconds}s:\n{tails}")
            await asyncio.sleep(0.1)
    # the server listens before setWebhook: wait for both calls
    while len(tg.calls("setWebhook", ok=True)) < len(replicas):
        if time.monotonic() > deadline:
            raise RuntimeError("setWebhook was not called by every replica")
        await asyncio.sleep(0.05)


async def settle(tg: SoakTelegram, plan: dict[int, list[Msg]], seconds: float) -> float:
    """After the last user is done: wait until every POSTed message has a final message
    (or nothing new came for 2 s, or ``seconds``). Returns the time waited."""
    began = time.monotonic()
    posted = Counter(m.user for msgs in plan.values() for m in msgs if m.posted is not None)
    last_count, last_change = -1, began
    while time.monotonic() - began < seconds:
        count = sum(len(v) for v in tg.finals.values())
        if all(len(tg.finals.get(user, [])) >= n for user, n in posted.items()):
            break
        if count != last_count:
            last_count, last_change = count, time.monotonic()
        elif time.monotonic() - last_change > 2.0:
            break
        await asyncio.sleep(0.1)
    return time.monotonic() - began


# -- report ----------------------------------------------------------------------------


def _mb(value: int | None) -> str:
    return "n/a" if value is None else f"{value / 2**20:.1f}"


def report(args: argparse.Namespace, results: dict[str, Any]) -> kit.Table:
    plan: dict[int, list[Msg]] = results["plan"]
    msgs = [m for user_msgs in plan.values() for m in user_msgs]
    sent = [m for m in msgs if m.posted is not None]
    outcome: Counter[str] = Counter()
    wrong: list[str] = []
    for m in sent:
        if not m.finals:
            outcome["lost"] += 1
            continue
        kind = classify(m, m.finals[0])
        outcome[kind] += 1
        if len(m.finals) > 1:
            outcome["twice"] += 1
        if kind not in (("error", "limit") if m.fail is not None else ("answer", "limit")):
            wrong.append(f"{m.prompt!r} (injected {m.fail}) -> {m.finals[0][:100]!r}")
    arrived: dict[str, float] = results["llm_arrived"]
    attempts: Counter[str] = results["llm_attempts"]
    reached = [m for m in sent if m.prompt in arrived]
    overhead = [(arrived[m.prompt] - m.posted) * 1e3 for m in reached if m.posted is not None]
    post_ms = [(m.acked - m.posted) * 1e3 for m in sent if m.acked and m.posted]
    limited = [m for m in reached if m.finals and classify(m, m.finals[0]) == "limit"]
    asked_twice = sum(1 for m in reached if m.fail is None and attempts[m.prompt] > 1)
    failed_reached = sum(1 for m in reached if m.fail is not None)
    audit: Audit = results["audit"]
    replicas: list[ReplicaProcess] = results["replicas"]
    logs = results["logs"]
    seconds = results["seconds"]

    print(
        f"\nbench.soak: {len(plan)} users, {len(msgs)} messages, {REPLICAS} replicas "
        f"(python -m bot, webhook mode, LOG_LEVEL {args.log_level}) on "
        f"{results['store']}; {kit.machine()}."
    )
    print(
        f"Injected: {sum(1 for m in msgs if m.fail)} upstream failures (500/503 on every "
        f"attempt), {results['injected_429']} Telegram 429s on sendMessage, "
        f"{sum(1 for m in msgs if m.duplicate)} updates POSTed to both replicas; daily "
        f"allowance {args.daily_limit or 'none'} per user; offered rate "
        f"{f'{args.rate:g}/s' if args.rate > 0 else 'uncapped'}.\n"
    )
    table = kit.Table()
    posted = f"{len(sent)} / {len(msgs)} in {seconds:.1f} s ({len(sent) / seconds:.0f}/s)"
    table.add("messages POSTed / planned", posted, "all", len(sent) == len(msgs), check=True)
    table.add("  answered (echo of the prompt)", str(outcome["answer"]))
    table.add("  told an upstream error (one sentence)", str(outcome["error"]))
    table.add("  over the daily limit (notice)", str(outcome["limit"]))
    table.zero("lost (no final message at all)", outcome["lost"])
    table.zero("answered twice", outcome["twice"])
    table.zero("wrong reply (not what the fault calls for)", len(wrong))
    table.zero("asked upstream twice (no fault; duplicates!)", asked_twice)
    table.zero("over the limit yet sent upstream", len(limited))
    table.zero("over-spent (counted, no answer)", audit.over_spent)
    table.zero("  users over the daily cap", audit.over_cap_users)
    table.zero("  under-counted (answer, no count)", audit.under_counted)
    per_user = audit.refund_mismatch_users == 0
    exact = per_user and audit.refunded == outcome["error"] == failed_reached
    refunds = f"{audit.refunded} / {outcome['error']} ({failed_reached} failures reached the API)"
    table.add("refunds exact: refunded / error sentences", refunds, "equal, per user", exact, True)
    standing = f"{audit.standing} / {outcome['answer']}"
    exact = per_user and audit.standing == outcome["answer"]
    table.add("  standing reservations / answers", standing, "equal, per user", exact, True)
    table.zero("  users whose counters disagree (m:, total, r:)", audit.inconsistent_users)
    table.zero("history intact (users with a wrong history)", audit.history_bad_users)
    label = f"overhead: POST -> model API request, p50 ({len(overhead)})"
    table.add(label, f"{kit.pct(overhead, 50):.1f} ms")
    table.add("  same, p95", f"{kit.pct(overhead, 95):.1f} ms")
    table.add("  same, max", f"{max(overhead, default=float('nan')):.1f} ms")
    tenths: list[list[float]] = [[] for _ in range(10)]
    began = min((m.posted for m in sent if m.posted is not None), default=0.0)
    span = max((m.posted - began for m in sent if m.posted is not None), default=0.0) or 1.0
    for m in reached:
        if m.posted is not None:
            tenth = min(9, int((m.posted - began) / span * 10))
            tenths[tenth].append((arrived[m.prompt] - m.posted) * 1e3)
    by_tenth = " ".join(f"{kit.pct(values, 95):.0f}" if values else "-" for values in tenths)
    table.add("  same, p95 per tenth of the run", by_tenth + " ms")
    lags = results["lags"]
    lag = f"{kit.pct(lags, 99):.1f} / {max(lags, default=float('nan')):.1f} ms"
    table.add("  driver's own loop lag, p99 / max (measurement noise)", lag)
    acked = f"{kit.pct(post_ms, 50):.1f} / {kit.pct(post_ms, 95):.1f} ms"
    table.add("  POST -> 200 (acknowledgement), p50 / p95", acked)
    table.zero("  webhook answers not 200", sum(1 for m in sent if m.status != 200))
    redis: Counter[str] = results["redis"]
    messages = max(len(sent), 1)
    requests = (redis["requests"] - redis["info"]) / messages
    commands = (redis["commands"] - redis["info"]) / messages
    table.add("Redis requests per message (reads, every node)", f"{requests:.2f}")
    table.add("  Redis commands per message (scripts' included)", f"{commands:.2f}")
    cpu = redis["cpu_us"] / messages / 1e3
    table.add("  Redis CPU per message (every node)", f"{cpu:.2f} ms")
    for i, replica in enumerate(replicas):
        start, end = results["rss_start"][i], results["rss_end"][i]
        growth = (end - start) / 2**20
        rss = [_mb(results[k][i]) for k in ("rss_start", "rss_warm", "rss_peak", "rss_end")]
        table.add(f"replica {i} RSS start / 10% / peak / end", " / ".join(rss) + " MB")
        goal = f"< {GOAL_RSS_GROWTH_MB:g} MB"
        ok = growth < GOAL_RSS_GROWTH_MB
        table.add(f"  growth end - start (replica {i})", f"{growth:+.1f} MB", goal, ok)
        handled = logs[i]["handled"]
        cpu = results["cpu_end"][i] - results["cpu_start"][i]
        each = f"{cpu:.1f} s; {handled} ({cpu / max(handled, 1) * 1e3:.1f} ms each)"
        table.add(f"  CPU; updates handled (replica {i})", each)
        ready = f"{replica.ready_after or float('nan'):.1f} s; {replica.stop_seconds or 0:.1f} s"
        label = f"  start-up to /healthz; SIGTERM to exit (replica {i})"
        ok = replica.exit_code == 0
        table.add(label, f"{ready}, exit {replica.exit_code}", "exit 0", ok, check=True)
    table.zero("secrets in the logs (token, key, webhook secret)", sum(g["leaks"] for g in logs))
    table.zero("tracebacks in the logs", sum(log["tracebacks"] for log in logs))
    levels: Counter[str] = sum((log["levels"] for log in logs), Counter())
    errors = levels["ERROR"] + levels["CRITICAL"]
    table.add("log lines: warnings / errors", f"{levels['WARNING']} / {errors}")
    table.print()

    targeted = args.tg_429_notices - results["notice_429_left"]
    notes = [f"Limit notices answered 429 on purpose: {targeted} (of {args.tg_429_notices} asked)."]
    tg_429: list[str] = results["tg_429"]
    kinds = Counter(classify_text(text) for text in tg_429).most_common()
    carried = ", ".join(f"{n} {kind}" for kind, n in kinds) or "nothing"
    notes.append(f"The {len(tg_429)} sendMessage calls answered 429 carried: {carried}.")
    if results["tg_failed"]:
        failed = ", ".join(f"{m} {s}: {n}" for (m, s), n in results["tg_failed"].most_common())
        notes.append(f"Other Bot API calls refused: {failed}.")
    methods = results["tg_methods"].most_common(6)
    per = ", ".join(f"{name} {n / max(len(sent), 1):.2f}" for name, n in methods)
    notes.append(f"Bot API calls per message: {per}.")
    dup = [m for m in sent if m.duplicate]
    notes.append(
        f"Duplicated updates: {len(dup)}, answered "
        f"{sum(1 for m in dup if len(m.finals) == 1)} once, "
        f"{sum(1 for m in dup if len(m.finals) > 1)} more than once; not-handled updates "
        f"in the logs: {sum(log['not_handled'] for log in logs)}."
    )
    notes.append(f"Settling after the last user: {results['settle']:.1f} s.")
    if results["strays"]:
        notes.append(f"Final messages before any message of their user: {len(results['strays'])}")
    for line in wrong[:5]:
        notes.append(f"wrong: {line}")
    lost = [m for m in sent if not m.finals]
    if lost:
        due = Counter(_due(m, plan[m.user], args.daily_limit) for m in lost).items()
        notes.append("Lost messages were due: " + ", ".join(f"{n} {kind}" for kind, n in due))
    for m in lost[:5]:
        notes.append(
            f"lost: {m.prompt!r} (update {m.update_id}, replica {m.replica}, injected "
            f"{m.fail}, webhook {m.status})"
        )
    for i, (status, samples) in enumerate(results["metrics"]):
        notes.append(f"replica {i} GET /metrics: status {status}, {samples} samples")
    notes += [f"audit: {line}" for line in audit.examples]
    for i, log in enumerate(logs):
        for kind, n in log["kinds"].most_common(6):
            notes.append(f"replica {i} log: {n} x {kind}")
    notes.append(f"Load average at the end: {os.getloadavg()[0]:.2f} (the machine is shared).")
    print("\n" + "\n".join(notes))
    return table


def dump(path: Path, results: dict[str, Any]) -> None:
    """One JSON line per message: its timeline (monotonic seconds) and outcome."""
    arrived: dict[str, float] = results["llm_arrived"]
    with path.open("w", encoding="utf-8") as out:
        for msgs in results["plan"].values():
            for m in msgs:
                row = {
                    "user": m.user,
                    "index": m.index,
                    "update_id": m.update_id,
                    "replica": m.replica,
                    "fail": m.fail,
                    "duplicate": m.duplicate,
                    "posted": m.posted,
                    "acked": m.acked,
                    "upstream": arrived.get(m.prompt),
                    "finals": [classify(m, text) for text in m.finals],
                }
                out.write(json.dumps(row) + "\n")


def _due(msg: Msg, msgs: list[Msg], cap: int) -> str:
    """What a lost message should have got: a limit notice once the user's answers before
    it reached the cap, an error sentence for an injected failure, an answer otherwise."""
    answered = sum(
        1 for m in msgs[: msg.index] if m.finals and classify(m, m.finals[0]) == "answer"
    )
    if cap and answered >= cap:
        return "a limit notice"
    return "an error sentence" if msg.fail is not None else "an answer"


def classify_text(text: str) -> str:
    """What a final message is, without knowing its prompt."""
    if text.startswith("echo: "):
        return "answers"
    if text in ERROR_SENTENCES:
        return "error sentences"
    if text.startswith(LIMIT_PREFIX):
        return "limit notices"
    return "other texts"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    kit.options(
        parser,
        messages=10_000,
        users=500,
        fail_rate=(0.05, "upstream 500/503 share"),
        tg_429=(20, "429s injected on sendMessage"),
        tg_429_notices=(5, "429s on the first limit notices"),
        rate=(80.0, "messages/s at most overall (0: no cap)"),
        duplicates=(0.01, "updates POSTed twice"),
        daily_limit=(-1, "credits per user (-1: share - 2; 0: none)"),
        first_delay=(0.05, "model's time to start"),
        chunk_delay=(0.01, "between streamed words"),
        think_min=(0.2, "user's pause, seconds"),
        think_max=0.6,
        ramp=(3.0, "users start within this"),
        connections=(40, "webhook POSTs at once"),
        answer_timeout=(15.0, "a user waits this long"),
        deadline=(170.0, "no new message after"),
        settle=30.0,
        start_timeout=60.0,
        log_level="INFO",
        seed=6,
        keep=(False, "keep the logs; print where"),
    )
    parser.add_argument("--dump", type=Path, help="write every message's timeline (JSON lines)")
    parser.add_argument(
        "--cluster",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="on a 3-master Redis Cluster (REDIS_CLUSTER=1), not one Redis (--quick: on)",
    )
    args = kit.parse(parser, argv, QUICK)
    if args.users < 1 or args.messages < args.users:
        parser.error("need --users >= 1 and --messages >= --users")
    if args.daily_limit < 0:
        args.daily_limit = max(1, args.messages // args.users - 2)
    tmp = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    try:
        with store(args.cluster) as where:
            results = asyncio.run(run(args, where, tmp))
            results["store"] = where.describe()
        table = report(args, results)
        if args.dump is not None:
            dump(args.dump, results)
    finally:
        if args.keep:
            print(f"\nreplica logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return kit.verdict(args, table.goals, table.checks)


if __name__ == "__main__":
    sys.exit(main())
