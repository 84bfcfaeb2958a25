"""Thousands of slow streams in one process: ``--users`` users each ask once, ``--rate``
a second (0: all at once), and the model streams 20 chunks a second apart (an answer
takes about 20 s, as real ones do), so that at 120 a second all 2,000 answers are in
flight at once before the first ends. The real app polls in this process (its CPU and
memory are what is measured); the fake Bot API and the model double run in a child
(bench.chat's). With ``--budget N`` the bot runs with TELEGRAM_CALLS_PER_SECOND=N.

"Answers a second, sustained" is how fast answers were completed, from the first final
message to the last: it keeps up with the arrivals only if no answer queues. Goals
without a budget: >= 100 answers/s sustained with every answer in flight at once, first
chunk -> visible text p50 <= 1 s, RSS <= 400 MB, CPU per answer <= 8 ms. With a budget:
never more Bot API calls in a second than the budget, every answer delivered whole
(intermediate updates are what slows)."""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import kit
from bench.chat import Driver, running_app

GOAL_RATE = 100.0  # answers a second
GOAL_VISIBLE_S = 1.0  # first chunk -> first visible text, p50
GOAL_RSS_MB = 400.0
GOAL_CPU_MS = 8.0  # per answer
CHUNKS = [f"word{i} " for i in range(20)]
ANSWER = "".join(CHUNKS).strip()


def busiest_second(times: list[float]) -> int:
    """The most of ``times`` in any one second."""
    times = sorted(times)
    most, start = 0, 0
    for end, moment in enumerate(times):
        while moment - times[start] >= 1.0:
            start += 1
        most = max(most, end - start + 1)
    return most


class Streams(Driver):
    """bench.chat's driver, plus the busiest second of Bot API calls as they arrived."""

    async def busiest_second(self, since: int) -> int:
        calls = self.tg.api_calls[since:]
        return busiest_second([c.time for c in calls if c.method != "getUpdates"])


async def serve(kind: str) -> Streams:
    """The child's object: bench.chat's doubles, driven by ``Streams``."""
    spec = kit.SPECS[kind]
    driver = Streams(kit.FinalsTelegram(), spec.double_class()(key=spec.key))
    await driver.start()
    return driver


def most_in_flight(timelines: list[dict[str, Any]]) -> int:
    """The most answers under way at once: handed out to the bot, final not yet sent."""
    events = sorted(
        [(t["handed"], 1) for t in timelines if t["handed"] is not None]
        + [(t["final"], -1) for t in timelines if t["final"] is not None]
    )
    most = now = 0
    for _, step in events:
        now += step
        most = max(most, now)
    return most


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def run(args: argparse.Namespace, child: kit.Child, redis_url: str) -> dict[str, Any]:
    spec = kit.SPECS["openai"]
    tmp = Path(tempfile.mkdtemp(prefix="bench-streams-"))
    catalog = kit.write_catalog(
        tmp / "models.toml",
        {"model": "bench"},
        {
            "bench": {
                "kind": spec.kind,
                "base_url": child.info["llm"] + spec.prefix,
                "api_key_env": "BENCH_API_KEY",
                "timeout": 120,
            }
        },
        [{"id": "bench", "title": "Bench", "provider": "bench", "name": spec.model}],
    )
    overrides: dict[str, Any] = {"max_concurrent_answers": args.users + 100}
    if args.budget:
        overrides["telegram_calls_per_second"] = args.budget
    await child.acall("reply", chunks=CHUNKS, chunk_delay=args.chunk_delay)
    leaving: list[float] = []

    async def note_leaving(make_request: Any, bot: Any, method: Any) -> Any:
        """Registered last, so innermost: when each call (getUpdates aside) leaves the
        bot, past its budget. The fake Bot API stamps a call when its own event loop gets
        to it, which under load may be late and bunched, whatever its spacing when sent."""
        if type(method).__name__ != "GetUpdates":
            leaving.append(time.monotonic())
        return await make_request(bot, method)

    async with running_app(child, redis_url, catalog, spec.key, **overrides) as app:
        app.bot.session.middleware(note_leaving)
        prompts = [(100_000 + i, f"question {i}") for i in range(args.users)]
        mark = await child.acall("mark")
        cpu, started = time.process_time(), time.monotonic()
        result = await child.acall(
            "together",
            prompts=prompts,
            interval=1 / args.rate if args.rate else 0.0,
            seconds=args.chunk_delay * 20 + 120,
        )
        elapsed = time.monotonic() - started
        cpu = time.process_time() - cpu
        busiest = await child.acall("busiest_second", since=mark)
    timelines = result["timelines"]
    visible = [
        t["text_draft"] - t["first_chunk"]
        for t in timelines
        if t["text_draft"] is not None and t["first_chunk"] is not None
    ]
    finals = sorted(t["final"] for t in timelines if t["final"] is not None)
    return {
        "answered": sum(1 for t in timelines if t["text"] == ANSWER),
        "finals": finals[-1] - finals[0] if len(finals) > 1 else 0.0,
        "in_flight": most_in_flight(timelines),
        "methods": result["methods"],
        "elapsed": elapsed,
        "cpu": cpu,
        "visible": visible,
        "calls": sum(result["methods"].values()),
        "busiest": busiest,
        "busiest_leaving": busiest_second(leaving),
        "rss": rss_mb(),
        "failed_calls": result["failed_calls"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    kit.options(
        parser,
        users=(2000, "users asking at once"),
        rate=(120.0, "users asking a second (0: all at once)"),
        chunk_delay=(1.0, "seconds between the model's chunks"),
        budget=(0.0, "TELEGRAM_CALLS_PER_SECOND (0: none)"),
    )
    args = kit.parse(parser, argv, {"users": 40, "rate": 200.0, "chunk_delay": 0.1})
    with (
        kit.redis_server() as server,
        kit.children(kit.Child(serve, "openai", name="doubles")) as (child,),
    ):
        r = asyncio.run(run(args, child, server.url))
    budget = f", budget {args.budget:g} calls/s" if args.budget else ""
    pace = f"{args.rate:g} a second" if args.rate else "all at once"
    print(
        f"bench.streams: {args.users} users asking {pace}, 20 chunks "
        f"{args.chunk_delay:g} s apart{budget}; {kit.machine()}\n"
    )
    table = kit.Table()
    # from the first final message to the last; all at once: over the whole run
    span = r["finals"] if args.rate else r["elapsed"]
    rate = (r["answered"] - 1) / span if args.rate and span > 0 else r["answered"] / r["elapsed"]
    table.add(
        "answered whole",
        f"{r['answered']}/{args.users}",
        "all",
        r["answered"] == args.users,
        check=True,
    )
    table.zero("failed Bot API calls", r["failed_calls"])
    if args.budget:
        table.at_most(
            "Bot API calls in the busiest second, leaving the bot",
            r["busiest_leaving"],
            args.budget,
            ".0f",
        )
        table.add("  the same, arriving at the fake Bot API", str(r["busiest"]))
    else:
        table.add(
            "answers a second, sustained", f"{rate:.1f}", f">= {GOAL_RATE:g}", rate >= GOAL_RATE
        )
        table.add(
            "answers in flight at once, most",
            str(r["in_flight"]),
            f"{args.users} (all)",
            r["in_flight"] >= args.users,
        )
        table.at_most(
            "first chunk -> visible, p50", kit.pct(r["visible"], 50), GOAL_VISIBLE_S, ".2f", " s"
        )
        table.add("Bot API calls in the busiest second", str(r["busiest"]))
    table.add("first chunk -> visible, p95", f"{kit.pct(r['visible'], 95):.2f} s")
    table.add("Bot API calls a second, mean", f"{r['calls'] / r['elapsed']:.1f}")
    table.add("Bot API calls per answer", f"{r['calls'] / max(1, args.users):.1f}")
    for method, count in sorted(r["methods"].items(), key=lambda item: -item[1]):
        table.add(f"    {method}", f"{count / max(1, args.users):.2f}")
    table.at_most("RSS (peak)", r["rss"], GOAL_RSS_MB, ".0f", " MB")
    table.at_most(
        "CPU per answer", r["cpu"] * 1000 / max(1, r["answered"]), GOAL_CPU_MS, ".2f", " ms"
    )
    table.add("wall time", f"{r['elapsed']:.1f} s")
    table.print()
    return kit.verdict(args, table.goals, table.checks)


if __name__ == "__main__":
    sys.exit(main())
