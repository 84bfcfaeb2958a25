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
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.app import App
from bot.catalog import Catalog, load_catalog
from bot.settings import Settings
from tests.doubles.llama_api import LlamaDouble
from tests.doubles.mistral_api import MistralDouble
from tests.doubles.ollama_api import OllamaDouble
from tests.doubles.openai_api import OpenAIDouble
from tests.doubles.telegram import TelegramDouble

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
    tg, openai, mistral, llama, ollama = (
        TelegramDouble(),
        OpenAIDouble(key=KEYS["OPENAI_API_KEY"]),
        MistralDouble(key=KEYS["MISTRAL_API_KEY"]),
        LlamaDouble(key=KEYS["LLAMA_API_KEY"]),
        OllamaDouble(),
    )
    async with contextlib.AsyncExitStack() as stack:
        for double in (tg, openai, mistral, llama, ollama):
            await stack.enter_async_context(double)
        path = tmp_path / "models.toml"
        path.write_text(
            CATALOG.format(
                openai=openai.url,
                mistral=mistral.url,
                llama=llama.url,
                ollama=ollama.url,
                timeout=timeout,
                daily_limit=daily_limit,
                extra=extra_catalog,
            )
        )
        config = Settings(
            bot_token=tg.token,
            telegram_api_url=tg.url,
            redis_url=redis_url,
            models_file=path,
            shutdown_grace_seconds=settings.pop("shutdown_grace_seconds", 3.0),
            **settings,
        )
        catalog = load_catalog(path, KEYS)
        app = App.build(config, catalog)
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
