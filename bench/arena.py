"""/arena end to end: a battle's wall time (from the question to the vote buttons) minus
its slower model's, and a vote's time to the reveal. The real app
(``tests.harness.running_bot``) against the fake Bot API and the model doubles in this
process, a throwaway redis-server; the four catalog models answer after 0.3 to 1.2 s.
Goal: a battle takes at most its slower model + 50 ms, like /compare."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import kit
from bot.texts import EN
from tests.doubles.base import Reply
from tests.doubles.telegram import Call
from tests.harness import running_bot

DELAYS = {"gpt-test": 0.3, "mistral-test": 0.6, "Llama-Test": 0.9, "llama3.2": 1.2}
GOAL_OVERHEAD_MS = 50.0


def _edits(message_id: int) -> Callable[[Call], bool]:
    return lambda call: str(call.params.get("message_id")) == str(message_id)


def _votable_after(message_id: int) -> Callable[[dict[str, Any]], bool]:
    """A later message with the vote buttons under it."""
    return lambda m: (
        m["message_id"] > message_id and EN.arena_a_better in str(m.get("reply_markup", ""))
    )


async def measure(battles: int) -> tuple[list[float], list[float], int]:
    """Overheads (ms) of each battle over its slower model, times (ms) from a vote to
    both reveals, and the battles whose vote was not counted (a check)."""
    overheads: list[float] = []
    reveals: list[float] = []
    wrong = 0
    with kit.redis_server() as server, tempfile.TemporaryDirectory() as tmp:
        async with running_bot(server.url, Path(tmp)) as h:
            doubles = (h.openai, h.mistral, h.llama, h.ollama)
            for double in doubles:
                for name, delay in DELAYS.items():
                    double.replies[name] = Reply(text=f"answer after {delay} s", first_delay=delay)
            ann = h.tg.user(first_name="Ann")
            for i in range(battles):
                before = [len(d.requests) for d in doubles]
                started = time.perf_counter()
                sent = await ann.send(f"/arena question {i}")
                second = await ann.wait_message(_votable_after(sent["message_id"]), timeout=30)
                took = time.perf_counter() - started
                asked = [
                    r.json["model"]
                    for d, n in zip(doubles, before, strict=True)
                    for r in d.requests[n:]
                    if r.method == "POST"
                ]
                slower = max(DELAYS[m] for m in asked)
                overheads.append((took - slower) * 1000)
                voted, mark = time.perf_counter(), h.tg.mark()
                query = await ann.click(EN.arena_tie, message_id=second["message_id"])
                answer = await h.tg.wait_callback_answer(query["id"])
                first_id = ann.bot_messages()[-2]["message_id"]
                for revealed in (first_id, second["message_id"]):  # both first messages
                    await h.tg.wait_for("editMessageText", _edits(revealed), since=mark)
                reveals.append((time.perf_counter() - voted) * 1000)
                wrong += answer.params.get("text") != EN.arena_counted
    return overheads, reveals, wrong


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    kit.options(parser, battles=(12, "battles to run"))
    args = kit.parse(parser, argv, quick={"battles": 3})
    logging.basicConfig(level=logging.WARNING)
    overheads, reveals, wrong = asyncio.run(measure(args.battles))
    print(f"bench.arena: {args.battles} battles; {kit.machine()}\n")
    table = kit.Table()
    table.at_most(
        "battle wall time - slower model, median",
        kit.pct(overheads, 50),
        GOAL_OVERHEAD_MS,
        ".1f",
        " ms",
    )
    table.add("battle wall time - slower model, max", f"{max(overheads):.1f} ms")
    table.add("vote -> both answers revealed, median", f"{kit.pct(reveals, 50):.1f} ms")
    table.zero("votes not counted", wrong)
    table.print()
    return kit.verdict(args, table.goals, table.checks)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
