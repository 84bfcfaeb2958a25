"""/compare end to end: what it adds over its slowest model, and what it asks of Telegram.

Run from the repository root, either way::

    .venv/bin/python -m bench.compare
    .venv/bin/python bench/compare.py [--rounds 10] [--long-rounds 2] [--rtt-rounds 3]

The real app (``tests.harness.running_bot``: ``App.build`` + polling) runs against the
fake Bot API, the model API doubles and a throwaway redis-server, all on 127.0.0.1 and
all in this process and event loop (so the doubles' own CPU and timer overshoot share
the loop with the bot). The compare set is the catalog's default: gpt, mistral, llama.
Their doubles take 0.5 s, 1.0 s and 1.5 s from the request to the end of the answer.

Variants, each ``/compare`` sent by a new user, one at a time (after one warm-up compare
that opens the connections):

- whole: each answer arrives at once (4 pieces 10 ms apart at the end of the latency);
- streamed: the first piece after 0.1 s, then one every 50 ms until the same latencies;
- long stream: as streamed, with 1, 2 and 3 s, so that each chat gets several edits;
- whole, RTT 50 ms: as whole, with every Bot API call but getUpdates taking a 50 ms
  round trip (25 ms there, 25 back), as from a server far from Telegram's (info only).

Measured per compare (``time.monotonic()``, one clock for the bot and the doubles):

- wall time, from getUpdates handing out the update (and from the user's send) to the
  last model's final message (the one with "Continue with") reaching the fake Telegram,
  minus that model's latency as measured at its double (request arrival to the end of
  its stream); goal: under 50 ms for every compare. The same minus the scripted latency
  is shown too: it also holds the doubles' timer overshoot (asyncio sleeps run late);
- when the first Bot API call and the first provider request came after the handout,
  the spread of the three requests' arrivals at the doubles, with this process's CPU
  time inside that spread (the doubles share this process: receiving the first request
  delays sending the next), and the spread of the bot's own ``Provider.stream`` calls
  (goal: within 5 ms);
- from the end of a model's stream (the double's ``write_eof``) to its final message;
- Telegram calls by method, intermediate edits and final edits apart;
- the gaps between edits in the chat: between intermediate edits (paced: goal at least
  the pacer's ``EDIT_INTERVAL``), between any two edits (finals are not paced: no goal),
  and from any update (placeholder, final) to the next intermediate edit.

Prints one table with each figure, its goal and pass/fail; exits 1 when a goal is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# ``python bench/compare.py`` puts bench/ first on sys.path; the bot, the harness and the
# doubles are imported from the repository root.
ROOT = str(Path(__file__).resolve().parent.parent)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from bot.keyboards import ContinueWith  # noqa: E402
from bot.services.pacer import EDIT_INTERVAL  # noqa: E402
from tests.doubles.base import Reply  # noqa: E402
from tests.doubles.telegram import Call, FakeUser, TelegramDouble  # noqa: E402
from tests.harness import Harness, running_bot  # noqa: E402
from tests.redis_server import RedisServer  # noqa: E402

MODELS = ("gpt", "mistral", "llama")  # the catalog's default compare set, in its order
GOAL_OVERHEAD_MS = 50.0  # wall time minus the slowest model's latency, every compare
GOAL_SPREAD_MS = 5.0  # first to last of the bot's Provider.stream calls
GAP_TOLERANCE = 0.02  # s: request arrival jitter allowed under EDIT_INTERVAL
SETTLE = 0.05  # s after a compare's last final message, before the next compare
METHODS = ("sendMessage", "editMessageText", "sendChatAction", "sendMessageDraft")
METHODS_LATER = ("answerCallbackQuery",)
UPDATES = ("sendMessage", "editMessageText", "sendMessageDraft")  # what changes the chat


@dataclass(frozen=True)
class Variant:
    name: str
    tag: str  # unique per variant: it makes each compare's question unique
    latencies: tuple[float, float, float]  # gpt, mistral, llama: request to end of answer
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


# -- instrumentation (instance attributes of this run's doubles only) -----------------


def note_handouts(tg: TelegramDouble) -> dict[str, float]:
    """When getUpdates handed out each message, by its text."""
    handed: dict[str, float] = {}
    original = tg._handlers["getUpdates"]

    async def get_updates(params: dict[str, Any]) -> Any:
        updates = await original(params)
        now = time.monotonic()
        for update in updates:
            text = (update.get("message") or {}).get("text")
            if text is not None:
                handed.setdefault(text, now)
        return updates

    tg._handlers["getUpdates"] = get_updates
    return handed


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
    for row in rows:
        for button in row:
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


def note_stream_calls(h: Harness) -> dict[str, dict[str, float]]:
    """When the bot called each provider's ``stream``, by prompt and model."""
    called: dict[str, dict[str, float]] = {}
    by_provider = {h.catalog.models[m].provider: m for m in MODELS}
    for provider in h.app.core.pool:
        model = by_provider.get(provider.name)
        if model is None:
            continue
        original = provider.stream

        def stream(request: Any, _original: Any = original, _model: str = model) -> Any:
            prompt = request.messages[-1].content
            called.setdefault(prompt, {}).setdefault(_model, time.monotonic())
            return _original(request)

        provider.stream = stream  # type: ignore[method-assign]
    return called


def prompt_of(body: bytes) -> str:
    """The last user message of a chat request body."""
    last = ""
    for message in json.loads(body).get("messages") or []:
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
            last = str(content)
    return last


# -- one compare --------------------------------------------------------------------


class Bench:
    def __init__(self, h: Harness) -> None:
        self.h = h
        self.handed = note_handouts(h.tg)
        self.rtt = [0.0]
        delay_bot_api(h.tg, self.rtt)
        self.doubles = {m: h.llm(m) for m in MODELS}
        for double in self.doubles.values():
            double.requests = NotingList(double.requests)
        self.ends = {m: note_stream_ends(d) for m, d in self.doubles.items()}
        self.called = note_stream_calls(h)
        self.titles = {m: h.catalog.models[m].title for m in MODELS}
        self.names = {m: h.catalog.models[m].name for m in MODELS}
        self.users = 0

    def script(self, variant: Variant, tag: str) -> dict[str, str]:
        """Set each model's reply; the answer text each final message must hold."""
        texts = {}
        for model, latency in zip(MODELS, variant.latencies, strict=True):
            reply = variant.reply(latency, f"{model}{tag}w")
            self.doubles[model].replies[self.names[model]] = reply
            assert reply.text is not None
            texts[model] = reply.text
        return texts

    def user(self) -> FakeUser:
        self.users += 1
        return self.h.tg.user(first_name=f"Bench{self.users}")

    async def compare(self, variant: Variant, index: int) -> Run:
        tg = self.h.tg
        self.rtt[0] = variant.rtt
        tag = f"{variant.tag}{index}"
        expected = self.script(variant, tag)
        user = self.user()
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
            model = final_of(call.params.get("reply_markup")) if call.ok else None
            if model is not None:
                # visible when the fake Telegram acted on it: half the RTT after arrival
                finals.setdefault(model, call.time + variant.rtt / 2)
        starts, starts_cpu = {}, {}
        for model, double in self.doubles.items():
            requests = [
                r
                for r in double.calls()
                if r.method == "POST" and r.json and prompt_of(r.body) == question
            ]
            starts[model] = requests[0].time
            starts_cpu[model] = double.requests.cpu.get(id(requests[0]), 0.0)
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


# -- report -------------------------------------------------------------------------


@dataclass
class Result:
    variant: Variant
    runs: list[Run]

    @property
    def slowest(self) -> float:
        return max(self.variant.latencies)

    def last(self, run: Run) -> str:
        """The model whose final message came last."""
        return max(MODELS, key=lambda m: run.finals[m])

    def overheads(self, since: str, actual: bool = True) -> list[float]:
        """Wall time minus the latency of the model that finished last: as measured at
        its double (request arrival to end of stream), or as scripted (``actual=False``:
        then the doubles' own timer overshoot counts against the bot)."""
        found = []
        for r in self.runs:
            model = self.last(r)
            latency = r.ends[model] - r.starts[model] if actual else self.slowest
            found.append((r.finals[model] - getattr(r, since) - latency) * 1e3)
        return found

    def to_first_call(self) -> list[float]:
        return [(r.calls[0].time - r.handed) * 1e3 for r in self.runs]

    def to_requests(self) -> list[float]:
        return [(min(r.starts.values()) - r.handed) * 1e3 for r in self.runs]

    def calls_before_requests(self) -> list[float]:
        return [
            float(sum(1 for c in r.calls if c.time < min(r.starts.values()))) for r in self.runs
        ]

    def spread_cpu(self) -> list[float]:
        """This process's CPU time between the first and the last request arrival."""
        found = []
        for r in self.runs:
            first = min(MODELS, key=lambda m: r.starts[m])
            last = max(MODELS, key=lambda m: r.starts[m])
            found.append((r.starts_cpu[last] - r.starts_cpu[first]) * 1e3)
        return found

    def spreads(self, which: str = "starts") -> list[float]:
        found = []
        for r in self.runs:
            times = getattr(r, which).values()
            if times:  # (no stream() calls noted: the app's pool was not found)
                found.append((max(times) - min(times)) * 1e3)
        return found

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

    def per_compare(self, method: str) -> list[float]:
        return [float(r.methods.get(method, 0)) for r in self.runs]

    def intermediates(self) -> list[float]:
        return [float(len(r.intermediate)) for r in self.runs]

    def finals_edits(self) -> list[float]:
        return [float(len(r.edits) - len(r.intermediate)) for r in self.runs]

    def gaps(self, which: str) -> list[float]:
        found = []
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

    def close_pairs(self) -> list[float]:
        """Per compare: edits that came less than EDIT_INTERVAL after the previous one."""
        return [
            float(sum(1 for a, b in itertools.pairwise(r.edits) if b - a < EDIT_INTERVAL))
            for r in self.runs
        ]


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


class GcPauses:
    """The collector's pauses in this process (they stall the bot and the doubles alike)."""

    def __init__(self) -> None:
        self.pauses: list[float] = []
        self._began = 0.0

    def __enter__(self) -> GcPauses:
        gc.callbacks.append(self._note)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._note)

    def _note(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
        else:
            self.pauses.append(time.perf_counter() - self._began)

    def describe(self) -> str:
        long = [p for p in self.pauses if p >= 0.005]
        top = f", the longest {max(self.pauses) * 1e3:.1f} ms" if self.pauses else ""
        return f"{len(self.pauses)} collections, {len(long)} of 5 ms or more{top}"


def report(
    results: list[Result], other_calls: Counter[str], started: float, pauses: GcPauses
) -> bool:
    print(
        f"\nPython {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.2f}; the bot, the doubles and this script share one process "
        f"and event loop.\nCompare set gpt, mistral, llama; EDIT_INTERVAL {EDIT_INTERVAL:g} s."
        " Each compare by a new user, one at a time.\n"
    )
    for result in results:
        print(f"  {result.variant.describe()}")
    print()
    width = 46
    col = 17
    head = (
        f"{'figure':<{width}} | "
        + " | ".join(f"{r.variant.name:>{col}}" for r in results)
        + " | goal"
    )
    print(head)
    print("-" * len(head))
    ok = True

    def row(
        label: str,
        values: Callable[[Result], list[float]],
        goal: str = "",
        test: Callable[[Result, list[float]], bool | None] | None = None,
        **kw: Any,
    ) -> None:
        nonlocal ok
        cells = []
        verdicts = []
        for result in results:
            found = values(result)
            text = cell(found, **kw)
            verdict = test(result, found) if test is not None and found else None
            if verdict is not None:
                verdicts.append(verdict)
                text += "" if verdict else " !"
            cells.append(f"{text:>{col}}")
        line = f"{label:<{width}} | " + " | ".join(cells) + f" | {goal}"
        if verdicts:
            passed = all(verdicts)
            ok = ok and passed
            line += "  " + ("yes" if passed else "NO")
        print(line)

    def under(limit: float) -> Callable[[Result, list[float]], bool | None]:
        return lambda r, v: None if r.variant.rtt else max(v) < limit

    row(
        "wall - last model's latency, from handout, ms",
        lambda r: r.overheads("handed"),
        f"< {GOAL_OVERHEAD_MS:g} ms every compare (RTT: info)",
        under(GOAL_OVERHEAD_MS),
    )
    row("  the same, from the user's send, ms", lambda r: r.overheads("sent"), "info")
    row(
        "  the same, scripted latency (1.5 s/3 s), ms",
        lambda r: r.overheads("handed", actual=False),
        "info: + doubles' overshoot",
    )
    row("doubles' overshoot of the scripted latency, ms", Result.overshoot, "info (not the bot)")
    row("handout -> first Bot API call, ms", Result.to_first_call, "info")
    row("handout -> first provider request, ms", Result.to_requests, "info")
    row("Bot API calls before the first request", Result.calls_before_requests, "info", how="mean")
    row(
        "provider request start spread, ms",
        Result.spreads,
        "info (with the doubles' CPU)",
        fmt=".2f",
    )
    row("  CPU this process used within it, ms", Result.spread_cpu, "info", fmt=".2f")
    row(
        "  the same, the bot calling stream(), ms",
        lambda r: r.spreads("called"),
        f"<= {GOAL_SPREAD_MS:g} ms every compare",
        lambda r, v: max(v) <= GOAL_SPREAD_MS,
        fmt=".2f",
    )
    row("stream end -> its final message, ms", Result.tails, "info (all 3 models)")
    row(
        "process CPU per compare (bot + doubles), ms",
        lambda r: [run.cpu * 1e3 for run in r.runs],
        "info",
    )
    for method in METHODS + METHODS_LATER:
        row(f"{method} per compare", lambda r, m=method: r.per_compare(m), "info", how="mean")
    row("  of which intermediate edits", Result.intermediates, "info", how="mean")
    row("  of which final edits", Result.finals_edits, f"{len(MODELS)}", how="mean")
    row(
        "min gap between intermediate edits, ms",
        lambda r: r.gaps("intermediate"),
        f">= {EDIT_INTERVAL * 1e3:.0f} ms (-{GAP_TOLERANCE * 1e3:.0f} jitter)",
        lambda r, v: min(v) >= (EDIT_INTERVAL - GAP_TOLERANCE) * 1e3,
        fmt=".0f",
        how="min",
    )
    row("min gap between any two edits, ms", lambda r: r.gaps("all"), "info", fmt=".1f", how="min")
    row(
        "min gap, any update -> intermediate edit, ms",
        Result.before_intermediate,
        "info",
        fmt=".1f",
        how="min",
    )
    row(
        f"edits < {EDIT_INTERVAL:g} s after the previous edit",
        Result.close_pairs,
        "info (finals are not paced)",
        how="mean",
    )
    row(
        "compares with all 3 answers correct",
        lambda r: [float(sum(run.correct for run in r.runs))],
        "all",
        lambda r, v: v[0] == len(r.runs),
        fmt=".0f",
        how="min",
    )
    row(
        "failed Bot API calls",
        lambda r: [float(sum(run.failed for run in r.runs))],
        "0",
        lambda r, v: v[0] == 0,
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
    return ok


# -- main ---------------------------------------------------------------------------


async def run(args: argparse.Namespace, redis_url: str, started: float) -> bool:
    variants = [
        Variant("whole", "wh", (0.5, 1.0, 1.5), None, args.rounds),
        Variant("streamed", "st", (0.5, 1.0, 1.5), 0.1, args.rounds),
        Variant("long stream", "ls", (1.0, 2.0, 3.0), 0.1, args.long_rounds),
        Variant("whole, RTT 50ms", "rt", (0.5, 1.0, 1.5), None, args.rtt_rounds, rtt=0.05),
    ]
    variants = [v for v in variants if v.rounds > 0]
    with tempfile.TemporaryDirectory(prefix="bench-compare-") as tmp:
        async with running_bot(redis_url, Path(tmp), timeout=10.0) as h:
            bench = Bench(h)
            before = h.tg.mark()
            await bench.compare(Variant("warm-up", "wu", (0.05, 0.05, 0.05), None, 1), 0)
            results = []
            with GcPauses() as pauses:
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
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=10, help="compares: whole, streamed")
    parser.add_argument("--long-rounds", type=int, default=2, help="compares: long stream")
    parser.add_argument("--rtt-rounds", type=int, default=3, help="compares: RTT 50 ms")
    args = parser.parse_args(argv)
    if not (1 <= args.rounds <= 50 and 0 <= args.long_rounds <= 20 and 0 <= args.rtt_rounds <= 20):
        parser.error("rounds must be 1..50, long-rounds and rtt-rounds 0..20")
    logging.basicConfig(level=logging.WARNING)
    started = time.monotonic()
    server = RedisServer()
    server.start()
    try:
        ok = asyncio.run(run(args, server.url, started))
    except Missing as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        server.cleanup()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
