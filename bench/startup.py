"""Start-up: how long importing aiogram takes (what any aiogram bot pays), how much more
importing the bot takes, and the time from process start to the first ``getUpdates`` of
``python -m bot`` against the fake Bot API (a one-model Ollama catalog, a throwaway
redis-server). Goal: the bot's own start-up beyond importing aiogram <= 0.3 s."""

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


async def first_poll_seconds(runs: int) -> list[float]:
    """From spawning ``python -m bot`` to its first getUpdates, ``runs`` times."""
    times = []
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
                mark = tg.mark()
                started = time.perf_counter()
                process = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "bot",
                    env=env,
                    cwd=tmp,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.DEVNULL,
                )
                try:
                    await tg.wait_for("getUpdates", since=mark, timeout=60)
                    times.append(time.perf_counter() - started)
                finally:
                    process.terminate()
                    await process.wait()
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    kit.options(parser, runs=(5, "fresh interpreters per figure"))
    args = kit.parse(parser, argv, quick={"runs": 1})
    aiogram = [import_seconds("aiogram.types, aiogram.methods") for _ in range(args.runs)]
    bot = [import_seconds("bot.app") for _ in range(args.runs)]
    polls = asyncio.run(first_poll_seconds(args.runs))
    print(f"bench.startup: {args.runs} run(s) each; {kit.machine()}\n")
    table = kit.Table()
    median_aiogram, median_bot = statistics.median(aiogram), statistics.median(bot)
    table.add("import aiogram (types, methods), median", f"{median_aiogram:.2f} s")
    table.add("import bot.app, median", f"{median_bot:.2f} s")
    table.add("start -> first getUpdates, median", f"{statistics.median(polls):.2f} s")
    own = statistics.median(polls) - median_aiogram
    table.at_most("bot's own start-up beyond aiogram", own, GOAL_OWN_S, ".2f", " s")
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
