"""Start-up: how long importing aiogram takes (what any aiogram bot pays), how much more
importing the bot takes, and the time from process start to the first ``getUpdates`` of
``python -m bot`` against the fake Bot API (a one-model Ollama catalog, a throwaway
redis-server): when that request reached the Bot API, not when its long poll was answered.
Each run measures the three in turn (fresh interpreters), so that the bot's own start-up
(the start less aiogram's import) is taken from figures of the same moment. Goal: the bot's
own start-up beyond importing aiogram <= 0.3 s."""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import kit
from tests.doubles.ollama_api import OllamaDouble
from tests.doubles.telegram import TelegramDouble

GOAL_OWN_S = 0.3
CATALOG = """\
[defaults]
model = "local"

[providers.local]
kind = "ollama"
base_url = "{url}"

[[models]]
id = "local"
title = "Local"
provider = "local"
name = "llama3.2"
"""


def import_seconds(modules: str) -> float:
    """Seconds to import ``modules`` in a fresh interpreter (its own clock)."""
    code = f"import time; t = time.perf_counter(); import {modules}; print(time.perf_counter() - t)"
    out = subprocess.run(  # noqa: S603 - this interpreter, a fixed snippet
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=kit.ROOT
    )
    return float(out.stdout.strip())


async def start_seconds(runs: int) -> list[tuple[float, float, float | None]]:
    """``runs`` times: importing aiogram, importing bot.app, and from spawning
    ``python -m bot`` to the arrival of its first getUpdates (None: it never came)."""
    found: list[tuple[float, float, float | None]] = []
    with kit.redis_server() as redis, tempfile.TemporaryDirectory() as tmp:
        async with TelegramDouble() as tg, OllamaDouble() as ollama:
            catalog = Path(tmp) / "models.toml"
            catalog.write_text(CATALOG.format(url=ollama.url))
            env = {
                **os.environ,
                "BOT_TOKEN": tg.token,
                "TELEGRAM_API_URL": tg.url,
                "REDIS_URL": redis.url,
                "MODELS_FILE": str(catalog),
                "LOG_LEVEL": "WARNING",
                "PYTHONPATH": kit.ROOT,
            }
            for _ in range(runs):
                aiogram = await asyncio.to_thread(import_seconds, "aiogram.types, aiogram.methods")
                bot = await asyncio.to_thread(import_seconds, "bot.app")
                found.append((aiogram, bot, await first_poll(tg, env, tmp)))
    return found


async def first_poll(tg: TelegramDouble, env: dict[str, str], cwd: str) -> float | None:
    """Seconds from spawning ``python -m bot`` to its first getUpdates reaching ``tg``.
    The double logs a call when it answers it, and a long poll is answered only when it
    ends: the time is the call's arrival; a poll of an earlier run's process (answered
    after it was stopped) arrived before this one started."""
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        env=env,
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        call = await tg.wait_for("getUpdates", lambda c: c.time >= started, timeout=60)
    except TimeoutError:
        return None
    finally:
        process.terminate()
        await process.wait()
    return call.time - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    kit.options(parser, runs=(5, "runs (fresh interpreters for each figure)"))
    args = kit.parse(parser, argv, quick={"runs": 1})
    runs = asyncio.run(start_seconds(args.runs))
    polls = [(aiogram, poll) for aiogram, _, poll in runs if poll is not None]
    print(f"bench.startup: {args.runs} run(s); {kit.machine()}\n")
    table = kit.Table()
    median_aiogram = statistics.median(aiogram for aiogram, _, _ in runs)
    median_bot = statistics.median(bot for _, bot, _ in runs)
    table.add("import aiogram (types, methods), median", f"{median_aiogram:.2f} s")
    table.add("import bot.app, median", f"{median_bot:.2f} s")
    if polls:
        median_poll = statistics.median(poll for _, poll in polls)
        table.add("start -> first getUpdates, median", f"{median_poll:.2f} s")
        # each run's start less the aiogram import measured just before it
        own = statistics.median(poll - aiogram for aiogram, poll in polls)
        table.at_most("bot's own start-up beyond aiogram, median", own, GOAL_OWN_S, ".2f", " s")
    table.add(
        "first getUpdates reached",
        f"{len(polls)}/{args.runs}",
        "all",
        len(polls) == args.runs,
        check=True,
    )
    table.print()
    return kit.verdict(args, table.goals, table.checks)


if __name__ == "__main__":
    sys.exit(main())
