"""Start-up: how long importing aiogram takes (what any aiogram bot pays), how much more
importing the bot takes, and the time from process start to the first ``getUpdates`` of
``python -m bot`` against the fake Bot API (a one-model Ollama catalog, a throwaway
redis-server): when that request reached the Bot API, not when its long poll was answered.
``--openai`` adds a provider of the openai kind (its SDK is the costliest adapter to
import), as the shipped catalog has.

The bot's own start-up is measured in one process, so that the machine's speed of the
moment (on a shared machine, imports in two interpreters a second apart differ by tenths
of a second) cancels out: the bot is started by a snippet that imports aiogram first,
timing it, then runs ``python -m bot``'s main; its own start-up is the time to its first
getUpdates less that import. (``python -m bot`` itself imports aiogram with the collector
off, which makes the import cheaper there than in the snippet or in a plain interpreter:
both imports are shown.) Every figure in wall and in CPU time. Goal: the bot's own
start-up beyond importing aiogram <= 0.3 s."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import kit
from tests.doubles.ollama_api import OllamaDouble
from tests.doubles.openai_api import OpenAIDouble
from tests.doubles.telegram import TelegramDouble

GOAL_OWN_S = 0.3
STOP_TIMEOUT = 30.0  # seconds a bot gets to exit after SIGTERM (it has no answers to finish)
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
OPENAI = """
[providers.cloud]
kind = "openai"
base_url = "{url}/v1"
api_key_env = "OPENAI_API_KEY"

[[models]]
id = "cloud"
title = "Cloud"
provider = "cloud"
name = "gpt-5-mini"
"""


Seconds = tuple[float, float]  # wall time, CPU time


def import_seconds(modules: str, *, collector: bool = True) -> Seconds:
    """Seconds to import ``modules`` in a fresh interpreter (its own clocks), with the
    garbage collector on (the default) or off."""
    code = (
        ("" if collector else "import gc; gc.disable(); ")
        + "import time; t, c = time.perf_counter(), time.process_time(); "
        f"import {modules}; "
        "print(time.perf_counter() - t, time.process_time() - c)"
    )
    out = subprocess.run(  # noqa: S603 - this interpreter, a fixed snippet
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=kit.ROOT
    )
    wall, cpu = out.stdout.split()
    return float(wall), float(cpu)


def cpu_seconds(pid: int) -> float:
    """The CPU time (user and system) process ``pid`` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


AIOGRAM = "aiogram.types, aiogram.methods"
# ``python -m bot`` after importing aiogram (timed, written to the file named by argv[1])
AIOGRAM_FIRST = (
    "import sys, time; t, c = time.perf_counter(), time.process_time(); "
    f"import {AIOGRAM}; "
    "open(sys.argv[1], 'w').write(f'{time.perf_counter() - t} {time.process_time() - c}'); "
    "import runpy; sys.argv = sys.argv[:1]; "
    "runpy.run_module('bot', run_name='__main__', alter_sys=True)"
)


async def start_seconds(
    runs: int, with_openai: bool
) -> tuple[list[dict[str, Seconds | None]], int]:
    """``runs`` times: importing aiogram (collector on, then off), importing bot.app, from
    spawning ``python -m bot`` to the arrival of its first getUpdates ("start"; None: it
    never came), and the same with aiogram imported first ("aiogram first", its import
    "aiogram, in the bot"); and how many of the bots did not exit after SIGTERM."""
    found: list[dict[str, Seconds | None]] = []
    hung = 0
    with kit.redis_server() as redis, tempfile.TemporaryDirectory() as tmp:
        # polls answered at once: logged (and the bot's CPU read) as they arrive
        async with (
            TelegramDouble(max_poll_wait=0) as tg,
            OllamaDouble() as ollama,
            OpenAIDouble() as openai,
        ):
            catalog = Path(tmp) / "models.toml"
            extra = OPENAI.format(url=openai.url) if with_openai else ""
            catalog.write_text(CATALOG.format(url=ollama.url) + extra)
            env = {
                **os.environ,
                "BOT_TOKEN": tg.token,
                "TELEGRAM_API_URL": tg.url,
                "REDIS_URL": redis.url,
                "MODELS_FILE": str(catalog),
                "LOG_LEVEL": "WARNING",
                "PYTHONPATH": kit.ROOT,
                "OPENAI_API_KEY": openai.key or "",
            }
            for _ in range(runs):
                run: dict[str, Seconds | None] = {}
                run["aiogram"] = await asyncio.to_thread(import_seconds, AIOGRAM)
                run["aiogram, collector off"] = await asyncio.to_thread(
                    import_seconds, AIOGRAM, collector=False
                )
                run["bot.app"] = await asyncio.to_thread(import_seconds, "bot.app")
                run["start"], stopped = await first_poll(tg, env, tmp, "-m", "bot")
                hung += not stopped
                report = Path(tmp) / "aiogram.txt"
                report.unlink(missing_ok=True)
                run["aiogram first"], stopped = await first_poll(
                    tg, env, tmp, "-c", AIOGRAM_FIRST, str(report)
                )
                hung += not stopped
                wall, cpu = report.read_text().split() if report.exists() else ("nan", "nan")
                run["aiogram, in the bot"] = float(wall), float(cpu)
                found.append(run)
    return found, hung


async def first_poll(
    tg: TelegramDouble, env: dict[str, str], cwd: str, *args: str
) -> tuple[Seconds | None, bool]:
    """From spawning ``python *args`` to its first getUpdates reaching ``tg``: the wall
    time, and the CPU time the bot had used when the call was seen (its start, and the
    few milliseconds of answering it); and whether the bot then exited on SIGTERM (it is
    killed after ``STOP_TIMEOUT``). The double logs a call when it answers it: the time
    is the call's arrival; a poll of an earlier run's process (answered after it was
    stopped) arrived before this one started."""
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
        env=env,
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    seconds: Seconds | None = None
    try:
        call = await tg.wait_for("getUpdates", lambda c: c.time >= started, timeout=60)
        seconds = call.time - started, cpu_seconds(process.pid)
    except TimeoutError:
        pass
    finally:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
        except TimeoutError:
            process.kill()
            await process.wait()
    return seconds, process.returncode != -signal.SIGKILL


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    kit.options(
        parser,
        runs=(5, "runs (fresh interpreters for each figure)"),
        openai=(False, "a provider of the openai kind in the catalog too"),
    )
    args = kit.parse(parser, argv, quick={"runs": 1})
    runs, hung = asyncio.run(start_seconds(args.runs, args.openai))
    catalog = "Ollama and openai kinds" if args.openai else "one Ollama model"
    print(f"bench.startup: {args.runs} run(s), {catalog}; {kit.machine()}\n")
    table = kit.Table()

    def medians(values: list[Seconds]) -> Seconds:
        return statistics.median(w for w, _ in values), statistics.median(c for _, c in values)

    def figure(name: str) -> list[Seconds]:
        return [value for run in runs if (value := run[name]) is not None]

    def beyond(start: str, name: str) -> list[Seconds]:
        """Each run's ``start`` less its import of aiogram ``name``."""
        pairs = [(run[start], run[name]) for run in runs]
        return [(s[0] - a[0], s[1] - a[1]) for s, a in pairs if s is not None and a is not None]

    def shown(values: list[Seconds]) -> str:
        wall, cpu = medians(values)
        return f"{wall:.2f} s (CPU {cpu:.2f} s)"

    table.add("import aiogram (types, methods), median", shown(figure("aiogram")))
    table.add(
        "  the same, collector off (as python -m bot), median",
        shown(figure("aiogram, collector off")),
    )
    table.add("import bot.app, median", shown(figure("bot.app")))
    polls, firsts = figure("start"), figure("aiogram first")
    if polls:
        table.add("start -> first getUpdates (python -m bot), median", shown(polls))
        table.add(
            "  less aiogram imported apart (collector off), median",
            shown(beyond("start", "aiogram, collector off")),
        )
    own = beyond("aiogram first", "aiogram, in the bot")
    if own:
        table.add("start with aiogram imported first, median", shown(firsts))
        table.add("  its import of aiogram, median", shown(figure("aiogram, in the bot")))
        wall, cpu = medians(own)
        table.at_most("bot's own start-up beyond aiogram, median", wall, GOAL_OWN_S, ".2f", " s")
        table.add("  the same in CPU time, median", f"{cpu:.2f} s")
    reached = len(polls) + len(firsts)
    table.add(
        "first getUpdates reached",
        f"{reached}/{2 * args.runs}",
        "all",
        reached == 2 * args.runs,
        check=True,
    )
    table.zero(f"bots still running {STOP_TIMEOUT:g} s after SIGTERM", hung)
    table.print()
    return kit.verdict(args, table.goals, table.checks)


if __name__ == "__main__":
    sys.exit(main())
