"""How much the provider adapters cost over a bare httpx read of the same stream: each
adapter kind's wire-format double (in a child process, so the CPU measured here is the
client's alone) streams ``--chunks`` pieces; each round reads it through the adapter and
as a bare ``httpx`` line read, in alternating order. See bench/README.md."""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import statistics
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bench import kit
from tests.doubles.base import LLMDouble, Reply

if TYPE_CHECKING:
    import httpx

    from providers.base import ChatRequest, Provider

GOAL = 1.25  # adapter wall time / bare wall time

# The kinds of the kit, and Gemini's native API (its request body and key header are its
# own, so the bare read below builds them per kind).
SPECS = {
    **kit.SPECS,
    "gemini": kit.Spec(
        "gemini",
        "gemini_api:GeminiDouble",
        "/v1beta",
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
        kit.KEY,
        "gemini-2.5-flash",
    ),
}
QUICK = {"rounds": 1, "chunks": 200}
SYSTEM = "You are a helpful assistant. Answer briefly."
QUESTION = "Tell me a long story about a lighthouse keeper."
MESSAGES = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}]

_WORDS = (
    *("the", "a", "of", "and", "to", "in", "is", "it", "was", "he", "she", "on", "at"),
    *("by", "we", "you", "they", "cat", "dog", "sea", "sky", "ship", "lamp", "wave"),
    *("rock", "old", "new", "keep", "dark", "light", "night", "day", "wind", "rain"),
    *("fog", "bell", "tide", "sand", "boat", "bird", "star", "moon", "sun", "salt"),
    *("rope", "door"),
)


def make_pieces(count: int, seed: int = 7) -> list[str]:
    """``count`` stream pieces of 3-5 characters, as a tokenizer would cut English text."""
    rng = random.Random(seed)
    pieces: list[str] = []
    while len(pieces) < count:
        piece = " " + rng.choice(_WORDS)
        if len(piece) < 3:
            piece += rng.choice(",.;")
        if len(piece) > 5:
            pieces.extend((piece[:4], piece[4:] if len(piece) > 6 else piece[4:] + "."))
            continue
        pieces.append(piece)
    pieces = pieces[:count]
    # Realistic, not uniform: a newline now and then, and a few non-ASCII pieces.
    for i in range(0, count, 97):
        pieces[i] = ".\n\n"
    for i in range(50, count, 211):
        pieces[i] = " café"
    assert all(3 <= len(p) <= 5 for p in pieces), pieces
    return pieces


class Serving:
    """The child process's object (see kit.Child): one kind's double."""

    def __init__(self, double: LLMDouble) -> None:
        self.double = double
        self.info = ""

    async def aclose(self) -> None:
        await self.double.stop()


async def serve(kind: str, pieces: list[str]) -> Serving:
    spec = SPECS[kind]
    double = spec.double_class()(key=spec.key)
    double.default = Reply(chunks=pieces, usage=(31, len(pieces)))
    served = Serving(double)
    served.info = await double.start()
    return served


@dataclass
class Run:
    ttfc: float  # seconds
    total: float  # seconds
    cpu: float  # seconds of this process's CPU time
    server_cpu: float  # seconds of the double's process CPU time


async def timed(child: kit.Child, read: Any) -> Run:
    """``read()`` (returns when the first piece came) timed: wall, CPU, the double's CPU."""
    server0 = child.cpu()
    gc.collect()
    cpu0 = time.process_time()
    start = time.perf_counter()
    first = await read()
    end = time.perf_counter()
    cpu = time.process_time() - cpu0
    return Run(first - start, end - start, cpu, child.cpu() - server0)


async def adapter_run(
    provider: Provider, request: ChatRequest, child: kit.Child, expect: str
) -> Run:
    parts: list[str] = []

    async def read() -> float:
        first = 0.0
        async for chunk in provider.stream(request):
            first = first or time.perf_counter()
            parts.append(chunk.text)
        return first

    run = await timed(child, read)
    if (text := "".join(parts)) != expect:
        raise AssertionError(f"{provider.name}: got {len(text)} characters, not the answer")
    return run


async def bare_run(
    client: httpx.AsyncClient, spec: kit.Spec, child: kit.Child, pieces: int, payload: Any
) -> Run:
    lines, status = [0], [0]

    async def read() -> float:
        first = 0.0
        async with client.stream("POST", spec.path, json=payload) as response:
            async for line in response.aiter_lines():
                if not first and line:
                    first = time.perf_counter()
                lines[0] += 1
        status[0] = response.status_code
        return first

    run = await timed(child, read)
    if status[0] != 200 or lines[0] < pieces:
        raise AssertionError(f"bare {spec.kind}: HTTP {status[0]}, {lines[0]} lines")
    return run


@dataclass
class Result:
    kind: str
    adapter: list[Run]
    bare: list[Run]


async def bench_kind(spec: kit.Spec, child: kit.Child, pieces: list[str], rounds: int) -> Result:
    import httpx

    from providers import registry
    from providers.base import ChatRequest, Message, ProviderConfig

    config = ProviderConfig(
        name=spec.kind, kind=spec.kind, base_url=child.info + spec.prefix, api_key=spec.key
    )
    provider = registry.create(config)
    request = ChatRequest(
        model=spec.model, messages=[Message("system", SYSTEM), Message("user", QUESTION)]
    )
    payload, headers = bare_request(spec)
    client = httpx.AsyncClient(base_url=child.info, headers=headers, timeout=60.0)
    expect = "".join(pieces)
    result = Result(spec.kind, [], [])

    async def adapter() -> Run:
        return await adapter_run(provider, request, child, expect)

    async def bare() -> Run:
        return await bare_run(client, spec, child, len(pieces), payload)

    try:
        # Warm-up: imports, the first connection, the clients' first-request paths.
        await adapter()
        await bare()
        for i in range(rounds):
            if i % 2:
                result.adapter.append(await adapter())
                result.bare.append(await bare())
            else:
                result.bare.append(await bare())
                result.adapter.append(await adapter())
    finally:
        await client.aclose()
        await provider.aclose()
    return result


def bare_request(spec: kit.Spec) -> tuple[dict[str, Any], dict[str, str]]:
    """The body and headers the adapter sends, written by hand: what a bare read posts."""
    if spec.kind == "gemini":
        body: dict[str, Any] = {
            "contents": [{"role": "user", "parts": [{"text": QUESTION}]}],
            "systemInstruction": {"parts": [{"text": SYSTEM}]},
            "generationConfig": {"thinkingConfig": {"includeThoughts": True}},
        }
        return body, {"x-goog-api-key": spec.key or ""}
    body = {"model": spec.model, "messages": MESSAGES, "stream": True, **spec.extra}
    return body, {"Authorization": f"Bearer {spec.key}"} if spec.key else {}


def _median(runs: list[Run], name: str) -> float:
    return float(statistics.median(getattr(run, name) for run in runs))


def report(results: list[Result], pieces: int, rounds: int) -> bool:
    """Print the table; True when every adapter meets the goal."""
    print(
        f"\n{pieces} pieces of 3-5 characters per answer, median of {rounds} rounds "
        f"after 1 warm-up; {kit.machine()} (wall times are noisy on a busy machine)."
    )
    print(
        "Each double runs in its own child process: the CPU columns are the client "
        "process's alone\n(the 'double CPU' column is the server's, for reference).\n"
    )
    pair = "adapter / bare"
    head = (
        f"{'adapter':<8} | {'TTFC ms':>15} | {'chunks/s':>15} | {'total ms':>15} | "
        f"{'ratio':>5} | {'CPU ms/answer':>15} | {'CPU x':>5} | {'double CPU':>10} | goal"
    )
    print(head)
    print(
        f"{'':<8} | {pair:>15} | {pair:>15} | {pair:>15} | {'':>5} | {pair:>15} | {'':>5} | "
        f"{'ms/answer':>10} | <={GOAL:g}x"
    )
    print("-" * len(head))
    ok = True
    for result in results:
        a, b = result.adapter, result.bare
        a_total, b_total = _median(a, "total"), _median(b, "total")
        a_cpu, b_cpu = _median(a, "cpu"), _median(b, "cpu")
        ratio = a_total / b_total
        ok = ok and ratio <= GOAL
        print(
            f"{result.kind:<8} | "
            f"{_median(a, 'ttfc') * 1e3:>6.2f} / {_median(b, 'ttfc') * 1e3:>6.2f} | "
            f"{pieces / a_total:>6.0f} / {pieces / b_total:>6.0f} | "
            f"{a_total * 1e3:>6.1f} / {b_total * 1e3:>6.1f} | {ratio:>5.2f} | "
            f"{a_cpu * 1e3:>6.1f} / {b_cpu * 1e3:>6.1f} | {a_cpu / b_cpu:>5.2f} | "
            f"{_median(a + b, 'server_cpu') * 1e3:>10.1f} | {'yes' if ratio <= GOAL else 'NO'}"
        )
    print("\nSpread of the wall time per answer, ms (min-max over the rounds):")
    for result in results:
        a_ms = [run.total * 1e3 for run in result.adapter]
        b_ms = [run.total * 1e3 for run in result.bare]
        print(
            f"  {result.kind:<8} adapter {min(a_ms):6.1f}-{max(a_ms):6.1f}   "
            f"bare {min(b_ms):6.1f}-{max(b_ms):6.1f}"
        )
    return ok


async def bench_all(children: list[kit.Child], pieces: list[str], rounds: int) -> list[Result]:
    kinds = [child.name.removeprefix("double-") for child in children]
    return [
        await bench_kind(SPECS[kind], child, pieces, rounds)
        for kind, child in zip(kinds, children, strict=True)
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="measured rounds (default 5)")
    parser.add_argument("--chunks", type=int, default=2000, help="pieces per answer")
    parser.add_argument("--only", default=",".join(SPECS), help="comma-separated kinds")
    args = kit.parse(parser, argv, QUICK)
    kinds = [k.strip() for k in args.only.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in SPECS]
    if unknown or args.rounds < 1 or args.chunks < 1:
        parser.error(f"unknown kinds {unknown}" if unknown else "rounds and chunks must be >= 1")
    pieces = make_pieces(args.chunks)
    started = [kit.Child(serve, kind, pieces, name=f"double-{kind}") for kind in kinds]
    with kit.children(*started) as children:
        # an adapter that loses text raises: the bench's own check
        results = asyncio.run(bench_all(children, pieces, args.rounds))
    return kit.verdict(args, report(results, args.chunks, args.rounds), True)


if __name__ == "__main__":
    sys.exit(main())
