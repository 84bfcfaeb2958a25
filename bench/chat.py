"""What the bot itself costs per chat message: the real app against the doubles (issue #3).

Run from the repository root, either way::

    .venv/bin/python -m bench.chat
    .venv/bin/python bench/chat.py [--kind openai] [--messages 300] [--burst 1000]

The real app (``App.build``, ``gc.freeze()`` as ``bot.app.run`` does, ``run_polling``;
production logging, its output thrown away) runs in this process against a real
redis-server. The fake Bot API and the model API double of ``--kind`` run together in a
child process with its own event loop, so the CPU time measured here is the bot's alone.
The child notes when ``getUpdates`` handed out each update, when a chat request reached
the model double and when its stream began; every Bot API call carries the time it
arrived. Clocks are ``time.monotonic()``, one clock for both processes. Every reply is
checked: a final message that is not the model's answer (an error text) is counted
apart, never as answered.

The figures (the phases run in the order 4, 1, 2, 3, then the profile):

1. Overhead latency (after a warm-up): ``--messages`` messages one at a time from ten
   users (so histories grow to the 40-message cap), an instant provider answer. From
   getUpdates returning the update to the provider request arriving at the double, with
   the step in between that the Bot API double sees (the empty "Thinking" draft).
2. First chunk to first visible draft: ``--draft-users`` users, one message each, 40 ms
   apart, answered in 11 pieces 150 ms apart (after ``--first-delay``). From the double
   starting the stream to the first ``sendMessageDraft`` that has text.
3. Throughput: ``--burst`` distinct users send one message each at once; the provider
   answers instantly in one short piece. Answered = final ``sendMessage`` calls holding
   the answer; the window runs from the first update handed out to the last answer. The
   bot's CPU per message is the process's CPU over the phase, with its GC pauses.
4. Redis round trips, with an app whose Redis goes through a counting relay in the
   child: ``--redis-messages`` messages one at a time. Round trips are the client's
   writes (redis-py sends a pipeline in one), connection set-up apart; commands sent are
   parsed from those writes, commands run (with those inside Lua) come from
   ``INFO commandstats``.
5. A cProfile of a smaller burst (``--profile-burst``, 0 to skip): where the time goes.

Prints one table with each figure, its goal and pass/fail; exits 1 when a goal is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import importlib
import json
import logging
import multiprocessing
import os
import pstats
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

# ``python bench/chat.py`` puts bench/ first on sys.path; the bot and the doubles are
# imported from the repository root (in this process and in the child).
ROOT = str(Path(__file__).resolve().parent.parent)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from aiohttp import web  # noqa: E402

from bench.providers import SPECS  # noqa: E402
from tests.doubles.base import LLMDouble, Reply  # noqa: E402
from tests.doubles.telegram import Call, TelegramDouble  # noqa: E402
from tests.redis_server import RedisServer  # noqa: E402

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    from bot.app import App

API_KEY_ENV = "BENCH_API_KEY"
INSTANT = "Paris is the capital of **France**."  # one short piece, with some Markdown
_WORDS = ("The", "capital", "of", "France", "is", "Paris,", "a", "city", "on", "the", "Seine.")
STREAMED = [f"{word} " for word in _WORDS]  # 11 pieces, streamed over 1.5 s
STREAM_DELAY = 0.15  # seconds between streamed pieces in the draft phase
QUESTION = "what is the capital of France?"
INSTANT_TEXT = "Paris is the capital of France."  # INSTANT as the user sees it
STREAMED_TEXT = "".join(STREAMED).strip()

GOAL_LATENCY_MS = 3.0  # p50, update handed out -> provider request
GOAL_THROUGHPUT = 300.0  # answered messages per second, one core
GOAL_ROUND_TRIPS = 3.0  # Redis round trips per message
BUDGET_CPU_MS = 20.0  # DESIGN "Speed budget": CPU per (streamed) answer

# What redis-py sends when it opens a connection (and its health checks): not per message.
SETUP_COMMANDS = frozenset(
    {"client|setinfo", "client|setname", "client|maint_notifications"}
    | {"hello", "select", "auth", "ping"}
)

CATALOG = """\
[defaults]
model = "bench"

[providers.bench]
kind = "{kind}"
base_url = "{base_url}"
{key_line}timeout = 30
max_retries = 0

[[models]]
id = "bench"
title = "Bench Model"
provider = "bench"
name = "{model}"
context = 128000
"""

Timeline = dict[str, Any]  # event -> time.monotonic() (None: not seen); "text": the answer


# -- the child: fake Bot API, model double, counting Redis relay -----------------------


class BenchTelegram(TelegramDouble):
    """The fake Bot API, also noting when getUpdates handed out each message (by its
    text) and counting the final messages (sendMessage) the bot sent."""

    def __init__(self) -> None:
        super().__init__()
        self.handed_out: dict[str, float] = {}
        self.finals = 0
        self._target = 0
        self._reached = asyncio.Event()

    async def _api_getUpdates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        updates = await super()._api_getUpdates(params)
        now = time.monotonic()
        for update in updates:
            text = (update.get("message") or {}).get("text")
            if text is not None:
                self.handed_out.setdefault(text, now)
        return updates

    def _log_call(
        self,
        arrived: float,
        method: str,
        params: dict[str, Any],
        error: Any,
        result: Any = None,
    ) -> None:
        super()._log_call(arrived, method, params, error, result)
        if method == "sendMessage" and error is None:
            self.finals += 1
            if self.finals >= self._target:
                self._reached.set()

    async def wait_finals(self, target: int, seconds: float) -> bool:
        """Until ``target`` final messages in all (True), or ``seconds`` (False)."""
        self._target = target
        self._reached = asyncio.Event()
        if self.finals >= target:
            return True
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._reached.wait()
        return self.finals >= target


def _prompt(body: bytes) -> str | None:
    """The last user message of a chat request body (any of the APIs' shapes)."""
    try:
        payload = json.loads(body)
    except ValueError:
        return None
    messages = payload.get("messages") if isinstance(payload, dict) else None
    last: str | None = None
    for message in messages if isinstance(messages, list) else []:
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
            elif isinstance(content, dict):
                content = content.get("text", "")
            last = str(content)
    return last


def timed_llm(base: type[LLMDouble]) -> type[LLMDouble]:
    """``base`` noting, per prompt, when its request arrived and when the stream began
    (the first piece follows the response headers without a pause)."""

    class Timed(base):  # type: ignore[valid-type,misc]
        def __init__(self, key: str | None) -> None:
            super().__init__(key=key)
            self.arrived: dict[str, float] = {}
            self.first_chunk: dict[str, float] = {}
            self.app.on_response_prepare.append(self._prepared)

        @web.middleware
        async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
            arrived = time.monotonic()
            prompt = _prompt(await request.read()) if request.method == "POST" else None
            if prompt is not None:
                self.arrived.setdefault(prompt, arrived)
                request["bench_prompt"] = prompt
            response: web.StreamResponse = await super()._record(request, handler)
            return response

        async def _prepared(self, request: web.Request, response: web.StreamResponse) -> None:
            now = time.monotonic()
            prompt = request.get("bench_prompt")
            if prompt is not None and response.status == 200:
                self.first_chunk.setdefault(prompt, now)

    return Timed


class RespCommands:
    """Cuts a client's byte stream to Redis into the commands it holds (RESP arrays of
    bulk strings) and counts them by name (``client|setinfo`` for subcommands)."""

    SUBCOMMANDS = frozenset({"client", "config", "script", "cluster", "command"})

    def __init__(self, counts: Counter[str]) -> None:
        self.counts = counts
        self.buffer = b""

    def feed(self, data: bytes) -> list[str]:
        """The names of the commands completed by ``data``."""
        self.buffer += data
        names: list[str] = []
        for _ in range(100_000):
            name = self._next()
            if name is None:
                break
            self.counts[name] += 1
            names.append(name)
        return names

    def _next(self) -> str | None:
        buffer = self.buffer
        end = buffer.find(b"\r\n")
        if end < 0:
            return None
        if not buffer.startswith(b"*"):  # an inline command: PING\r\n
            self.buffer = buffer[end + 2 :]
            words = buffer[:end].split()
            return words[0].decode().lower() if words else None
        parts: list[str] = []
        position = end + 2
        for _ in range(int(buffer[1:end])):
            end = buffer.find(b"\r\n", position)
            if end < 0:
                return None
            start = end + 2
            stop = start + int(buffer[position + 1 : end])
            if len(buffer) < stop + 2:
                return None
            if len(parts) < 2:
                parts.append(buffer[start:stop].decode("utf-8", "replace").lower())
            position = stop + 2
        self.buffer = buffer[position:]
        if len(parts) == 2 and parts[0] in self.SUBCOMMANDS:
            return f"{parts[0]}|{parts[1]}"
        return parts[0] if parts else "?"


class CountingRelay:
    """A TCP relay to Redis counting what the client sends: its writes (one per round
    trip: redis-py sends a pipeline in one write and reads all replies before sending
    again on that connection) and the commands in them."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.writes = 0
        self.setup_writes = 0  # writes holding only connection set-up commands
        self.connections = 0
        self.commands: Counter[str] = Counter()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()

    def counts(self) -> dict[str, Any]:
        return {
            "writes": self.writes,
            "setup_writes": self.setup_writes,
            "connections": self.connections,
            "commands": dict(self.commands),
        }

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._writers.update((writer, up_writer))
        try:
            await asyncio.gather(
                self._pump(reader, up_writer, RespCommands(self.commands)),
                self._pump(up_reader, writer, None),
                return_exceptions=True,
            )
        finally:
            self._writers.difference_update((writer, up_writer))

    async def _pump(
        self,
        source: asyncio.StreamReader,
        sink: asyncio.StreamWriter,
        commands: RespCommands | None,
    ) -> None:
        try:
            while data := await source.read(1 << 16):
                if commands is not None:
                    self.writes += 1
                    names = commands.feed(data)
                    if names and all(name in SETUP_COMMANDS for name in names):
                        self.setup_writes += 1
                sink.write(data)
                await sink.drain()
        finally:
            sink.close()


class Driver:
    """The child's side of the conversation: plays the users, answers for the doubles."""

    def __init__(self, tg: BenchTelegram, llm: Any, relay: CountingRelay) -> None:
        self.tg = tg
        self.llm = llm
        self.relay = relay
        self.users: dict[int, Any] = {}

    def _user(self, user_id: int) -> Any:
        user = self.users.get(user_id)
        if user is None:
            user = self.users[user_id] = self.tg.user(id=user_id, first_name=f"U{user_id}")
        return user

    def _timeline(self, calls: Sequence[Call], text: str) -> Timeline:
        def first(method: str, test: Callable[[Call], bool] | None = None) -> float | None:
            for call in calls:
                if call.method == method and call.ok and (test is None or test(call)):
                    return call.time
            return None

        return {
            "handed": self.tg.handed_out.get(text),
            "typing": first("sendChatAction"),
            "empty_draft": first("sendMessageDraft", lambda c: not c.params.get("text")),
            "request": self.llm.arrived.get(text),
            "first_chunk": self.llm.first_chunk.get(text),
            "text_draft": first("sendMessageDraft", lambda c: bool(c.params.get("text"))),
            "final": first("sendMessage"),
            "text": next((c.text for c in calls if c.method == "sendMessage" and c.ok), None),
        }

    async def mark(self) -> int:
        return self.tg.mark()

    async def wait_poll(self, since: int) -> bool:
        await self.tg.wait_for("getUpdates", since=since, timeout=20)
        return True

    async def reply(self, **fields: Any) -> bool:
        self.llm.default = Reply(**fields)
        return True

    async def relay_counts(self) -> dict[str, Any]:
        return self.relay.counts()

    async def sequential(self, prompts: list[tuple[int, str]], gap: float) -> list[Timeline]:
        """One message at a time: the next once the previous answer has arrived."""
        timelines = []
        for user_id, text in prompts:
            mark = self.tg.mark()
            await self._user(user_id).send(text)
            await self.tg.wait_for(
                "sendMessage", lambda c, uid=user_id: c.chat_id == uid, timeout=15, since=mark
            )
            await asyncio.sleep(gap)  # the history write follows the final message
            calls = [c for c in self.tg.api_calls[mark:] if c.chat_id == user_id]
            timelines.append(self._timeline(calls, text))
        return timelines

    async def together(
        self, prompts: list[tuple[int, str]], interval: float, seconds: float
    ) -> dict[str, Any]:
        """Every user sends one message, ``interval`` apart (0: all at once)."""
        users = [self._user(user_id) for user_id, _ in prompts]  # chats exist before
        mark = self.tg.mark()
        target = self.tg.finals + len(prompts)
        cpu = time.process_time()
        for user, (_, text) in zip(users, prompts, strict=True):
            await user.send(text)
            if interval > 0:
                await asyncio.sleep(interval)
        await self.tg.wait_finals(target, seconds)  # a reply missing by then counts as such
        by_chat: dict[int | None, list[Call]] = {}
        for call in self.tg.api_calls[mark:]:
            by_chat.setdefault(call.chat_id, []).append(call)
        timelines = [self._timeline(by_chat.get(uid, []), text) for uid, text in prompts]
        calls = self.tg.api_calls[mark:]
        return {
            "timelines": timelines,
            "failed_calls": sum(1 for c in calls if not c.ok),
            "methods": dict(Counter(c.method for c in calls if c.method != "getUpdates")),
            "child_cpu": time.process_time() - cpu,
        }


def _serve(kind: str, redis_port: int, conn: Connection) -> None:
    """Child process: serve the doubles and the relay until told to stop."""
    asyncio.run(_serve_async(kind, redis_port, conn))


async def _serve_async(kind: str, redis_port: int, conn: Connection) -> None:
    spec = SPECS[kind]
    module_name, _, class_name = spec.double.partition(":")
    llm = timed_llm(getattr(importlib.import_module(module_name), class_name))(key=spec.key)
    llm.default = Reply(chunks=[INSTANT])
    tg = BenchTelegram()
    relay = CountingRelay(redis_port)
    await tg.start()
    await llm.start()
    await relay.start()
    driver = Driver(tg, llm, relay)
    loop = asyncio.get_running_loop()
    try:
        conn.send({"telegram": tg.url, "token": tg.token, "llm": llm.url, "relay": relay.port})
        while True:
            name, fields = await loop.run_in_executor(None, conn.recv)
            if name == "stop":
                break
            try:
                result: Any = ("ok", await getattr(driver, name)(**fields))
            except Exception as exc:
                result = ("error", f"{type(exc).__name__}: {exc}")
            conn.send(result)
    finally:
        await relay.stop()
        await llm.stop()
        await tg.stop()


class Child:
    """The doubles in their own process, driven through a pipe."""

    def __init__(self, kind: str, redis_port: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.conn, child_conn = context.Pipe()
        self.process = context.Process(
            target=_serve, args=(kind, redis_port, child_conn), name="doubles", daemon=True
        )
        self.process.start()
        child_conn.close()
        self.info: dict[str, Any] = {}

    def wait_ready(self, timeout: float = 30.0) -> dict[str, Any]:
        if not self.conn.poll(timeout):
            raise RuntimeError(f"the doubles did not start within {timeout:g}s")
        self.info = self.conn.recv()
        return self.info

    def _call(self, name: str, fields: dict[str, Any], timeout: float) -> Any:
        self.conn.send((name, fields))
        if not self.conn.poll(timeout):
            raise RuntimeError(f"the doubles did not answer {name!r} within {timeout:g}s")
        status, value = self.conn.recv()
        if status != "ok":
            raise RuntimeError(f"doubles: {name}: {value}")
        return value

    async def call(self, name: str, **fields: Any) -> Any:
        """Ask the child (from a thread, so that this process's loop keeps serving)."""
        return await asyncio.to_thread(self._call, name, fields, 120.0)

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.send(("stop", {}))
        self.process.join(5)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(5)


# -- the bot side ------------------------------------------------------------------


def prompts(tag: str, first_user: int, users: int, count: int) -> list[tuple[int, str]]:
    """``count`` distinct messages from ``users`` users taking turns."""
    return [(first_user + i % users, f"{tag} {i}: {QUESTION}") for i in range(count)]


def quiet_production_logging(secrets: list[str | None], level: str) -> Any:
    """The bot's own logging set-up (level, redacting filter), written to /dev/null."""
    from bot import redact

    redact.install(redact.Redactor(secrets), level)
    sink = open(os.devnull, "w")  # noqa: SIM115 - closed by the caller
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(sink)
    return sink


@contextlib.asynccontextmanager
async def running_app(
    child: Child, redis_url: str, catalog_path: Path, key: str | None, **overrides: Any
) -> AsyncIterator[App]:
    """The real app, polling the child's fake Bot API; stopped cleanly afterwards."""
    from bot.app import App, tune_gc
    from bot.catalog import load_catalog
    from bot.settings import Settings

    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        bot_token=child.info["token"],
        telegram_api_url=child.info["telegram"],
        redis_url=redis_url,
        models_file=catalog_path,
        log_level=logging.getLevelName(logging.getLogger().level),
        shutdown_grace_seconds=5.0,
        **overrides,
    )
    catalog = load_catalog(catalog_path, {API_KEY_ENV: key} if key else {})
    app = App.build(settings, catalog)
    tune_gc()  # as bot.app.run does after the build
    mark = await child.call("mark")
    task = asyncio.create_task(app.run_polling(handle_signals=False))
    try:
        await child.call("wait_poll", since=mark)
        yield app
    finally:
        with contextlib.suppress(RuntimeError):
            await app.dispatcher.stop_polling()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(task, 5)
        await app.close()


async def wait_idle(app: App) -> None:
    """Until no handler is running (the history writes after the answers are done)."""
    for _ in range(100):
        running = {task for task in app.in_flight.tasks if not task.done()}
        if not running:
            return
        await asyncio.wait(running, timeout=0.2)


async def command_stats(client: Any) -> dict[str, int]:
    info = await client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in info.items()}


async def redis_info(client: Any) -> dict[str, float]:
    """redis-server's CPU seconds and the connections it has accepted so far."""
    info = await client.info()
    return {
        "cpu": float(info["used_cpu_user"]) + float(info["used_cpu_sys"]),
        "connections": float(info["total_connections_received"]),
    }


class GcWatch:
    """The garbage collector's pauses in this process while in the ``with`` block."""

    def __init__(self) -> None:
        self.pauses: list[tuple[int, float]] = []  # (generation, seconds)
        self._started = 0.0

    def __enter__(self) -> GcWatch:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses.append((int(info["generation"]), time.perf_counter() - self._started))

    def summary(self) -> dict[str, Any]:
        full = [seconds for generation, seconds in self.pauses if generation == 2]
        return {
            "count": len(self.pauses),
            "total": sum(seconds for _, seconds in self.pauses),
            "full": len(full),
            "full_total": sum(full),
            "longest": max((seconds for _, seconds in self.pauses), default=0.0),
        }


def delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    changed = {k: v - before.get(k, 0) for k, v in after.items() if k != "info"}
    return {k: v for k, v in changed.items() if v}


async def run(args: argparse.Namespace, child: Child, redis_url: str) -> dict[str, Any]:
    from redis.asyncio import Redis

    spec = SPECS[args.kind]
    results: dict[str, Any] = {}
    tmp = Path(tempfile.mkdtemp(prefix="bench-chat-"))
    catalog_path = tmp / "models.toml"
    key_line = f'api_key_env = "{API_KEY_ENV}"\n' if spec.key else ""
    catalog_path.write_text(
        CATALOG.format(
            kind=spec.kind,
            base_url=child.info["llm"] + spec.prefix,
            key_line=key_line,
            model=spec.model,
        )
    )
    sink = quiet_production_logging([child.info["token"], spec.key], args.log_level)
    overrides = {}
    if args.max_concurrent:
        overrides["max_concurrent_answers"] = args.max_concurrent
    stats = Redis.from_url(redis_url)
    try:
        # 1. Redis round trips, through the counting relay.
        relay_url = f"redis://127.0.0.1:{child.info['relay']}/0"
        async with running_app(child, relay_url, catalog_path, spec.key, **overrides) as app:
            await child.call("sequential", prompts=prompts("rwarm", 100, 5, 10), gap=0.02)
            await wait_idle(app)
            relay0, commands0 = await child.call("relay_counts"), await command_stats(stats)
            count = args.redis_messages
            await child.call("sequential", prompts=prompts("redis", 110, 10, count), gap=0.02)
            await wait_idle(app)
            relay1, commands1 = await child.call("relay_counts"), await command_stats(stats)
            results["redis"] = {
                "messages": count,
                "writes": relay1["writes"] - relay0["writes"],
                "setup_writes": relay1["setup_writes"] - relay0["setup_writes"],
                "connections": relay1["connections"] - relay0["connections"],
                "sent": delta(relay1["commands"], relay0["commands"]),
                "executed": delta(commands1, commands0),
            }

        async with running_app(child, redis_url, catalog_path, spec.key, **overrides) as app:
            await child.call("sequential", prompts=prompts("warm", 200, 10, 30), gap=0.01)
            await wait_idle(app)

            # 2. Overhead latency, one message at a time.
            cpu0 = time.process_time()
            timelines = await child.call(
                "sequential", prompts=prompts("latency", 300, 10, args.messages), gap=0.01
            )
            await wait_idle(app)
            results["latency"] = {
                "timelines": timelines,
                "cpu": time.process_time() - cpu0,
            }

            # 3. First chunk to first visible draft, answers streamed over ~2 s.
            await child.call(
                "reply", chunks=STREAMED, chunk_delay=STREAM_DELAY, first_delay=args.first_delay
            )
            cpu0 = time.process_time()
            drafts = await child.call(
                "together",
                prompts=prompts("draft", 400, args.draft_users, args.draft_users),
                interval=0.04,
                seconds=60,
            )
            await wait_idle(app)
            drafts["cpu"] = time.process_time() - cpu0
            results["drafts"] = drafts
            await child.call("reply", chunks=[INSTANT])

            # 4. Throughput: a burst of distinct users, an instant provider.
            gc.collect()
            commands0, redis0 = await command_stats(stats), await redis_info(stats)
            cpu0 = time.process_time()
            with GcWatch() as pauses:
                burst = await child.call(
                    "together",
                    prompts=prompts("burst", 10_000, args.burst, args.burst),
                    interval=0.0,
                    seconds=60,
                )
                await wait_idle(app)
            burst["cpu"] = time.process_time() - cpu0
            burst["gc"] = pauses.summary()
            redis1 = await redis_info(stats)
            burst["redis_cpu"] = redis1["cpu"] - redis0["cpu"]
            burst["redis_connections"] = redis1["connections"] - redis0["connections"]
            burst["commands"] = delta(await command_stats(stats), commands0)
            results["burst"] = burst

            # 5. Where the time goes: a smaller burst under cProfile.
            if args.profile_burst:
                profiler = cProfile.Profile()
                with GcWatch() as pauses:
                    profiler.enable()
                    profiled = await child.call(
                        "together",
                        prompts=prompts("profile", 20_000, args.profile_burst, args.profile_burst),
                        interval=0.0,
                        seconds=60,
                    )
                    await wait_idle(app)
                    profiler.disable()
                texts = [t["text"] for t in profiled["timelines"]]
                results["profile"] = {
                    "stats": pstats.Stats(profiler),
                    "messages": sum(1 for text in texts if text is not None),
                    "answered": sum(1 for text in texts if text == INSTANT_TEXT),
                    "gc": pauses.summary(),
                }
    finally:
        await stats.aclose()
        logging.getLogger().handlers.clear()
        sink.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return results


# -- report ------------------------------------------------------------------------


def pct(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def spans(timelines: Sequence[Timeline], start: str, end: str) -> list[float]:
    """``end - start`` in ms for every timeline that has both."""
    out = []
    for t in timelines:
        a, b = t.get(start), t.get(end)
        if a is not None and b is not None:
            out.append((b - a) * 1e3)
    return out


class Table:
    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str, str]] = []
        self.ok = True

    def add(self, name: str, value: str, goal: str = "", passed: bool | None = None) -> None:
        verdict = "" if passed is None else ("pass" if passed else "FAIL")
        if passed is False:
            self.ok = False
        self.rows.append((name, value, goal, verdict))

    def print(self) -> None:
        widths = [
            max(len(r[i]) for r in [*self.rows, ("figure", "value", "goal", "")]) for i in range(4)
        ]
        head = ("figure", "value", "goal", "result")
        line = " | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True))
        print(line)
        print("-" * len(line))
        for row in self.rows:
            print(" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))


def _short(path: str) -> str:
    for marker in ("site-packages/", ROOT + "/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def _package(path: str) -> str:
    """Who owns a profiled function: a package, a stdlib module, or C code."""
    if path.startswith("~") or path.startswith("<"):
        return "C builtins"
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1].split("/", 1)[0]
    if path.startswith(ROOT + "/"):
        return path[len(ROOT) + 1 :].split("/", 1)[0] + "/"
    return "stdlib " + Path(path).parent.name if "/lib/python3" in path else path


def print_profile(profile: dict[str, Any]) -> None:
    stats: pstats.Stats = profile["stats"]
    messages = max(int(profile["messages"]), 1)
    entries = stats.stats  # type: ignore[attr-defined]
    total = sum(value[2] for value in entries.values())
    pauses = profile["gc"]
    print(
        f"\ncProfile of a {messages}-message burst ({profile['answered']} answered): "
        f"{total * 1e3 / messages:.1f} ms of profiled time per message (the profiler "
        "inflates every figure).\nGC pauses in it: "
        f"{pauses['total'] * 1e3:.0f} ms ({pauses['full']} full), charged as own time to "
        "whatever function was allocating when a collection started."
    )

    def show(title: str, rows: list[tuple[Any, Any]], order: int) -> None:
        print(f"\n{title}")
        print(f"  {'ncalls':>9} {'tottime ms':>10} {'cumtime ms':>10} {'cum/msg ms':>10}  function")
        rows.sort(key=lambda item: item[1][order], reverse=True)
        for (file, line, func), (_cc, nc, tt, ct, _callers) in rows[:10]:
            print(
                f"  {nc:>9} {tt * 1e3:>10.1f} {ct * 1e3:>10.1f} {ct * 1e3 / messages:>10.3f}"
                f"  {_short(file)}:{line}({func})"
            )

    def ours(*parts: str) -> list[tuple[Any, Any]]:
        return [item for item in entries.items() if any(p in item[0][0] for p in parts)]

    show("Top 10 by cumulative time, bot/ and aiogram:", ours(f"{ROOT}/bot/", "/aiogram/"), 3)
    show(
        "Top 10 by cumulative time, bot/ and providers/ only:",
        ours(f"{ROOT}/bot/", f"{ROOT}/providers/"),
        3,
    )
    show("Top 10 by own time, everything:", list(entries.items()), 2)
    owners: Counter[str] = Counter()
    for (file, _line, _func), value in entries.items():
        owners[_package(file)] += value[2]
    shares = ", ".join(f"{name} {seconds / total:.0%}" for name, seconds in owners.most_common(12))
    print(f"\nOwn time by owner: {shares}")


def report(args: argparse.Namespace, results: dict[str, Any]) -> bool:
    print(
        f"\nbench.chat: {args.kind} provider double; Python {sys.version.split()[0]}, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; bot logging at "
        f"{args.log_level} (to /dev/null); MAX_CONCURRENT_ANSWERS "
        f"{args.max_concurrent or 'default'}."
    )
    print("The doubles run in a child process: the CPU figures are the bot process's alone.\n")
    table = Table()
    notes: list[str] = []

    # 1. overhead latency
    latency = results["latency"]["timelines"]
    n = len(latency)
    lat = spans(latency, "handed", "request")
    table.add(
        f"1 update handed out -> provider request, p50 ({len(lat)}/{n})",
        f"{pct(lat, 50):.2f} ms",
        f"<= {GOAL_LATENCY_MS:g} ms",
        pct(lat, 50) <= GOAL_LATENCY_MS,
    )
    table.add("  same, p95", f"{pct(lat, 95):.2f} ms")
    table.add("    handed out -> empty draft arrives, p50", _p50(latency, "handed", "empty_draft"))
    table.add(
        "    empty draft arrives -> provider request, p50",
        _p50(latency, "empty_draft", "request"),
    )
    table.add(
        "  bot CPU per answer, one at a time", f"{results['latency']['cpu'] / n * 1e3:.2f} ms"
    )
    _check_answers(table, notes, "latency phase", latency, INSTANT_TEXT)

    # 2. first chunk -> first visible draft
    drafts = results["drafts"]
    dl = drafts["timelines"]
    first = spans(dl, "first_chunk", "text_draft")
    table.add(
        f"2 first chunk -> first visible draft, p50 ({len(first)}/{len(dl)})",
        f"{pct(first, 50):.1f} ms",
        "(none given)",
    )
    table.add("  same, p95", f"{pct(first, 95):.1f} ms")
    table.add("    empty draft arrives -> first chunk, p50", _p50(dl, "empty_draft", "first_chunk"))
    table.add(
        "    empty draft arrives -> first text draft, p50", _p50(dl, "empty_draft", "text_draft")
    )
    streamed_cpu = drafts["cpu"] / max(len(dl), 1) * 1e3
    table.add(
        f"  bot CPU per streamed answer ({len(STREAMED)} pieces)",
        f"{streamed_cpu:.2f} ms",
        f"<= {BUDGET_CPU_MS:g} ms (DESIGN)",
        streamed_cpu <= BUDGET_CPU_MS,
    )
    _check_answers(table, notes, "draft phase", dl, STREAMED_TEXT)

    # 3. throughput
    burst = results["burst"]
    bl = burst["timelines"]
    finals = [t for t in bl if t["final"] is not None]
    answered = [t for t in finals if t["text"] == INSTANT_TEXT]
    start = min(t["handed"] for t in bl if t["handed"] is not None)
    end = max((t["final"] for t in answered), default=start)
    window = max(end - start, 1e-9)
    rate = len(answered) / window
    table.add(
        f"3 throughput: {len(answered)}/{len(bl)} answered in {window:.2f} s",
        f"{rate:.0f} msg/s",
        f">= {GOAL_THROUGHPUT:g}/s",
        rate >= GOAL_THROUGHPUT and len(answered) == len(bl),
    )
    _check_answers(table, notes, "burst", bl, INSTANT_TEXT)
    cpu_ms = burst["cpu"] / max(len(finals), 1) * 1e3
    table.add(
        "  bot CPU per final message",
        f"{cpu_ms:.2f} ms",
        f"<= {1e3 / GOAL_THROUGHPUT:.2f} ms",
        cpu_ms <= 1e3 / GOAL_THROUGHPUT,
    )
    table.add("  bot capacity at one full core (1 / CPU)", f"{1e3 / cpu_ms:.0f} msg/s")
    table.add(
        "  CPU busy over the window: bot / doubles",
        f"{burst['cpu'] / window:.0%} / {burst['child_cpu'] / window:.0%}",
    )
    pauses = burst["gc"]
    table.add(
        "  bot GC pauses: all (share of bot CPU); full",
        f"{pauses['count']}, {pauses['total'] * 1e3:.0f} ms ({pauses['total'] / burst['cpu']:.0%})"
        f"; {pauses['full']}, {pauses['full_total'] * 1e3:.0f} ms",
    )
    table.add("    longest pause", f"{pauses['longest'] * 1e3:.1f} ms")
    table.add(
        "  handed out -> final message, p50 / p95",
        f"{_pct_ms(bl, 'handed', 'final', 50)} / {_pct_ms(bl, 'handed', 'final', 95)} ms",
    )
    table.add(
        "  redis-server CPU per message",
        f"{burst['redis_cpu'] / max(len(finals), 1) * 1e3:.3f} ms",
    )
    table.add("  new Redis connections", f"{burst['redis_connections']:.0f}")
    if burst["failed_calls"]:
        table.add("  Bot API calls that failed", str(burst["failed_calls"]), "0", False)
    calls = ", ".join(
        f"{name} {count / max(len(finals), 1):.2f}"
        for name, count in sorted(burst["methods"].items(), key=lambda item: -item[1])
    )
    notes.append(f"Bot API calls per message in the burst: {calls}.")

    # 4. Redis
    redis = results["redis"]
    messages = redis["messages"]
    trips = (redis["writes"] - redis["setup_writes"]) / messages
    sent, executed = redis["sent"], redis["executed"]
    table.add(
        f"4 Redis round trips per message ({messages})",
        f"{trips:.2f}",
        f"<= {GOAL_ROUND_TRIPS:g}",
        trips <= GOAL_ROUND_TRIPS,
    )
    table.add(
        "  connections opened; their set-up round trips",
        f"{redis['connections']}; {redis['setup_writes']} (not counted above)",
    )
    table.add("  commands sent per message", f"{_per(sent, messages):.2f}")
    table.add("  commands Redis ran per message (with Lua's)", f"{_per(executed, messages):.2f}")
    table.add(
        "  burst: commands Redis ran per final message",
        f"{_per(burst['commands'], max(len(finals), 1)):.2f}",
    )
    table.print()

    notes.append(f"Redis commands per message, one at a time ({messages} messages):")
    notes.append(f"  sent by the bot: {_breakdown(sent, messages)}")
    notes.append(f"  run by Redis:    {_breakdown(executed, messages)}")
    notes.append(f"  run in the burst: {_breakdown(burst['commands'], max(len(finals), 1))}")
    if burst["child_cpu"] / window > 0.85:
        notes.append(
            "The doubles' process was busy most of the throughput window: the rate may be "
            "the doubles' limit; the bot's CPU per message is the steadier figure."
        )
    print()
    for note in notes:
        print(note)
    if "profile" in results:
        print_profile(results["profile"])
    return table.ok


def _check_answers(
    table: Table, notes: list[str], phase: str, timelines: Sequence[Timeline], expected: str
) -> None:
    """A row (and the texts) for messages that got something other than the answer."""
    others = Counter(t["text"] for t in timelines if t["text"] != expected)
    if not others:
        return
    table.add(f"  {phase}: replies that were not the answer", str(sum(others.values())), "0", False)
    for text, count in others.most_common(3):
        notes.append(f"{phase}: {count} x {text!r}" if text else f"{phase}: {count} x no reply")


def _pct_ms(timelines: Sequence[Timeline], start: str, end: str, q: float) -> str:
    values = spans(timelines, start, end)
    return f"{pct(values, q):.0f}" if values else "n/a"


def _per(commands: dict[str, int], messages: int) -> float:
    return sum(v for k, v in commands.items() if k not in SETUP_COMMANDS) / messages


def _breakdown(commands: dict[str, int], messages: int) -> str:
    ordered = sorted(commands.items(), key=lambda item: (-item[1], item[0]))
    return ", ".join(f"{name} {count / messages:.2f}" for name, count in ordered) or "none"


def _p50(timelines: Sequence[Timeline], start: str, end: str) -> str:
    values = spans(timelines, start, end)
    return f"{pct(values, 50):.2f} ms" if values else "n/a"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kind", default="openai", choices=sorted(SPECS))
    parser.add_argument("--messages", type=int, default=300, help="latency phase messages")
    parser.add_argument("--redis-messages", type=int, default=100)
    parser.add_argument("--draft-users", type=int, default=40)
    parser.add_argument("--first-delay", type=float, default=0.0, help="model's time to start")
    parser.add_argument("--burst", type=int, default=1000, help="users in the throughput burst")
    parser.add_argument("--profile-burst", type=int, default=300, help="0: no profile")
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument(
        "--max-concurrent", type=int, default=0, help="MAX_CONCURRENT_ANSWERS (0: the default)"
    )
    args = parser.parse_args(argv)
    for name in ("messages", "redis_messages", "draft_users", "burst"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    server = RedisServer()
    server.start()
    child: Child | None = None
    try:
        child = Child(args.kind, server.port)
        child.wait_ready()
        results = asyncio.run(run(args, child, server.url))
    finally:
        if child is not None:
            child.stop()
        server.cleanup()
    return 0 if report(args, results) else 1


if __name__ == "__main__":
    sys.exit(main())
