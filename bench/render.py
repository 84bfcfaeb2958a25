"""What rendering an answer costs, rich messages against text: the CPU of one streamed
answer (every preview a writer renders while it grows, then the final messages) through
the same layouts the answer writer uses, and for a 30,000-character answer with tables
and formulas the parse + render time and the Telegram calls it takes. No servers: the
layouts alone, so the figures are the renderers'. See bench/README.md."""

from __future__ import annotations

import argparse
import asyncio
import math
import statistics
import time

from bench import kit
from bot.services.layouts import Layout, RichLayout, TextLayout
from bot.services.pacer import DRAFT_INTERVAL

BUDGET_MS = 20.0  # DESIGN: CPU per streamed answer
LONG_MS = 100.0  # parse + render of the long answer
STEP = 120  # characters a preview is behind the next one (a chunk or a few)
MODEL_SPEED = 400  # characters a second a fast model writes (about 100 tokens)


def typical(paragraphs: int = 6) -> str:
    """A chat answer of a few thousand characters: a heading, prose, a list, code."""
    prose = (
        "Here is what **matters** most: the `cache` key, the [docs](https://example.org), "
        "and the cost, about $5 a month; the error falls as $O(1/n)$. "
    )
    body = [f"## Answer\n\n{prose * 3}\n"]
    for i in range(paragraphs):
        body.append(f"{i + 1}. {prose}\n   - detail *{i}*\n")
    body.append("\n```python\ndef cost(n: int) -> float:\n    return 5 / n\n```\n")
    return "\n".join(body)


def long_answer(chars: int = 30_000, tables: int = 10, formulas: int = 40) -> str:
    """A long answer with ``tables`` tables and ``formulas`` display formulas."""
    sections = []
    for i in range(tables):
        rows = "".join(f"| item {i}.{r} | ${r}n^2$ | `x|y` {r} | **{r * 3}** |\n" for r in range(8))
        sections.append(
            f"### Table {i}\n\n| Name | Cost | Code | Total |\n|---|:-:|---|--:|\n{rows}"
        )
    for i in range(formulas):
        sections.append(f"$$\\frac{{a_{i} + b}}{{\\sqrt{{c^{i}}}}} = \\sum_{{k=0}}^{{{i}}} k$$")
    text = "\n\n".join(sections)
    filler = "A sentence of plain prose that explains the figures above in some detail. "
    paragraph = filler * 8
    parts = [text]
    while sum(map(len, parts)) < chars:
        parts.append(paragraph)
    return "\n\n".join(parts)[:chars]


async def streamed(layout: Layout, answer: str, draft: bool) -> tuple[float, int, int]:
    """CPU seconds to render every preview of ``answer`` and its final messages; the
    previews and the final messages."""
    start = time.process_time()
    previews = 0
    base = 0
    for end in range(STEP, len(answer) + STEP, STEP):
        preview = await layout.preview(answer[base:end], "", base == 0, draft, "Thinking…")
        previews += 1
        if preview.end is not None:  # a finished message goes out; the rest streams on
            base += preview.end
    final = await layout.final(answer[base:], "", base == 0, "", "1.2 s · 340 tokens")
    return time.process_time() - start, previews, len(final)


async def once(layout: Layout, answer: str) -> tuple[float, int]:
    start = time.process_time()
    parts = await layout.final(answer, "", True, "", None)
    return time.process_time() - start, len(parts)


async def main(args: argparse.Namespace) -> int:
    table = kit.Table()
    print(kit.machine())
    answer = typical(args.paragraphs)
    figures: dict[str, list[float]] = {"rich": [], "text": []}
    counts: dict[str, tuple[int, int]] = {}
    for _ in range(args.rounds):
        for name, make in (("rich", RichLayout), ("text", TextLayout)):
            cpu, previews, finals = await streamed(make(), answer, draft=True)
            figures[name].append(cpu * 1000)
            counts[name] = (previews, finals)
    for name in ("rich", "text"):
        median = statistics.median(figures[name])
        label = f"CPU per streamed answer, {name} ({len(answer)} chars, {counts[name][0]} previews)"
        if name == "rich":
            table.at_most(label, median, BUDGET_MS, ".2f", " ms")
        else:
            table.add(label, f"{median:.2f} ms")
    long = long_answer(args.long_chars)
    for name, make in (("rich", RichLayout), ("text", TextLayout)):
        runs = [await once(make(), long) for _ in range(args.rounds)]
        cpu = statistics.median(r[0] for r in runs) * 1000
        label = f"long answer ({len(long)} chars), {name}: parse + render"
        if name == "rich":
            table.at_most(label, cpu, LONG_MS, ".1f", " ms")
        else:
            table.add(label, f"{cpu:.1f} ms")
        cpu_stream, previews, finals = await streamed(make(), long, draft=True)
        table.add(f"long answer, {name}: final messages", str(runs[0][1]))
        table.add(f"long answer, {name}: CPU streamed ({previews} previews)",
                  f"{cpu_stream * 1000:.0f} ms")  # fmt: skip
        finals = runs[0][1]
        # streamed at MODEL_SPEED, a draft per DRAFT_INTERVAL, then the messages
        drafts = math.ceil(len(long) / MODEL_SPEED / DRAFT_INTERVAL)
        table.add(f"long answer, {name}: Telegram calls", f"{drafts} drafts + {finals} messages")
    table.print()
    return kit.verdict(args, table.goals, table.checks)


def cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    kit.options(
        parser,
        rounds=(20, "repetitions of each measurement (medians are reported)"),
        paragraphs=(6, "list items of the typical answer"),
        long_chars=(30_000, "characters of the long answer"),
    )
    args = kit.parse(parser, argv, {"rounds": 2, "long_chars": 6_000})
    return asyncio.run(main(args))


if __name__ == "__main__":
    raise SystemExit(cli())
