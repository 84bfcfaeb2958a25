"""/compare end to end: what it adds over its slowest model, and what it asks of Telegram.
The real app (``tests.harness.running_bot``) against the fake Bot API, the model API
doubles and a throwaway redis-server, all in this process and event loop; the catalog's
compare set (gpt, mistral, llama) answers in 0.5, 1.0 and 1.5 s, whole or streamed. See
bench/README.md for the variants and the figures."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import logging
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import kit
from bot.keyboards import ContinueWith
from bot.services.pacer import EDIT_INTERVAL
from providers.base import ChatRequest, Provider
from tests.doubles.base import LLMDouble, Reply
from tests.doubles.telegram import Call, TelegramDouble
from tests.harness import Harness, running_bot

MODELS = ("gpt", "mistral", "llama")  # the catalog's default compare set, in its order
GOAL_OVERHEAD_MS = 50.0  # wall time minus the slowest model's latency, every compare
GOAL_SPREAD_MS = 5.0  # first to last of the bot's Provider.stream calls
GAP_TOLERANCE = 0.02  # s: request arrival jitter allowed under EDIT_INTERVAL
SETTLE = 0.05  # s after a compare's last final message, before the next compare
METHODS = ("sendMessage", "editMessageText", "sendChatAction", "sendMessageDraft")
METHODS_LATER = ("answerCallbackQuery",)
UPDATES = ("sendMessage", "editMessageText", "sendMessageDraft")  # what changes the chat
QUICK = {"rounds": 1, "long_rounds": 1, "rtt_rounds": 1, "scale": 0.5}


@dataclass(frozen=True)
class Variant:
    name: str
    tag: str  # unique per variant: it makes each compare's question unique
    latencies: tuple[float, ...]  # gpt, mistral, llama: request to end of answer
    first: float | None  # None: the whole answer at the end; else: first piece after this
    rounds: int
    rtt: float = 0.0  # simulated Bot API round trip (s)

    def reply(self, latency: float, tag: str) -> Reply:
        if self.first is None:  # 4 pieces, 10 ms apart, ending at the latency
            pieces, delay = 4, 0.01
            first = latency - (pieces - 1) * delay
        else:  # the first piece at ``first``, then one every 50 ms until the latency
            delay = 0.05
            pieces = round((latency - self.first) / delay) + 1
            first = self.first
        text = " ".join(f"{tag}{i}" for i in range(pieces))
        return Reply(text=text, first_delay=first, chunk_delay=delay)

    def describe(self) -> str:
        lat = "/".join(f"{x:g}" for x in self.latencies)
        how = "whole" if self.first is None else f"first piece {self.first:g} s, then 50 ms"
        rtt = f", Bot API RTT {self.rtt * 1e3:.0f} ms" if self.rtt else ""
        return f"{self.name}: {lat} s ({how}{rtt}), {self.rounds} compares"


class Missing(Exception):
    """A compare did not end with every model's final answer."""


@dataclass
class Run:
    """One compare's timeline and calls."""

    sent: float
    handed: float
    called: dict[str, float]  # model -> the bot calling its provider's stream()
    starts: dict[str, float]  # model -> provider request arrival at its double
    starts_cpu: dict[str, float]  # model -> this process's CPU time then
    ends: dict[str, float]  # model -> end of its stream at the double
    finals: dict[str, float]  # model -> its final message visible at the fake Telegram
    calls: list[Call]
    cpu: float  # this process's CPU time from the send to the last final message
    methods: Counter[str] = field(default_factory=Counter)
    intermediate: list[float] = field(default_factory=list)
    edits: list[float] = field(default_factory=list)
    correct: bool = True
    failed: int = 0

    @property
    def first(self) -> float:
        """When the first provider request arrived."""
        return min(self.starts.values())

    def close_edits(self) -> float:
        """Edits that came less than EDIT_INTERVAL after the previous one."""
        return sum(1 for a, b in itertools.pairwise(self.edits) if b - a < EDIT_INTERVAL)


# -- instrumentation (instance attributes of this run's doubles only) -------------------------


def delay_bot_api(tg: TelegramDouble, rtt: list[float]) -> None:
    """Every Bot API method but getUpdates takes ``rtt[0]`` seconds: half before Telegram
    acts on it (the message changes then), half for the answer to travel back."""

    def slow(handler: Callable[[dict[str, Any]], Any]) -> Callable[[dict[str, Any]], Any]:
        async def call(params: dict[str, Any]) -> Any:
            if rtt[0] > 0:
                await asyncio.sleep(rtt[0] / 2)
            result = handler(params)
            if isinstance(result, Awaitable):
                result = await result
            if rtt[0] > 0:
                await asyncio.sleep(rtt[0] / 2)
            return result

        return call

    for name, handler in list(tg._handlers.items()):
        if name != "getUpdates":
            tg._handlers[name] = slow(handler)


def note_stream_ends(double: Any) -> dict[str, float]:
    """When the double finished each streamed answer (after ``write_eof``), by prompt."""
    ends: dict[str, float] = {}
    original = double._stream

    async def stream(request: Any, *args: Any, **kwargs: Any) -> Any:
        response = await original(request, *args, **kwargs)
        ends[prompt_of(await request.read())] = time.monotonic()
        return response

    double._stream = stream
    return ends


def final_of(markup: Any) -> str | None:
    """The model whose final answer carries this keyboard ("Continue with"), else None
    (no keyboard, or a streaming one such as Stop)."""
    rows = (markup or {}).get("inline_keyboard", []) if isinstance(markup, dict) else []
    for button in (button for row in rows for button in row):
        data = str(button.get("callback_data", ""))
        if data.startswith(ContinueWith.__prefix__ + ":"):
            return ContinueWith.unpack(data).id
    return None


class NotingList(list[Any]):
    """A double's request log that also notes this process's CPU time at each arrival
    (to tell a busy process from one the OS did not run)."""

    def __init__(self, items: list[Any]) -> None:
        super().__init__(items)
        self.cpu: dict[int, float] = {}  # id(recorded) -> time.process_time()

    def append(self, item: Any) -> None:
        self.cpu[id(item)] = time.process_time()
        super().append(item)


@contextlib.contextmanager
def note_stream_calls(h: Harness) -> Iterator[dict[str, dict[str, float]]]:
    """When the bot called each compared model's ``Provider.stream``, by prompt and model."""
    called: dict[str, dict[str, float]] = {}
    by_provider = {h.catalog.models[m].provider: m for m in MODELS}
    original = Provider.stream

    def stream(self: Provider, request: ChatRequest) -> Any:
        model = by_provider.get(self.name)
        if model is not None:
            prompt = request.messages[-1].content
            called.setdefault(prompt, {}).setdefault(model, time.monotonic())
        return original(self, request)

    Provider.stream = stream  # type: ignore[method-assign]
    try:
        yield called
    finally:
        Provider.stream = original  # type: ignore[method-assign]


def prompt_of(body: bytes) -> str:
    """The last user message of a chat request body."""
    return kit.last_user_text(json.loads(body)) or ""


# -- one compare ---------------------------------------------------------------------------


class Bench:
    def __init__(self, h: Harness, called: dict[str, dict[str, float]]) -> None:
        self.h = h
        self.handed = kit.note_handouts(h.tg)
        self.rtt = [0.0]
        delay_bot_api(h.tg, self.rtt)
        self.doubles: dict[str, LLMDouble] = {m: h.llm(m) for m in MODELS}
        self.requests = {m: NotingList(d.requests) for m, d in self.doubles.items()}
        for model, double in self.doubles.items():
            double.requests = self.requests[model]
        self.ends = {m: note_stream_ends(d) for m, d in self.doubles.items()}
        self.called = called
        self.titles = {m: h.catalog.models[m].title for m in MODELS}
        self.names = {m: h.catalog.models[m].name for m in MODELS}
        self.users = 0

    def script(self, variant: Variant, tag: str) -> dict[str, str]:
        """Set each model's reply; the answer text each final message must hold."""
        texts = {}
        for model, latency in zip(MODELS, variant.latencies, strict=True):
            reply = variant.reply(latency, f"{model}{tag}w")
            self.doubles[model].replies[self.names[model]] = reply
            texts[model] = reply.text or ""
        return texts

    async def compare(self, variant: Variant, index: int) -> Run:
        tg = self.h.tg
        self.rtt[0] = variant.rtt
        tag = f"{variant.tag}{index}"
        expected = self.script(variant, tag)
        self.users += 1
        user = tg.user(first_name=f"Bench{self.users}")
        question = f"which is best, round {tag}?"
        text = f"/compare {question}"
        cpu = time.process_time()
        sent = time.monotonic()
        await user.send(text)

        def finished(model: str) -> Callable[[dict[str, Any]], bool]:
            return lambda message: final_of(message.get("reply_markup")) == model

        seen = {}
        for model in MODELS:
            try:
                seen[model] = await tg.wait_message(user.id, finished(model), timeout=15)
            except TimeoutError:
                raise Missing(f"{variant.name} #{index}: no final answer of {model}") from None
        cpu = time.process_time() - cpu
        await asyncio.sleep(SETTLE + variant.rtt)
        for _ in range(100):  # the doubles note a stream's end after its last byte
            if all(question in self.ends[m] for m in MODELS):
                break
            await asyncio.sleep(0.01)
        calls = tg.calls(chat_id=user.id)
        finals: dict[str, float] = {}
        for call in calls:
            owner = final_of(call.params.get("reply_markup")) if call.ok else None
            if owner is not None:
                # visible when the fake Telegram acted on it: half the RTT after arrival
                finals.setdefault(owner, call.time + variant.rtt / 2)
        starts, starts_cpu = {}, {}
        for model, double in self.doubles.items():
            first = next(
                r
                for r in double.calls()
                if r.method == "POST" and r.json and prompt_of(r.body) == question
            )
            starts[model] = first.time
            starts_cpu[model] = self.requests[model].cpu.get(id(first), 0.0)
        run = Run(
            sent=sent,
            handed=self.handed.get(text, sent),
            called=self.called.get(question, {}),
            starts=starts,
            starts_cpu=starts_cpu,
            ends={m: self.ends[m][question] for m in MODELS},
            finals=finals,
            calls=calls,
            cpu=cpu,
        )
        run.methods = Counter(c.method for c in calls)
        edits = [c for c in calls if c.method == "editMessageText" and c.ok]
        run.edits = [c.time for c in edits]
        run.intermediate = [c.time for c in edits if final_of(c.params.get("reply_markup")) is None]
        run.failed = sum(1 for c in calls if not c.ok)
        run.correct = len(finals) == len(MODELS) and all(
            seen[m]["text"].startswith(self.titles[m] + "\n" + expected[m]) for m in MODELS
        )
        return run


# -- report -------------------------------------------------------------------------------


@dataclass
class Result:
    variant: Variant
    runs: list[Run]

    def overheads(self, since: str, actual: bool = True) -> list[float]:
        """Wall time minus the latency of the model that finished last: as measured at
        its double (request arrival to end of stream), or as scripted (``actual=False``:
        then the doubles' own timer overshoot counts against the bot)."""
        found = []
        for r in self.runs:
            model = max(MODELS, key=lambda m: r.finals[m])  # whose final message came last
            latency = r.ends[model] - r.starts[model] if actual else max(self.variant.latencies)
            found.append((r.finals[model] - getattr(r, since) - latency) * 1e3)
        return found

    def spread_cpu(self) -> list[float]:
        """This process's CPU time between the first and the last request arrival."""
        found = []
        for r in self.runs:
            first = min(MODELS, key=lambda m: r.starts[m])
            last = max(MODELS, key=lambda m: r.starts[m])
            found.append((r.starts_cpu[last] - r.starts_cpu[first]) * 1e3)
        return found

    def spreads(self, which: str = "starts") -> list[float]:
        times = [getattr(r, which).values() for r in self.runs]
        # (no stream() calls noted: the providers were not reached)
        return [(max(t) - min(t)) * 1e3 for t in times if t]

    def tails(self) -> list[float]:
        """End of a model's stream to its final message, every model of every compare."""
        return [(r.finals[m] - r.ends[m]) * 1e3 for r in self.runs for m in MODELS]

    def overshoot(self) -> list[float]:
        """The doubles' timing: measured minus scripted latency, every model."""
        return [
            (r.ends[m] - r.starts[m] - lat) * 1e3
            for r in self.runs
            for m, lat in zip(MODELS, self.variant.latencies, strict=True)
        ]

    def gaps(self, which: str) -> list[float]:
        found: list[float] = []
        for r in self.runs:
            times = r.intermediate if which == "intermediate" else r.edits
            found.extend((b - a) * 1e3 for a, b in itertools.pairwise(times))
        return found

    def before_intermediate(self) -> list[float]:
        """Each intermediate edit's gap from the update before it in the chat, whatever
        that was (a placeholder, another model's final message)."""
        found = []
        for r in self.runs:
            updates = [c.time for c in r.calls if c.ok and c.method in UPDATES]
            for a, b in itertools.pairwise(updates):
                if b in r.intermediate:
                    found.append((b - a) * 1e3)
        return found


def cell(values: list[float], fmt: str = ".1f", how: str = "med/max") -> str:
    if not values:
        return "-"
    if how == "min":
        return f"{min(values):{fmt}}"
    if how == "mean":
        low, high = min(values), max(values)
        span = f" ({low:g}-{high:g})" if low != high else ""
        return f"{statistics.fmean(values):.1f}{span}"
    return f"{statistics.median(values):{fmt}} / {max(values):{fmt}}"


Test = Callable[[Result, list[float]], bool | None]


def report(
    results: list[Result], other_calls: Counter[str], started: float, pauses: kit.GcWatch
) -> tuple[bool, bool]:
    """Print the table; (goals met, the bench's own checks passed)."""
    print(
        f"\n{kit.machine()}; the bot, the doubles and this script share one process "
        f"and event loop.\nCompare set gpt, mistral, llama; EDIT_INTERVAL {EDIT_INTERVAL:g} s."
        " Each compare by a new user, one at a time.\n"
    )
    print("\n".join(f"  {result.variant.describe()}" for result in results) + "\n")
    width, col = 46, 17
    names = " | ".join(f"{r.variant.name:>{col}}" for r in results)
    head = f"{'figure':<{width}} | {names} | goal"
    print(head + "\n" + "-" * len(head))
    ok = {"goals": True, "checks": True}

    def row(
        label: str,
        values: Callable[[Result], list[float]] | None = None,
        goal: str = "info",
        test: Test | None = None,
        check: bool = False,
        each: Callable[[Run], float] | None = None,
        **kw: Any,
    ) -> None:
        """One figure per variant (``values`` of a result, or ``each`` of its runs)."""
        cells, verdicts = [], []
        for result in results:
            found = values(result) if values else [each(x) for x in result.runs] if each else []
            text = cell(found, **kw)
            verdict = test(result, found) if test is not None and found else None
            if verdict is not None:
                verdicts.append(verdict)
                text += "" if verdict else " !"
            cells.append(f"{text:>{col}}")
        line = f"{label:<{width}} | " + " | ".join(cells) + f" | {goal}"
        if verdicts:
            key = "checks" if check else "goals"
            ok[key] = ok[key] and all(verdicts)
            line += "  " + ("yes" if all(verdicts) else "NO")
        print(line)

    def count(method: str) -> Callable[[Run], float]:
        return lambda x: x.methods.get(method, 0)

    def under(r: Result, v: list[float]) -> bool | None:
        return None if r.variant.rtt else max(v) < GOAL_OVERHEAD_MS

    goal = f"< {GOAL_OVERHEAD_MS:g} ms every compare (RTT: info)"
    row(
        "wall - last model's latency, from handout, ms",
        lambda r: r.overheads("handed"),
        goal,
        under,
    )
    row("  the same, from the user's send, ms", lambda r: r.overheads("sent"))
    row(
        "  the same, scripted latency (1.5 s/3 s), ms",
        lambda r: r.overheads("handed", actual=False),
        "info: + doubles' overshoot",
    )
    row("doubles' overshoot of the scripted latency, ms", Result.overshoot, "info (not the bot)")
    row("handout -> first Bot API call, ms", each=lambda x: (x.calls[0].time - x.handed) * 1e3)
    row("handout -> first provider request, ms", each=lambda x: (x.first - x.handed) * 1e3)
    before = "Bot API calls before the first request"
    row(before, each=lambda x: sum(c.time < x.first for c in x.calls), how="mean")
    row(
        "provider request start spread, ms",
        Result.spreads,
        "info (with the doubles' CPU)",
        fmt=".2f",
    )
    row("  CPU this process used within it, ms", Result.spread_cpu, fmt=".2f")
    goal, spread = f"<= {GOAL_SPREAD_MS:g} ms every compare", lambda r, v: max(v) <= GOAL_SPREAD_MS
    row(
        "  the same, the bot calling stream(), ms",
        lambda r: r.spreads("called"),
        goal,
        spread,
        fmt=".2f",
    )
    row("stream end -> its final message, ms", Result.tails, "info (all 3 models)")
    row("process CPU per compare (bot + doubles), ms", each=lambda x: x.cpu * 1e3)
    for method in METHODS + METHODS_LATER:
        row(f"{method} per compare", each=count(method), how="mean")
    row("  of which intermediate edits", each=lambda x: len(x.intermediate), how="mean")
    finals = f"{len(MODELS)}"
    row(
        "  of which final edits",
        each=lambda x: len(x.edits) - len(x.intermediate),
        goal=finals,
        how="mean",
    )
    row(
        "min gap between intermediate edits, ms",
        lambda r: r.gaps("intermediate"),
        f">= {EDIT_INTERVAL * 1e3:.0f} ms (-{GAP_TOLERANCE * 1e3:.0f} jitter)",
        lambda r, v: min(v) >= (EDIT_INTERVAL - GAP_TOLERANCE) * 1e3,
        fmt=".0f",
        how="min",
    )
    row("min gap between any two edits, ms", lambda r: r.gaps("all"), how="min")
    row("min gap, any update -> intermediate edit, ms", Result.before_intermediate, how="min")
    label = f"edits < {EDIT_INTERVAL:g} s after the previous edit"
    row(label, goal="info (finals are not paced)", each=Run.close_edits, how="mean")
    row(
        "compares with all 3 answers correct",
        lambda r: [float(sum(run.correct for run in r.runs))],
        "all",
        lambda r, v: v[0] == len(r.runs),
        check=True,
        fmt=".0f",
        how="min",
    )
    row(
        "failed Bot API calls",
        lambda r: [float(sum(run.failed for run in r.runs))],
        "0",
        lambda r, v: v[0] == 0,
        check=True,
        fmt=".0f",
        how="min",
    )
    print(
        '\nCells: median / max over the compares ("mean (min-max)" for counts, the minimum '
        "for gaps); ! marks a miss.\n'handout' is getUpdates returning the update; a final "
        "message counts when the fake Telegram acted on it\n(the RTT variant: half the round "
        "trip after the call arrived). Calls with no chat during the run\n(not per compare): "
        + (", ".join(f"{m} {n}" for m, n in sorted(other_calls.items())) or "none")
        + f".\nGarbage collection during the compares: {pauses.describe()}."
        + f" Run took {time.monotonic() - started:.1f} s."
    )
    return ok["goals"], ok["checks"]


# -- main ---------------------------------------------------------------------------------


async def run(args: argparse.Namespace, redis_url: str, started: float) -> tuple[bool, bool]:
    whole, long = (0.5 * args.scale, 1.0 * args.scale, 1.5 * args.scale), (1.0, 2.0, 3.0)
    variants = [
        Variant("whole", "wh", whole, None, args.rounds),
        Variant("streamed", "st", whole, 0.1, args.rounds),
        Variant("long stream", "ls", tuple(x * args.scale for x in long), 0.1, args.long_rounds),
        Variant("whole, RTT 50ms", "rt", whole, None, args.rtt_rounds, rtt=0.05),
    ]
    variants = [v for v in variants if v.rounds > 0]
    with tempfile.TemporaryDirectory(prefix="bench-compare-") as tmp:
        async with running_bot(redis_url, Path(tmp), timeout=10.0) as h:
            with note_stream_calls(h) as called:
                bench = Bench(h, called)
                before = h.tg.mark()
                await bench.compare(Variant("warm-up", "wu", (0.05, 0.05, 0.05), None, 1), 0)
                results = []
                with kit.GcWatch() as pauses:
                    for variant in variants:
                        runs = [await bench.compare(variant, i) for i in range(variant.rounds)]
                        results.append(Result(variant, runs))
            other = Counter(
                c.method
                for c in h.tg.api_calls[before:]
                if c.chat_id is None and c.method != "getUpdates"
            )
    return report(results, other, started, pauses)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--rounds", type=int, default=10, help="compares: whole, streamed")
    parser.add_argument("--long-rounds", type=int, default=2, help="compares: long stream")
    parser.add_argument("--rtt-rounds", type=int, default=3, help="compares: RTT 50 ms")
    parser.add_argument("--scale", type=float, default=1.0, help="the models' latencies times")
    args = kit.parse(parser, argv, QUICK)
    if not (1 <= args.rounds <= 50 and 0 <= args.long_rounds <= 20 and 0 <= args.rtt_rounds <= 20):
        parser.error("rounds must be 1..50, long-rounds and rtt-rounds 0..20")
    if not 0.2 <= args.scale <= 5:
        parser.error("scale must be 0.2..5")
    logging.basicConfig(level=logging.WARNING)
    started = time.monotonic()
    try:
        with kit.redis_server() as server:
            goals, checks = asyncio.run(run(args, server.url, started))
    except Missing as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    return kit.verdict(args, goals, checks)


if __name__ == "__main__":
    sys.exit(main())
