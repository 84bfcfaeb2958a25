"""The real bot, in polling mode, against the fake Bot API, one double per provider kind
and a real Redis: what the end-to-end tests drive.

    async with running_bot(redis_url, tmp_path) as h:
        ann = h.tg.user(first_name="Ann")
        await ann.send("hello")
        answer = await ann.next_message()
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from bot.app import App
from bot.catalog import Catalog, load_catalog
from bot.settings import Settings
from bot.webhook import WebhookServer
from tests.doubles.base import DoubleServer
from tests.doubles.llama_api import LlamaDouble
from tests.doubles.mistral_api import MistralDouble
from tests.doubles.ollama_api import OllamaDouble
from tests.doubles.openai_api import OpenAIDouble
from tests.doubles.telegram import TelegramDouble
from tests.redis_server import free_port

# RICH_MESSAGES for the bots these helpers start, unless a test names one: text, as a
# server without rich messages gets; the ``rich_too`` fixture (tests/conftest.py) runs
# a module's scenarios with rich messages as well.
RICH_DEFAULT = {"rich_messages": "off"}

KEYS = {
    "OPENAI_API_KEY": "sk-openai-test",
    "MISTRAL_API_KEY": "mistral-test",
    "LLAMA_API_KEY": "llama-test",
}

CATALOG = """\
[defaults]
model = "gpt"
daily_limit = {daily_limit}
compare = ["gpt", "mistral", "llama"]

[providers.openai]
kind = "openai"
base_url = "{openai}/v1"
api_key_env = "OPENAI_API_KEY"
timeout = {timeout}
max_retries = 1

[providers.mistral]
kind = "mistral"
base_url = "{mistral}/v1"
api_key_env = "MISTRAL_API_KEY"
timeout = {timeout}
max_retries = 1

[providers.llama]
kind = "llama"
base_url = "{llama}/v1"
api_key_env = "LLAMA_API_KEY"
timeout = {timeout}
max_retries = 1

[providers.local]
kind = "ollama"
base_url = "{ollama}"
timeout = {timeout}
max_retries = 1

[[models]]
id = "gpt"
title = "GPT Test"
provider = "openai"
name = "gpt-test"
context = 2000

[[models]]
id = "mistral"
title = "Mistral Test"
provider = "mistral"
name = "mistral-test"

[[models]]
id = "llama"
title = "Llama Test"
provider = "llama"
name = "Llama-Test"

[[models]]
id = "local"
title = "Local Test"
provider = "local"
name = "llama3.2"
{extra}
"""


async def _start_doubles(
    stack: contextlib.AsyncExitStack,
) -> tuple[TelegramDouble, OpenAIDouble, MistralDouble, LlamaDouble, OllamaDouble]:
    """The fake Bot API and one double per provider kind, stopped with ``stack``."""
    doubles = (
        TelegramDouble(),
        OpenAIDouble(key=KEYS["OPENAI_API_KEY"]),
        MistralDouble(key=KEYS["MISTRAL_API_KEY"]),
        LlamaDouble(key=KEYS["LLAMA_API_KEY"]),
        OllamaDouble(),
    )
    for double in doubles:
        await stack.enter_async_context(double)
    return doubles


def write_catalog(tmp_path: Path, **values: Any) -> Path:
    """The test catalog (``CATALOG``) filled in, as ``models.toml`` in ``tmp_path``."""
    path = tmp_path / "models.toml"
    path.write_text(CATALOG.format(**values))
    return path


def _catalog_for(
    tmp_path: Path,
    openai: OpenAIDouble,
    mistral: MistralDouble,
    llama: LlamaDouble,
    ollama: OllamaDouble,
    timeout: float,
    daily_limit: int,
    extra: str,
) -> Path:
    """The test catalog with every provider pointed at its double."""
    return write_catalog(
        tmp_path,
        openai=openai.url,
        mistral=mistral.url,
        llama=llama.url,
        ollama=ollama.url,
        timeout=timeout,
        daily_limit=daily_limit,
        extra=extra,
    )


@dataclass
class Harness:
    tg: TelegramDouble
    openai: OpenAIDouble
    mistral: MistralDouble
    llama: LlamaDouble
    ollama: OllamaDouble
    app: App
    catalog: Catalog
    settings: Settings
    task: asyncio.Task[None] | None = None
    doubles: dict[str, Any] = field(default_factory=dict)

    def llm(self, model_id: str) -> Any:
        """The double that serves a catalog model."""
        provider = self.catalog.all_models[model_id].provider
        return {"openai": self.openai, "mistral": self.mistral, "llama": self.llama}.get(
            provider, self.ollama
        )

    def llm_requests(self) -> list[Any]:
        return [
            r
            for d in (self.openai, self.mistral, self.llama, self.ollama)
            for r in d.requests
            if r.method == "POST"
        ]


@contextlib.asynccontextmanager
async def running_bot(
    redis_url: str,
    tmp_path: Path,
    *,
    daily_limit: int = 0,
    timeout: float = 2.0,
    extra_catalog: str = "",
    **settings: Any,
) -> AsyncIterator[Harness]:
    """Start the doubles and the real app (polling); stop everything afterwards."""
    async with contextlib.AsyncExitStack() as stack:
        tg, openai, mistral, llama, ollama = await _start_doubles(stack)
        path = _catalog_for(
            tmp_path, openai, mistral, llama, ollama, timeout, daily_limit, extra_catalog
        )
        config = Settings(
            bot_token=tg.token,
            telegram_api_url=tg.url,
            redis_url=redis_url,
            models_file=path,
            shutdown_grace_seconds=settings.pop("shutdown_grace_seconds", 3.0),
            rich_messages=settings.pop("rich_messages", RICH_DEFAULT["rich_messages"]),
            **settings,
        )
        catalog = load_catalog(path, KEYS)
        app = App.build(config, catalog, KEYS)
        h = Harness(tg, openai, mistral, llama, ollama, app, catalog, config)
        h.task = asyncio.create_task(app.run_polling(handle_signals=False))
        await tg.wait_for("getMe", timeout=10)  # polling starts right after
        try:
            yield h
        finally:
            with contextlib.suppress(RuntimeError):
                await app.dispatcher.stop_polling()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(h.task, 5)
            await app.close()


# --- webhook mode ----------------------------------------------------------------------

WEBHOOK_SECRET = "webhook-secret-for-the-tests"
WEBHOOK_PATH = "/telegram/webhook"


@dataclass
class Replica:
    """One bot process's worth: its app and its webhook server on its own port."""

    app: App
    server: WebhookServer
    url: str  # where this replica's webhook route listens (http://127.0.0.1:port/path)

    @property
    def base_url(self) -> str:
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}"


class RoundRobin(DoubleServer):
    """A load balancer in front of the replicas: each request goes to the next replica in
    turn (``duplicate_next()``: the next ones go to every replica at once, like an update
    Telegram delivers twice). ``routed`` says which replica got which update."""

    def __init__(self, targets: list[str]) -> None:
        super().__init__()
        self.targets = targets
        self.routed: list[tuple[int, int]] = []  # (update_id, replica index)
        self._next = 0
        self._duplicates = 0
        self._client: aiohttp.ClientSession | None = None
        self.app.router.add_route("*", "/{path:.*}", self._forward)

    def duplicate_next(self, times: int = 1) -> None:
        self._duplicates += times

    async def stop(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
        await super().stop()

    async def _forward(self, request: web.Request) -> web.Response:
        if self._client is None:
            self._client = aiohttp.ClientSession()
        body = await request.read()
        update_id = int(json.loads(body).get("update_id", 0)) if body else 0
        if self._duplicates:
            self._duplicates -= 1
            chosen = list(range(len(self.targets)))
        else:
            chosen = [self._next]
            self._next = (self._next + 1) % len(self.targets)
        headers = {
            k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")
        }

        async def send(index: int) -> tuple[int, bytes]:
            self.routed.append((update_id, index))
            async with self._client.request(  # type: ignore[union-attr]
                request.method, self.targets[index], data=body, headers=headers
            ) as response:
                return response.status, await response.read()

        answers = await asyncio.gather(*(send(i) for i in chosen))
        status, payload = min(answers)  # the best answer, as Telegram would count it
        return web.Response(status=status, body=payload)


@dataclass
class WebhookHarness(Harness):
    """The harness of :func:`running_webhook_bot`: ``app`` is the first replica's."""

    replicas: list[Replica] = field(default_factory=list)
    webhook_url: str = ""  # what the bot gave setWebhook (the balancer's, with replicas)
    balancer: RoundRobin | None = None
    client: aiohttp.ClientSession | None = None

    async def post(
        self, update: dict[str, Any], *, replica: int = 0, secret: str | None = WEBHOOK_SECRET
    ) -> int:
        """POST an update straight to one replica, as Telegram would; returns the status."""
        assert self.client is not None
        headers = {} if secret is None else {"X-Telegram-Bot-Api-Secret-Token": secret}
        async with self.client.post(
            self.replicas[replica].url, json=update, headers=headers
        ) as response:
            await response.read()
            return response.status

    async def get(self, path: str, *, replica: int = 0) -> tuple[int, str]:
        assert self.client is not None
        async with self.client.get(self.replicas[replica].base_url + path) as response:
            return response.status, await response.text()

    async def idle(self, timeout: float = 5.0) -> None:
        """Wait until every update a replica accepted has been handled."""
        async with asyncio.timeout(timeout):
            for replica in self.replicas:
                await replica.server.wait_idle()


@contextlib.asynccontextmanager
async def running_webhook_bot(
    redis_url: str,
    tmp_path: Path,
    *,
    replicas: int = 1,
    daily_limit: int = 0,
    timeout: float = 2.0,
    extra_catalog: str = "",
    **settings: Any,
) -> AsyncIterator[WebhookHarness]:
    """The doubles and ``replicas`` real apps in webhook mode on one Redis, each serving
    its own port on 127.0.0.1. With more than one, the webhook URL is a round-robin
    balancer in front of them; with one, the replica itself."""
    async with contextlib.AsyncExitStack() as stack:
        tg, openai, mistral, llama, ollama = await _start_doubles(stack)
        path = _catalog_for(
            tmp_path, openai, mistral, llama, ollama, timeout, daily_limit, extra_catalog
        )
        catalog = load_catalog(path, KEYS)
        ports = [free_port() for _ in range(replicas)]
        urls = [f"http://127.0.0.1:{port}{WEBHOOK_PATH}" for port in ports]
        balancer = None
        if replicas > 1:
            balancer = await stack.enter_async_context(RoundRobin(urls))
            public_url = balancer.url + WEBHOOK_PATH
        else:
            public_url = urls[0]
        grace = settings.pop("shutdown_grace_seconds", 3.0)
        settings.setdefault("rich_messages", RICH_DEFAULT["rich_messages"])
        client = await stack.enter_async_context(aiohttp.ClientSession())
        started: list[Replica] = []
        for port, url in zip(ports, urls, strict=True):
            config = Settings(
                bot_token=tg.token,
                telegram_api_url=tg.url,
                redis_url=redis_url,
                models_file=path,
                webhook_url=public_url,
                webhook_secret=WEBHOOK_SECRET,
                webhook_host="127.0.0.1",
                webhook_port=port,
                shutdown_grace_seconds=grace,
                **settings,
            )
            app = App.build(config, catalog, KEYS)
            server = WebhookServer(app)
            stack.push_async_callback(app.close)  # after the server stopped (LIFO)
            stack.push_async_callback(server.stop)
            mark = tg.mark()
            await server.start()
            await tg.wait_for("setWebhook", since=mark, timeout=10)
            started.append(Replica(app, server, url))
        first = started[0].app
        h = WebhookHarness(
            tg,
            openai,
            mistral,
            llama,
            ollama,
            first,
            catalog,
            first.settings,
            replicas=started,
            webhook_url=public_url,
            balancer=balancer,
            client=client,
        )
        yield h
