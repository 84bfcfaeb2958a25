"""The provider pool's reachability probe: a provider nobody can connect to has its
models hidden (in the background, never delaying start) until it answers again; one
that answers anything, even an error, stays."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from aiohttp import web

from bot.catalog import load_catalog
from bot.services import pool as pool_module
from bot.services.pool import ProviderPool
from tests.doubles.ollama_api import OllamaDouble
from tests.doubles.openai_api import OpenAIDouble
from tests.redis_server import free_port

CATALOG = """\
[defaults]
model = "gpt"
compare = ["gpt", "local"]

[providers.openai]
kind = "openai"
base_url = "{openai}/v1"
api_key_env = "OPENAI_API_KEY"

[providers.local]
kind = "ollama"
base_url = "{ollama}"

[[models]]
id = "gpt"
title = "GPT"
provider = "openai"
name = "gpt-test"

[[models]]
id = "local"
title = "Local"
provider = "local"
name = "llama3.2"
"""


def catalog_for(tmp_path: Path, openai: str, ollama: str, key: str = "test-key"):
    path = tmp_path / "models.toml"
    path.write_text(CATALOG.format(openai=openai, ollama=ollama))
    return load_catalog(path, {"OPENAI_API_KEY": key})


async def test_an_unreachable_provider_is_hidden_in_the_background(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with OpenAIDouble() as openai:
        catalog = catalog_for(tmp_path, openai.url, f"http://127.0.0.1:{free_port()}")
        pool = ProviderPool(catalog)
        assert "local" in catalog.models  # built at once; the probe runs in the background
        with caplog.at_level(logging.WARNING):
            await pool.probed()
        assert catalog.unreachable == {"local"}
        assert list(catalog.models) == ["gpt"]
        assert catalog.default_compare == ["gpt"]
        assert any("provider local (ollama" in r.getMessage() for r in caplog.records)
        assert [r.method for r in openai.requests] == ["GET"]  # one cheap listing
        await pool.aclose()


async def test_a_provider_that_answers_an_error_is_not_hidden(tmp_path: Path) -> None:
    async with OpenAIDouble() as openai, OllamaDouble() as ollama:
        catalog = catalog_for(tmp_path, openai.url, ollama.url, key="a-wrong-key")
        pool = ProviderPool(catalog)
        await pool.probed()
        assert catalog.unreachable == set()
        assert list(catalog.models) == ["gpt", "local"]
        await pool.aclose()


async def test_nothing_is_hidden_when_no_chat_provider_answers(tmp_path: Path) -> None:
    dead = [f"http://127.0.0.1:{free_port()}" for _ in range(2)]
    catalog = catalog_for(tmp_path, dead[0], dead[1])
    pool = ProviderPool(catalog)
    await pool.probed()
    assert catalog.unreachable == set()
    assert list(catalog.models) == ["gpt", "local"]
    await pool.aclose()


async def test_a_provider_that_comes_up_later_is_shown_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pool_module, "REPROBE_SECONDS", 0.1)
    port = free_port()
    async with OpenAIDouble() as openai:
        catalog = catalog_for(tmp_path, openai.url, f"http://127.0.0.1:{port}")
        pool = ProviderPool(catalog)
        await pool.probed()
        assert catalog.unreachable == {"local"}
        ollama = OllamaDouble()  # Ollama starts, at the catalog's address
        runner = web.AppRunner(ollama.app, handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            async with asyncio.timeout(10):
                while catalog.unreachable:
                    await asyncio.sleep(0.05)
            assert list(catalog.models) == ["gpt", "local"]
        finally:
            await pool.aclose()
            await runner.cleanup()


def test_a_pool_built_outside_an_event_loop_does_not_probe(tmp_path: Path) -> None:
    catalog = catalog_for(tmp_path, "http://127.0.0.1:1", "http://127.0.0.1:2")
    pool = ProviderPool(catalog)
    assert pool._watch is None
    asyncio.run(pool.aclose())
