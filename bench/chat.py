"""What the bot itself costs per chat message (issue #3): the real app, polling, in this
process with production logging (to /dev/null) and a real redis-server; the fake Bot API
and the model API double of ``--kind`` in a child process, so that the CPU measured here
is the bot's alone. Overhead latency, first chunk to first draft, throughput, Redis round
trips and a cProfile of a burst; see bench/README.md."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import logging
import os
import pstats
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from bench import kit
from tests.doubles.base import LLMDouble, Reply
from tests.doubles.telegram import Call, FakeUser

if TYPE_CHECKING:
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
QUICK = {"messages": 20, "redis_messages": 10, "draft_users": 3, "burst": 30, "profile_burst": 20}

Timeline = dict[str, Any]  # event -> time.monotonic() (None: not seen); "text": the answer


# -- the child: fake Bot API and model double --------------------------------------------


class Driver:
    """The child's side: the doubles; plays the users."""

    def __init__(self, tg: kit.FinalsTelegram, llm: LLMDouble) -> None:
        self.tg, self.llm = tg, llm
        self.timing = kit.time_requests(llm)
        self.users: dict[int, FakeUser] = {}
        self.info: dict[str, Any] = {}

    async def start(self) -> Driver:
        await self.tg.start()
        await self.llm.start()
        self.info = {"telegram": self.tg.url, "token": self.tg.token, "llm": self.llm.url}
        return self

    async def aclose(self) -> None:
        await self.llm.stop()
        await self.tg.stop()

    def _user(self, user_id: int) -> FakeUser:
        if user_id not in self.users:
            self.users[user_id] = self.tg.user(id=user_id, first_name=f"U{user_id}")
        return self.users[user_id]

    def _timeline(self, calls: Sequence[Call], text: str) -> Timeline:
        def first(method: str, test: Callable[[Call], bool] | None = None) -> float | None:
            found = (c for c in calls if c.method == method and c.ok and (not test or test(c)))
            return next((c.time for c in found), None)

        return {
            "handed": self.tg.handed_out.get(text),
            "empty_draft": first("sendMessageDraft", lambda c: not c.params.get("text")),
            "request": self.timing.arrived.get(text),
            "first_chunk": self.timing.first_chunk.get(text),
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

    async def sequential(self, prompts: list[tuple[int, str]], gap: float) -> list[Timeline]:
        """One message at a time: the next once the previous answer has arrived."""
        timelines = []
        for user_id, text in prompts:
            mark = self.tg.mark()
            await self._user(user_id).send(text)
            await self.tg.wait_for("sendMessage", _to(user_id), timeout=15, since=mark)
            await asyncio.sleep(gap)  # the history write follows the final message
            calls = [c for c in self.tg.api_calls[mark:] if c.chat_id == user_id]
            timelines.append(self._timeline(calls, text))
        return timelines

    async def together(
        self, prompts: list[tuple[int, str]], interval: float, seconds: float
    ) -> dict[str, Any]:
        """Every user sends one message, ``interval`` apart (0: all at once), on a fixed
        schedule: a late send does not delay the ones after it."""
        users = [self._user(user_id) for user_id, _ in prompts]  # chats exist before
        mark, target = self.tg.mark(), self.tg.total + len(prompts)
        cpu, start = time.process_time(), time.monotonic()
        for number, (user, (_, text)) in enumerate(zip(users, prompts, strict=True), 1):
            await user.send(text)
            if interval > 0:
                await asyncio.sleep(max(0.0, start + number * interval - time.monotonic()))
        await self.tg.wait_finals(target, seconds)  # a reply missing by then counts as such
        by_chat: dict[int | None, list[Call]] = {}
        for call in self.tg.api_calls[mark:]:
            by_chat.setdefault(call.chat_id, []).append(call)
        calls = self.tg.api_calls[mark:]
        return {
            "timelines": [self._timeline(by_chat.get(uid, []), text) for uid, text in prompts],
            "failed_calls": sum(1 for c in calls if not c.ok),
            "methods": dict(Counter(c.method for c in calls if c.method != "getUpdates")),
            "child_cpu": time.process_time() - cpu,
        }


def _to(chat_id: int) -> Callable[[Call], bool]:
    return lambda call: call.chat_id == chat_id


async def serve_doubles(kind: str) -> Driver:
    """The child process's object (see kit.Child)."""
    spec = kit.SPECS[kind]
    llm = spec.double_class()(key=spec.key)
    llm.default = Reply(chunks=[INSTANT])
    return await Driver(kit.FinalsTelegram(), llm).start()


# -- the bot side ----------------------------------------------------------------------------


def prompts(tag: str, first_user: int, users: int, count: int) -> list[tuple[int, str]]:
    """``count`` distinct messages from ``users`` users taking turns."""
    return [(first_user + i % users, f"{tag} {i}: {QUESTION}") for i in range(count)]


def quiet_production_logging(secrets: list[str | None], level: str) -> TextIO:
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
    child: kit.Child, redis_url: str, catalog_path: Path, key: str | None, **overrides: Any
) -> AsyncIterator[App]:
    """The real app, polling the child's fake Bot API; stopped cleanly afterwards."""
    from bot.app import App, tune_gc
    from bot.catalog import load_catalog
    from bot.settings import Settings

    settings = Settings(
        _env_file=None,
        bot_token=child.info["token"],
        telegram_api_url=child.info["telegram"],
        redis_url=redis_url,
        models_file=catalog_path,
        log_level=logging.getLevelName(logging.getLogger().level),
        shutdown_grace_seconds=5.0,
        # text answers: the figures stay comparable across versions; bench.render weighs
        # rich messages against text
        rich_messages=overrides.pop("rich_messages", "off"),
        **overrides,
    )
    app = App.build(settings, load_catalog(catalog_path, {API_KEY_ENV: key} if key else {}))
    tune_gc()  # as bot.app.run does after the build
    mark = await child.acall("mark")
    task = asyncio.create_task(app.run_polling(handle_signals=False))
    try:
        await child.acall("wait_poll", since=mark)
        yield app
    finally:
        with contextlib.suppress(RuntimeError):
            await app.dispatcher.stop_polling()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(task, 5)
        await app.close()


async def wait_idle(before: set[asyncio.Task[Any]]) -> None:
    """Until the tasks started since ``before`` (the handlers: the history writes follow
    the answers) are done."""
    for _ in range(100):
        running = {t for t in asyncio.all_tasks() if not t.done() and t not in before}
        running.discard(asyncio.current_task())
        if not running:
            return
        await asyncio.wait(running, timeout=0.2)


async def phase(child: kit.Child, method: str, **fields: Any) -> tuple[Any, float, kit.GcWatch]:
    """The child's ``method`` and the handlers it causes: its result, this process's CPU
    seconds and GC pauses over it."""
    before = asyncio.all_tasks()
    cpu = time.process_time()
    with kit.GcWatch() as pauses:
        result = await child.acall(method, **fields)
        await wait_idle(before)
    return result, time.process_time() - cpu, pauses


async def run(args: argparse.Namespace, child: kit.Child, redis_url: str) -> dict[str, Any]:
    from redis.asyncio import Redis

    spec = kit.SPECS[args.kind]
    results: dict[str, Any] = {}
    tmp = Path(tempfile.mkdtemp(prefix="bench-chat-"))
    catalog_path = kit.write_catalog(
        tmp / "models.toml",
        {"model": "bench"},
        {
            "bench": {
                "kind": spec.kind,
                "base_url": child.info["llm"] + spec.prefix,
                "api_key_env": API_KEY_ENV if spec.key else None,
                "timeout": 30,
                "max_retries": 0,
            }
        },
        [
            {
                "id": "bench",
                "title": "Bench Model",
                "provider": "bench",
                "name": spec.model,
                "context": 128000,
            }
        ],
    )
    sink = quiet_production_logging([child.info["token"], spec.key], args.log_level)
    overrides = {"max_concurrent_answers": args.max_concurrent} if args.max_concurrent else {}
    stats = Redis.from_url(redis_url)
    try:
        # 1. Redis round trips, counted at this process's redis-py connections.
        with kit.RedisWire() as wire:
            async with running_app(child, redis_url, catalog_path, spec.key, **overrides):
                warm = prompts("rwarm", 100, 5, min(10, args.redis_messages))
                await phase(child, "sequential", prompts=warm, gap=0.02)
                info0 = await kit.RedisInfo.take(stats)
                wire0 = wire.counts()
                count = args.redis_messages
                await phase(child, "sequential", prompts=prompts("redis", 110, 10, count), gap=0.02)
                wire1 = wire.counts()
                info1 = await kit.RedisInfo.take(stats)
        results["redis"] = {
            "messages": count,
            **kit.RedisWire.since(wire0, wire1),
            "executed": info1.calls_since(info0),
        }

        async with running_app(child, redis_url, catalog_path, spec.key, **overrides):
            warm = prompts("warm", 200, 10, min(30, args.messages))
            await phase(child, "sequential", prompts=warm, gap=0.01)

            # 2. Overhead latency, one message at a time.
            latency = prompts("latency", 300, 10, args.messages)
            timelines, cpu, _ = await phase(child, "sequential", prompts=latency, gap=0.01)
            results["latency"] = {"timelines": timelines, "cpu": cpu}

            # 3. First chunk to first visible draft, answers streamed over ~2 s.
            await child.acall(
                "reply", chunks=STREAMED, chunk_delay=STREAM_DELAY, first_delay=args.first_delay
            )
            draft = prompts("draft", 400, args.draft_users, args.draft_users)
            drafts, cpu, _ = await phase(
                child, "together", prompts=draft, interval=0.04, seconds=60
            )
            results["drafts"] = {**drafts, "cpu": cpu}
            await child.acall("reply", chunks=[INSTANT])

            # 4. Throughput: a burst of distinct users, an instant provider.
            gc.collect()
            redis0 = await kit.RedisInfo.take(stats)
            burst_prompts = prompts("burst", 10_000, args.burst, args.burst)
            burst, cpu, pauses = await phase(
                child, "together", prompts=burst_prompts, interval=0.0, seconds=60
            )
            redis1 = await kit.RedisInfo.take(stats)
            results["burst"] = {
                **burst,
                "cpu": cpu,
                "gc": pauses.summary(),
                "redis_cpu": redis1.cpu - redis0.cpu,
                "redis_connections": redis1.connections - redis0.connections,
                "commands": redis1.calls_since(redis0),
            }

            # 5. Where the time goes: a smaller burst under cProfile.
            if args.profile_burst:
                profiler = cProfile.Profile()
                n = args.profile_burst
                profiler.enable()
                profiled, _, pauses = await phase(
                    child,
                    "together",
                    prompts=prompts("profile", 20_000, n, n),
                    interval=0.0,
                    seconds=60,
                )
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


# -- report ----------------------------------------------------------------------------------


def spans(timelines: Sequence[Timeline], start: str, end: str) -> list[float]:
    """``end - start`` in ms for every timeline that has both."""
    pairs = ((t.get(start), t.get(end)) for t in timelines)
    return [(b - a) * 1e3 for a, b in pairs if a is not None and b is not None]


def _pct(timelines: Sequence[Timeline], start: str, end: str, q: float, fmt: str) -> str:
    values = spans(timelines, start, end)
    return f"{kit.pct(values, q):{fmt}}" if values else "n/a"


def _p50(timelines: Sequence[Timeline], start: str, end: str) -> str:
    text = _pct(timelines, start, end, 50, ".2f")
    return text if text == "n/a" else text + " ms"


def _short(path: str) -> str:
    for marker in ("site-packages/", kit.ROOT + "/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def _package(path: str) -> str:
    """Who owns a profiled function: a package, a stdlib module, or C code."""
    if path.startswith(("~", "<")):
        return "C builtins"
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1].split("/", 1)[0]
    if path.startswith(kit.ROOT + "/"):
        return path[len(kit.ROOT) + 1 :].split("/", 1)[0] + "/"
    return "stdlib " + Path(path).parent.name if "/lib/python3" in path else path


def print_profile(profile: dict[str, Any]) -> None:
    stats: pstats.Stats = profile["stats"]
    messages = max(int(profile["messages"]), 1)
    entries: dict[tuple[str, int, str], Any] = stats.stats  # type: ignore[attr-defined]
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

    bot, providers = f"{kit.ROOT}/bot/", f"{kit.ROOT}/providers/"
    show("Top 10 by cumulative time, bot/ and aiogram:", ours(bot, "/aiogram/"), 3)
    show("Top 10 by cumulative time, bot/ and providers/ only:", ours(bot, providers), 3)
    show("Top 10 by own time, everything:", list(entries.items()), 2)
    owners: Counter[str] = Counter()
    for (file, _line, _func), value in entries.items():
        owners[_package(file)] += value[2]
    shares = ", ".join(f"{name} {seconds / total:.0%}" for name, seconds in owners.most_common(12))
    print(f"\nOwn time by owner: {shares}")


def report(args: argparse.Namespace, results: dict[str, Any]) -> kit.Table:
    print(
        f"\nbench.chat: {args.kind} provider double; {kit.machine()}; bot logging at "
        f"{args.log_level} (to /dev/null); MAX_CONCURRENT_ANSWERS "
        f"{args.max_concurrent or 'default'}."
    )
    print("The doubles run in a child process: the CPU figures are the bot process's alone.\n")
    table = kit.Table()
    notes: list[str] = []

    def check_answers(phase: str, timelines: Sequence[Timeline], expected: str) -> None:
        """A row (and the texts) for messages that got something other than the answer."""
        others = Counter(t["text"] for t in timelines if t["text"] != expected)
        if others:
            table.zero(f"  {phase}: replies that were not the answer", sum(others.values()))
        for text, n in others.most_common(3):
            notes.append(f"{phase}: {n} x {text!r}" if text else f"{phase}: {n} x no reply")

    # 1. overhead latency
    latency = results["latency"]["timelines"]
    lat = spans(latency, "handed", "request")
    label = f"1 update handed out -> provider request, p50 ({len(lat)}/{len(latency)})"
    table.at_most(label, kit.pct(lat, 50), GOAL_LATENCY_MS, ".2f", " ms")
    table.add("  same, p95", f"{kit.pct(lat, 95):.2f} ms")
    table.add("    handed out -> empty draft arrives, p50", _p50(latency, "handed", "empty_draft"))
    table.add(
        "    empty draft arrives -> provider request, p50", _p50(latency, "empty_draft", "request")
    )
    per_answer = results["latency"]["cpu"] / len(latency) * 1e3
    table.add("  bot CPU per answer, one at a time", f"{per_answer:.2f} ms")
    check_answers("latency phase", latency, INSTANT_TEXT)

    # 2. first chunk -> first visible draft
    drafts = results["drafts"]
    dl = drafts["timelines"]
    first = spans(dl, "first_chunk", "text_draft")
    label = f"2 first chunk -> first visible draft, p50 ({len(first)}/{len(dl)})"
    table.add(label, f"{kit.pct(first, 50):.1f} ms", "(none given)")
    table.add("  same, p95", f"{kit.pct(first, 95):.1f} ms")
    table.add("    empty draft arrives -> first chunk, p50", _p50(dl, "empty_draft", "first_chunk"))
    table.add(
        "    empty draft arrives -> first text draft, p50", _p50(dl, "empty_draft", "text_draft")
    )
    label = f"  bot CPU per streamed answer ({len(STREAMED)} pieces)"
    table.at_most(
        label, drafts["cpu"] / max(len(dl), 1) * 1e3, BUDGET_CPU_MS, ".2f", " ms", " (DESIGN)"
    )
    check_answers("draft phase", dl, STREAMED_TEXT)

    # 3. throughput
    burst = results["burst"]
    bl = burst["timelines"]
    finals = max(sum(1 for t in bl if t["final"] is not None), 1)
    answered = [t for t in bl if t["final"] is not None and t["text"] == INSTANT_TEXT]
    start = min(t["handed"] for t in bl if t["handed"] is not None)
    window = max(max((t["final"] for t in answered), default=start) - start, 1e-9)
    rate = len(answered) / window
    label = f"3 throughput: {len(answered)}/{len(bl)} answered in {window:.2f} s"
    ok = rate >= GOAL_THROUGHPUT and len(answered) == len(bl)
    table.add(label, f"{rate:.0f} msg/s", f">= {GOAL_THROUGHPUT:g}/s", ok)
    check_answers("burst", bl, INSTANT_TEXT)
    cpu_ms = burst["cpu"] / finals * 1e3
    table.at_most("  bot CPU per final message", cpu_ms, 1e3 / GOAL_THROUGHPUT, ".2f", " ms")
    table.add("  bot capacity at one full core (1 / CPU)", f"{1e3 / cpu_ms:.0f} msg/s")
    busy = f"{burst['cpu'] / window:.0%} / {burst['child_cpu'] / window:.0%}"
    table.add("  CPU busy over the window: bot / doubles", busy)
    gcs = burst["gc"]
    pauses = f"{gcs['count']}, {gcs['total'] * 1e3:.0f} ms ({gcs['total'] / burst['cpu']:.0%})"
    pauses += f"; {gcs['full']}, {gcs['full_total'] * 1e3:.0f} ms"
    table.add("  bot GC pauses: all (share of bot CPU); full", pauses)
    table.add("    longest pause", f"{gcs['longest'] * 1e3:.1f} ms")
    ends = [_pct(bl, "handed", "final", q, ".0f") for q in (50, 95)]
    table.add("  handed out -> final message, p50 / p95", f"{ends[0]} / {ends[1]} ms")
    table.add("  redis-server CPU per message", f"{burst['redis_cpu'] / finals * 1e3:.3f} ms")
    table.add("  new Redis connections", f"{burst['redis_connections']:.0f}")
    if burst["failed_calls"]:
        table.zero("  Bot API calls that failed", burst["failed_calls"])
    calls = sorted(burst["methods"].items(), key=lambda item: -item[1])
    per = ", ".join(f"{name} {count / finals:.2f}" for name, count in calls)
    notes.append(f"Bot API calls per message in the burst: {per}.")

    # 4. Redis
    redis = results["redis"]
    messages = redis["messages"]
    trips = (redis["writes"] - redis["setup_writes"]) / messages
    sent, executed = redis["sent"], redis["executed"]
    table.at_most(f"4 Redis round trips per message ({messages})", trips, GOAL_ROUND_TRIPS, ".2f")
    setup = f"{redis['connections']}; {redis['setup_writes']} (not counted above)"
    table.add("  connections opened; their set-up round trips", setup)
    table.add("  commands sent per message", f"{_per(sent, messages):.2f}")
    table.add("  commands Redis ran per message (with Lua's)", f"{_per(executed, messages):.2f}")
    ran = f"{_per(burst['commands'], finals):.2f}"
    table.add("  burst: commands Redis ran per final message", ran)
    table.print()

    notes.append(f"Redis commands per message, one at a time ({messages} messages):")
    notes.append(f"  sent by the bot: {_breakdown(sent, messages)}")
    notes.append(f"  run by Redis:    {_breakdown(executed, messages)}")
    notes.append(f"  run in the burst: {_breakdown(burst['commands'], finals)}")
    if burst["child_cpu"] / window > 0.85:
        notes.append(
            "The doubles' process was busy most of the throughput window: the rate may be "
            "the doubles' limit; the bot's CPU per message is the steadier figure."
        )
    print("\n" + "\n".join(notes))
    if "profile" in results:
        print_profile(results["profile"])
    return table


def _per(commands: dict[str, int], messages: int) -> float:
    return sum(v for k, v in commands.items() if k not in kit.SETUP_COMMANDS) / messages


def _breakdown(commands: dict[str, int], messages: int) -> str:
    ordered = sorted(commands.items(), key=lambda item: (-item[1], item[0]))
    return ", ".join(f"{name} {count / messages:.2f}" for name, count in ordered) or "none"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--kind", default="openai", choices=sorted(kit.SPECS))
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
    args = kit.parse(parser, argv, QUICK)
    for name in ("messages", "redis_messages", "draft_users", "burst"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    with (
        kit.redis_server() as server,
        kit.children(kit.Child(serve_doubles, args.kind, name="doubles")) as (child,),
    ):
        results = asyncio.run(run(args, child, server.url))
    table = report(args, results)
    return kit.verdict(args, table.goals, table.checks)


if __name__ == "__main__":
    sys.exit(main())
