"""What the benches share: the command line (``--quick``), a child process that serves an
object over a pipe, a garbage-collector watch, percentiles and the figure table, a
throwaway redis-server with its INFO figures, a count of what redis-py sends, the model
API doubles by kind, and a catalog writer. See bench/README.md."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import importlib
import multiprocessing
import os
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web
from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection, Connection

from tests.doubles.base import LLMDouble
from tests.doubles.telegram import TelegramDouble
from tests.redis_server import RedisServer

ROOT = str(Path(__file__).resolve().parent.parent)

# -- the command line ------------------------------------------------------------------


def parse(
    parser: argparse.ArgumentParser, argv: list[str] | None, quick: dict[str, Any]
) -> argparse.Namespace:
    """The arguments; with ``--quick`` (or ``BENCH_QUICK=1``) the defaults are ``quick``'s
    tiny sizes (flags given still win) and the goals are not enforced."""
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes, seconds; goals not enforced"
    )
    args = parser.parse_args(argv)
    if args.quick or os.environ.get("BENCH_QUICK", "") not in ("", "0"):
        parser.set_defaults(**quick)
        args = parser.parse_args(argv)
        args.quick = True
    return args


def options(parser: argparse.ArgumentParser, **specs: Any) -> None:
    """``name=default`` or ``name=(default, help)``: ``--name`` of the default's type (a
    bool: a flag)."""
    for name, spec in specs.items():
        default, text = spec if isinstance(spec, tuple) else (spec, None)
        flag = "--" + name.replace("_", "-")
        if isinstance(default, bool):
            parser.add_argument(flag, action="store_true", help=text)
        else:
            parser.add_argument(flag, type=type(default), default=default, help=text)


def machine() -> str:
    return (
        f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.2f}"
    )


def verdict(args: argparse.Namespace, goals: bool, checks: bool) -> int:
    """The exit status: goals and checks in a full run, the bench's own checks (answers,
    counters) alone in a quick one."""
    if not args.quick:
        return 0 if goals and checks else 1
    print(
        "\nQuick mode: tiny sizes, goals not enforced (figures are noise); the bench's "
        + ("own checks passed." if checks else "own checks FAILED.")
    )
    return 0 if checks else 1


# -- figures -----------------------------------------------------------------------------


def pct(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (nan for no values)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


class Table:
    """Rows of figure | value | goal | result. A row with ``check=True`` is one of the
    bench's own checks (a wrong answer, a lost message): enforced in quick mode too."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str, str]] = []
        self.goals = True
        self.checks = True

    def add(
        self, name: str, value: str, goal: str = "", passed: bool | None = None, check: bool = False
    ) -> None:
        if passed is False:
            if check:
                self.checks = False
            else:
                self.goals = False
        verdict = "" if passed is None else ("pass" if passed else "FAIL")
        self.rows.append((name, value, goal, verdict))

    def at_most(
        self, name: str, value: float, limit: float, fmt: str, unit: str = "", note: str = ""
    ) -> None:
        """A goal that ``value`` is at most ``limit``."""
        shown = f"{limit:g}" if limit % 1 == 0 else f"{limit:{fmt}}"
        self.add(name, f"{value:{fmt}}{unit}", f"<= {shown}{unit}{note}", value <= limit)

    def zero(self, name: str, count: int) -> None:
        """A check that ``count`` is 0."""
        self.add(name, str(count), "0", count == 0, check=True)

    def print(self) -> None:
        widths = [
            max(len(r[i]) for r in [*self.rows, ("figure", "value", "goal", "")]) for i in range(4)
        ]
        head = ("figure", "value", "goal", "result")
        line = " | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True))
        print(line + "\n" + "-" * len(line))
        for row in self.rows:
            print(" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))


class GcWatch:
    """The garbage collector's pauses in this process while in the ``with`` block."""

    def __init__(self) -> None:
        self.pauses: list[tuple[int, float]] = []  # (generation, seconds)
        self._started = 0.0

    def __enter__(self) -> GcWatch:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses.append((int(info["generation"]), time.perf_counter() - self._started))

    def summary(self) -> dict[str, Any]:
        full = [seconds for generation, seconds in self.pauses if generation == 2]
        return {
            "count": len(self.pauses),
            "total": sum(seconds for _, seconds in self.pauses),
            "full": len(full),
            "full_total": sum(full),
            "longest": max((seconds for _, seconds in self.pauses), default=0.0),
        }

    def describe(self) -> str:
        long = sum(1 for _, seconds in self.pauses if seconds >= 0.005)
        top = f", the longest {self.summary()['longest'] * 1e3:.1f} ms" if self.pauses else ""
        return f"{len(self.pauses)} collections, {long} of 5 ms or more{top}"


# -- a child process serving an object -----------------------------------------------------


class Served(Protocol):
    info: Any  # what the parent gets once the child is ready

    async def aclose(self) -> None: ...


def _child_main(
    factory: Callable[..., Awaitable[Served]], args: tuple[Any, ...], conn: Any
) -> None:
    asyncio.run(_child_serve(factory, args, conn))


async def _child_serve(
    factory: Callable[..., Awaitable[Served]], args: tuple[Any, ...], conn: Any
) -> None:
    try:
        served = await factory(*args)
    except Exception as exc:
        conn.send(("error", f"start: {type(exc).__name__}: {exc}"))
        return
    loop = asyncio.get_running_loop()
    try:
        conn.send(("ok", served.info))
        while (message := await loop.run_in_executor(None, conn.recv))[0] != "stop":
            method, kwargs = message
            try:
                if method == "cpu":  # this process's CPU seconds
                    result: Any = ("ok", time.process_time())
                else:
                    result = ("ok", await getattr(served, method)(**kwargs))
            except Exception as exc:  # the parent raises it
                result = ("error", f"{method}: {type(exc).__name__}: {exc}")
            conn.send(result)
    finally:
        await served.aclose()


class Child:
    """``await factory(*args)`` in a spawned process with its own event loop; its async
    methods called by name over a pipe (``call``, or ``send`` then ``reply`` to start
    several children at once). ``cpu`` is the child's CPU time."""

    def __init__(self, factory: Callable[..., Awaitable[Served]], *args: Any, name: str) -> None:
        context = multiprocessing.get_context("spawn")
        self.conn, child_conn = context.Pipe()
        self.name = name
        self.process = context.Process(
            target=_child_main, args=(factory, args, child_conn), name=name, daemon=True
        )
        self.process.start()
        child_conn.close()
        self.info: Any = None

    def ready(self, timeout: float = 60.0) -> Any:
        self.info = self.reply(timeout)
        return self.info

    def send(self, method: str, **kwargs: Any) -> None:
        self.conn.send((method, kwargs))

    def reply(self, timeout: float = 120.0) -> Any:
        if not self.conn.poll(timeout):
            raise RuntimeError(f"{self.name} did not answer within {timeout:g} s")
        status, value = self.conn.recv()
        if status != "ok":
            raise RuntimeError(f"{self.name}: {value}")
        return value

    def call(self, method: str, **kwargs: Any) -> Any:
        self.send(method, **kwargs)
        return self.reply()

    async def acall(self, method: str, **kwargs: Any) -> Any:
        """``call`` from a thread, so that this process's event loop keeps serving."""
        return await asyncio.to_thread(self.call, method, **kwargs)

    def cpu(self) -> float:
        return float(self.call("cpu"))

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.send(("stop", {}))
        self.process.join(5)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(5)


@contextlib.contextmanager
def children(*started: Child) -> Iterator[list[Child]]:
    """The children, each ready; all stopped afterwards."""
    try:
        for child in started:
            child.ready()
        yield list(started)
    finally:
        for child in started:
            child.stop()


# -- Redis -------------------------------------------------------------------------------


@contextlib.contextmanager
def redis_server() -> Iterator[RedisServer]:
    """A throwaway redis-server on a spare loopback port."""
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.cleanup()


@dataclass
class RedisInfo:
    """One ``INFO all``: commands by name (calls, usec, failed + rejected), server CPU
    seconds, connections accepted so far, memory used, and when it was taken."""

    commands: dict[str, tuple[int, int, int]]
    cpu: float
    connections: int
    memory: int
    at: float

    @classmethod
    async def take(cls, client: Redis) -> RedisInfo:
        info = await client.info("all")
        commands = {
            name.removeprefix("cmdstat_"): (
                int(v["calls"]),
                int(v["usec"]),
                int(v.get("failed_calls", 0)) + int(v.get("rejected_calls", 0)),
            )
            for name, v in info.items()
            if name.startswith("cmdstat_")
        }
        cpu = float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
        connections, memory = int(info["total_connections_received"]), int(info["used_memory"])
        return cls(commands, cpu, connections, memory, time.monotonic())

    def calls_since(self, before: RedisInfo) -> dict[str, int]:
        """Commands run since ``before`` by name (INFO itself left out)."""
        calls = {n: c[0] - before.commands.get(n, (0, 0, 0))[0] for n, c in self.commands.items()}
        return {n: c for n, c in calls.items() if c and n != "info"}


SETUP_COMMANDS = frozenset(  # what redis-py sends on a new connection (and health checks)
    {"client|setinfo", "client|setname", "client|maint_notifications"}
    | {"hello", "select", "auth", "ping"}
)
_SUBCOMMANDS = frozenset({"client", "config", "script", "cluster", "command", "memory"})


def command_name(args: Sequence[Any]) -> str:
    """``client|setinfo`` for a subcommand, else the command in lower case."""
    words = [a.decode() if isinstance(a, bytes) else str(a) for a in args[:2]]
    words = (words[0].split() + words[1:])[:2]
    if len(words) == 2 and words[0].lower() in _SUBCOMMANDS:
        return f"{words[0]}|{words[1]}".lower()
    return words[0].lower() if words else "?"


class RedisWire:
    """What this process's redis-py asyncio connections send while in the ``with`` block:
    writes (each waits for its reply before the connection sends again: one round trip;
    a pipeline is one), those holding only connection set-up, commands by name,
    connections opened."""

    def __init__(self) -> None:
        self.writes = self.setup_writes = self.connections = 0
        self.commands: Counter[str] = Counter()
        self._packed: list[str] = []  # packed since the last write
        self._saved: list[tuple[type, str, Any]] = []

    def counts(self) -> dict[str, Any]:
        keys = ("writes", "setup_writes", "connections")
        return {**{k: getattr(self, k) for k in keys}, "commands": dict(self.commands)}

    @staticmethod
    def since(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
        found = {k: after[k] - before[k] for k in ("writes", "setup_writes", "connections")}
        sent = Counter(after["commands"]) - Counter(before["commands"])
        return {**found, "sent": dict(sent)}

    def __enter__(self) -> RedisWire:
        wire = self
        pack, send = AbstractConnection.pack_command, AbstractConnection.send_packed_command
        connect: Any = Connection._connect

        def pack_command(self: AbstractConnection, *args: Any) -> list[bytes]:
            wire._packed.append(command_name(args))
            return pack(self, *args)

        async def send_packed_command(
            self: AbstractConnection, command: Any, check_health: bool = True
        ) -> None:
            names, wire._packed = wire._packed, []
            wire.writes += 1
            wire.setup_writes += bool(names) and all(n in SETUP_COMMANDS for n in names)
            wire.commands.update(names)
            await send(self, command, check_health)

        async def _connect(self: Connection) -> None:
            wire.connections += 1
            await connect(self)

        for cls, name, value in (
            (AbstractConnection, "pack_command", pack_command),
            (AbstractConnection, "send_packed_command", send_packed_command),
            (Connection, "_connect", _connect),
        ):
            self._saved.append((cls, name, cls.__dict__[name]))
            setattr(cls, name, value)
        return self

    def __exit__(self, *exc: object) -> None:
        for cls, name, value in reversed(self._saved):
            setattr(cls, name, value)
        self._saved.clear()


# -- the model API doubles, by kind -------------------------------------------------------

KEY = "test-key"


@dataclass(frozen=True)
class Spec:
    """One adapter kind: its double, where it listens, what a chat request looks like."""

    kind: str
    double: str  # module:Class under tests.doubles
    prefix: str  # appended to the double's URL to make the provider's base_url
    path: str  # the streamed chat endpoint
    key: str | None
    model: str
    extra: dict[str, Any] = field(default_factory=dict)  # what the adapter adds to the body

    def double_class(self) -> type[LLMDouble]:
        module, _, name = self.double.partition(":")
        cls: type[LLMDouble] = getattr(importlib.import_module("tests.doubles." + module), name)
        return cls


_CHAT = "/v1/chat/completions"
_USAGE = {"stream_options": {"include_usage": True}}
SPECS = {
    s.kind: s
    for s in (
        Spec("openai", "openai_api:OpenAIDouble", "/v1", _CHAT, KEY, "gpt-5-mini", _USAGE),
        Spec("mistral", "mistral_api:MistralDouble", "/v1", _CHAT, KEY, "mistral-small-latest"),
        Spec("llama", "llama_api:LlamaDouble", "/v1", _CHAT, KEY, "Llama-3.3-70B-Instruct"),
        Spec("ollama", "ollama_api:OllamaDouble", "", "/api/chat", None, "llama3.2"),
    )
}


def last_user_text(payload: Any) -> str | None:
    """The last user message of a chat request body (any of the APIs' shapes)."""
    messages = payload.get("messages") if isinstance(payload, dict) else None
    last: str | None = None
    for message in messages if isinstance(messages, list) else []:
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
            elif isinstance(content, dict):
                content = content.get("text", "")
            last = str(content)
    return last


@dataclass
class Timing:
    """Per prompt, at a model double: when its first request arrived, when its first
    stream began (the first piece follows the headers without a pause), how many
    requests it got."""

    arrived: dict[str, float] = field(default_factory=dict)
    first_chunk: dict[str, float] = field(default_factory=dict)
    attempts: Counter[str] = field(default_factory=Counter)


def time_requests(double: LLMDouble) -> Timing:
    """A :class:`Timing` of ``double``'s chat requests (``request["prompt"]`` set)."""
    timing = Timing()

    @web.middleware
    async def note(request: web.Request, handler: Any) -> web.StreamResponse:
        now = time.monotonic()
        if request.method == "POST":
            with contextlib.suppress(ValueError):
                prompt = last_user_text(await request.json())
                if prompt is not None:
                    timing.arrived.setdefault(prompt, now)
                    timing.attempts[prompt] += 1
                    request["prompt"] = prompt
        response: web.StreamResponse = await handler(request)
        return response

    async def prepared(request: web.Request, response: web.StreamResponse) -> None:
        prompt = request.get("prompt")
        if prompt is not None and response.status == 200:
            timing.first_chunk.setdefault(prompt, time.monotonic())

    double.app.middlewares.insert(0, note)
    double.app.on_response_prepare.append(prepared)
    return timing


class FinalsTelegram(TelegramDouble):
    """The fake Bot API, noting every final message (sendMessage) per chat with its time
    and text, and when getUpdates handed out each message (by its text)."""

    def __init__(self) -> None:
        super().__init__()
        self.handed_out = note_handouts(self)
        self.finals: dict[int, list[tuple[float, str]]] = defaultdict(list)
        self.total = 0
        self._events: dict[int | None, asyncio.Event] = {}

    def _api_sendMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        message = super()._api_sendMessage(params)
        chat_id = int(message["chat"]["id"])
        self.finals[chat_id].append((time.monotonic(), str(message.get("text", ""))))
        self.total += 1
        for key in (chat_id, None):
            if (event := self._events.get(key)) is not None:
                event.set()
        return message

    async def wait_finals(self, count: int, seconds: float, chat_id: int | None = None) -> bool:
        """Until a chat (None: all chats) holds ``count`` final messages (True), or
        ``seconds`` (False)."""
        deadline = time.monotonic() + seconds
        event = self._events.setdefault(chat_id, asyncio.Event())
        while (self.total if chat_id is None else len(self.finals[chat_id])) < count:
            if (remaining := deadline - time.monotonic()) <= 0:
                return False
            event.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), remaining)
        return True


def quota_hash(raw: dict[Any, Any]) -> dict[str, Any]:
    """A user's quota hash of a day, read back: ``total`` credits, ``m`` the models'
    counters, ``live`` reservations standing, ``x`` refunded ones."""
    state: dict[str, Any] = {"total": 0, "m": Counter(), "live": 0, "x": 0}
    for field_, value in raw.items():
        name = field_.decode() if isinstance(field_, bytes) else str(field_)
        if name == "total":
            state["total"] = int(value)
        elif name.startswith("m:"):
            state["m"][name[2:]] = int(value)
        elif name.startswith("r:"):
            state["x" if value in (b"x", "x") else "live"] += 1
    state["m"] = +state["m"]  # drop zero counts (a model refunded back to 0)
    return state


def note_handouts(tg: Any) -> dict[str, float]:
    """When the fake Bot API's getUpdates handed out each message, by its text."""
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


def write_catalog(
    path: Path, defaults: dict[str, Any], providers: dict[str, Any], models: list[dict[str, Any]]
) -> Path:
    """A catalog TOML from plain values (strings, numbers, lists of strings)."""

    def table(values: dict[str, Any]) -> list[str]:
        return [f"{k} = {_toml(v)}" for k, v in values.items() if v is not None]

    lines = ["[defaults]", *table(defaults)]
    for name, provider in providers.items():
        lines += ["", f"[providers.{name}]", *table(provider)]
    for model in models:
        lines += ["", "[[models]]", *table(model)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _toml(value: Any) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(map(_toml, value)) + "]"
    return str(value)
