"""How much the provider adapters cost over a bare httpx read of the same stream.

Run from the repository root, either way::

    .venv/bin/python -m bench.providers
    .venv/bin/python bench/providers.py [--rounds 5] [--chunks 2000] [--only openai,ollama]

For each adapter kind (openai, mistral, llama, ollama) its wire-format double from
``tests/doubles`` streams an answer of ``--chunks`` pieces of 3-5 characters over loopback.
The double runs in a child process with its own event loop, so that the CPU time measured
here (``time.process_time`` around one streamed answer) is the client's alone.

Each round streams the answer twice on pooled, kept-alive connections: once through the
adapter (``Provider.stream``, collecting the text) and once as the baseline, a bare
``httpx.AsyncClient`` POST with ``stream`` iterating ``aiter_lines()`` and nothing else.
The order alternates between rounds; one warm-up round (imports, connection set-up, first
request of each client) is not counted. Medians over the rounds are reported:

- TTFC: from the call to the first adapter chunk (its first text), or to the first
  non-empty line of the bare read;
- chunks/s: answer pieces over the whole answer's wall time;
- ratio: adapter wall time / bare wall time; the goal is at most 1.25;
- CPU ms: client process CPU time per streamed answer (and the double's, for reference:
  when the double's CPU per answer is close to the wall time, the double is the
  bottleneck and the wall-time ratio understates the adapter's cost).

The doubles stream as fast as they can, so the client is CPU-bound and the wall-time
ratio tracks the CPU ratio; on a machine with other load the wall times are noisy and
the CPU columns are the steadier figure. Exits 1 when an adapter misses the goal.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import multiprocessing
import os
import random
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

# ``python bench/providers.py`` puts bench/ first on sys.path; the doubles and the
# adapters are imported from the repository root (in this process and in the children).
ROOT = str(Path(__file__).resolve().parent.parent)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    import httpx

    from providers.base import ChatRequest, Provider

KEY = "test-key"
GOAL = 1.25  # adapter wall time / bare wall time


@dataclass(frozen=True)
class Spec:
    """How to reach one adapter kind's double, and what a chat request to it looks like."""

    kind: str
    double: str  # "module:Class" under tests.doubles
    prefix: str  # appended to the double's URL to make the provider's base_url
    path: str  # the streamed chat endpoint
    key: str | None
    model: str
    extra: dict[str, Any] = field(default_factory=dict)  # what the adapter adds to the body


SPECS = {
    s.kind: s
    for s in (
        Spec(
            "openai",
            "tests.doubles.openai_api:OpenAIDouble",
            "/v1",
            "/v1/chat/completions",
            KEY,
            "gpt-5-mini",
            {"stream_options": {"include_usage": True}},
        ),
        Spec(
            "mistral",
            "tests.doubles.mistral_api:MistralDouble",
            "/v1",
            "/v1/chat/completions",
            KEY,
            "mistral-small-latest",
        ),
        Spec(
            "llama",
            "tests.doubles.llama_api:LlamaDouble",
            "/v1",
            "/v1/chat/completions",
            KEY,
            "Llama-3.3-70B-Instruct",
        ),
        Spec("ollama", "tests.doubles.ollama_api:OllamaDouble", "", "/api/chat", None, "llama3.2"),
    )
}

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
        word = rng.choice(_WORDS)
        piece = " " + word
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


# -- the doubles, each in a child process ------------------------------------------


def _serve(kind: str, pieces: list[str], conn: Connection) -> None:
    """Child process: serve ``kind``'s double until told to stop; report CPU on request."""
    asyncio.run(_serve_async(kind, pieces, conn))


async def _serve_async(kind: str, pieces: list[str], conn: Connection) -> None:
    import importlib

    from tests.doubles.base import Reply

    spec = SPECS[kind]
    module_name, _, class_name = spec.double.partition(":")
    double = getattr(importlib.import_module(module_name), class_name)(key=spec.key)
    double.default = Reply(chunks=pieces, usage=(31, len(pieces)))
    await double.start()
    loop = asyncio.get_running_loop()
    try:
        conn.send(double.url)
        while True:
            message = await loop.run_in_executor(None, conn.recv)
            if message == "cpu":
                conn.send(time.process_time())
            else:
                break
    finally:
        await double.stop()


class Child:
    """A double in its own process, with its own event loop."""

    def __init__(self, kind: str, pieces: list[str]) -> None:
        context = multiprocessing.get_context("spawn")
        self.conn, child_conn = context.Pipe()
        self.process = context.Process(
            target=_serve, args=(kind, pieces, child_conn), name=f"double-{kind}", daemon=True
        )
        self.process.start()
        child_conn.close()
        self.url = ""

    def wait_ready(self, timeout: float = 20.0) -> str:
        if not self.conn.poll(timeout):
            raise RuntimeError(f"{self.process.name} did not start within {timeout:g}s")
        self.url = self.conn.recv()
        return self.url

    def cpu(self) -> float:
        self.conn.send("cpu")
        value: float = self.conn.recv()
        return value

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.send("stop")
        self.process.join(5)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(5)


# -- the client side ---------------------------------------------------------------


@dataclass
class Run:
    ttfc: float  # seconds
    total: float  # seconds
    cpu: float  # seconds of this process's CPU time
    server_cpu: float  # seconds of the double's process CPU time


async def adapter_run(provider: Provider, request: ChatRequest, child: Child, expect: str) -> Run:
    parts: list[str] = []
    server0 = child.cpu()
    gc.collect()
    cpu0 = time.process_time()
    start = time.perf_counter()
    first = 0.0
    async for chunk in provider.stream(request):
        if not first:
            first = time.perf_counter()
        parts.append(chunk.text)
    end = time.perf_counter()
    cpu = time.process_time() - cpu0
    server = child.cpu() - server0
    text = "".join(parts)
    if text != expect:
        raise AssertionError(f"{provider.name}: got {len(text)} characters, not the answer")
    return Run(first - start, end - start, cpu, server)


async def bare_run(
    client: httpx.AsyncClient, spec: Spec, child: Child, pieces: int, payload: dict[str, Any]
) -> Run:
    lines = 0
    server0 = child.cpu()
    gc.collect()
    cpu0 = time.process_time()
    start = time.perf_counter()
    first = 0.0
    async with client.stream("POST", spec.path, json=payload) as response:
        async for line in response.aiter_lines():
            if not first and line:
                first = time.perf_counter()
            lines += 1
    end = time.perf_counter()
    cpu = time.process_time() - cpu0
    server = child.cpu() - server0
    if response.status_code != 200 or lines < pieces:
        raise AssertionError(f"bare {spec.kind}: HTTP {response.status_code}, {lines} lines")
    return Run(first - start, end - start, cpu, server)


@dataclass
class Result:
    kind: str
    adapter: list[Run]
    bare: list[Run]


async def bench_kind(spec: Spec, child: Child, pieces: list[str], rounds: int) -> Result:
    import httpx

    from providers import registry
    from providers.base import ChatRequest, Message, ProviderConfig

    config = ProviderConfig(
        name=spec.kind, kind=spec.kind, base_url=child.url + spec.prefix, api_key=spec.key
    )
    provider = registry.create(config)
    request = ChatRequest(
        model=spec.model, messages=[Message("system", SYSTEM), Message("user", QUESTION)]
    )
    payload = {"model": spec.model, "messages": MESSAGES, "stream": True, **spec.extra}
    headers = {"Authorization": f"Bearer {spec.key}"} if spec.key else {}
    client = httpx.AsyncClient(base_url=child.url, headers=headers, timeout=60.0)
    expect = "".join(pieces)
    adapter: list[Run] = []
    bare: list[Run] = []
    try:
        # Warm-up: imports, the first connection, the clients' first-request paths.
        await adapter_run(provider, request, child, expect)
        await bare_run(client, spec, child, len(pieces), payload)
        for i in range(rounds):
            if i % 2:
                adapter.append(await adapter_run(provider, request, child, expect))
                bare.append(await bare_run(client, spec, child, len(pieces), payload))
            else:
                bare.append(await bare_run(client, spec, child, len(pieces), payload))
                adapter.append(await adapter_run(provider, request, child, expect))
    finally:
        await client.aclose()
        await provider.aclose()
    return Result(spec.kind, adapter, bare)


# -- report ------------------------------------------------------------------------


def _median(runs: list[Run], name: str) -> float:
    return float(statistics.median(getattr(run, name) for run in runs))


def report(results: list[Result], pieces: int, rounds: int) -> bool:
    """Print the table; True when every adapter meets the goal."""
    print(
        f"\n{pieces} pieces of 3-5 characters per answer, median of {rounds} rounds "
        f"after 1 warm-up; Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.2f} (wall times are noisy on a busy machine)."
    )
    print(
        "Each double runs in its own child process: the CPU columns are the client "
        "process's alone\n(the 'double CPU' column is the server's, for reference).\n"
    )
    head = (
        f"{'adapter':<8} | {'TTFC ms':>15} | {'chunks/s':>15} | {'total ms':>15} | "
        f"{'ratio':>5} | {'CPU ms/answer':>15} | {'CPU x':>5} | {'double CPU':>10} | goal"
    )
    sub = (
        f"{'':<8} | {'adapter / bare':>15} | {'adapter / bare':>15} | {'adapter / bare':>15} | "
        f"{'':>5} | {'adapter / bare':>15} | {'':>5} | {'ms/answer':>10} | <={GOAL:g}x"
    )
    print(head)
    print(sub)
    print("-" * len(head))
    ok = True
    for result in results:
        a, b = result.adapter, result.bare
        a_total, b_total = _median(a, "total"), _median(b, "total")
        a_cpu, b_cpu = _median(a, "cpu"), _median(b, "cpu")
        ratio = a_total / b_total
        meets = ratio <= GOAL
        ok = ok and meets
        server = _median(a + b, "server_cpu")
        print(
            f"{result.kind:<8} | "
            f"{_median(a, 'ttfc') * 1e3:>6.2f} / {_median(b, 'ttfc') * 1e3:>6.2f} | "
            f"{pieces / a_total:>6.0f} / {pieces / b_total:>6.0f} | "
            f"{a_total * 1e3:>6.1f} / {b_total * 1e3:>6.1f} | "
            f"{ratio:>5.2f} | "
            f"{a_cpu * 1e3:>6.1f} / {b_cpu * 1e3:>6.1f} | "
            f"{a_cpu / b_cpu:>5.2f} | "
            f"{server * 1e3:>10.1f} | "
            f"{'yes' if meets else 'NO'}"
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


async def bench_all(children: dict[str, Child], pieces: list[str], rounds: int) -> list[Result]:
    return [
        await bench_kind(SPECS[kind], child, pieces, rounds) for kind, child in children.items()
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="measured rounds (default 5)")
    parser.add_argument("--chunks", type=int, default=2000, help="pieces per answer")
    parser.add_argument("--only", default=",".join(SPECS), help="comma-separated kinds")
    args = parser.parse_args(argv)
    kinds = [k.strip() for k in args.only.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in SPECS]
    if unknown or args.rounds < 1 or args.chunks < 1:
        parser.error(f"unknown kinds {unknown}" if unknown else "rounds and chunks must be >= 1")
    pieces = make_pieces(args.chunks)
    children = {kind: Child(kind, pieces) for kind in kinds}
    try:
        for child in children.values():
            child.wait_ready()
        results = asyncio.run(bench_all(children, pieces, args.rounds))
    finally:
        for child in children.values():
            child.stop()
    ok = report(results, args.chunks, args.rounds)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
