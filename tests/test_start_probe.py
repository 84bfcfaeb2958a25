"""``python -m bot`` probes its providers once its first poll is on its way (not before:
setting up their clients would hold that poll back): the models of a provider nobody can
connect to still leave the menus right after the start."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from tests.doubles.ollama_api import OllamaDouble
from tests.doubles.telegram import TelegramDouble, button_labels
from tests.redis_server import free_port
from tests.support import spawn_bot

CATALOG = """\
[defaults]
model = "local"

[providers.local]
kind = "ollama"
base_url = "{url}"

[providers.away]
kind = "ollama"
base_url = "http://127.0.0.1:{port}"

[[models]]
id = "local"
title = "Local Test"
provider = "local"
name = "llama3.2"

[[models]]
id = "away"
title = "Away Test"
provider = "away"
name = "llama3.2"
"""


async def test_an_unreachable_provider_is_hidden_right_after_the_start(
    redis_url: str, tmp_path: Path
) -> None:
    async with TelegramDouble() as tg, OllamaDouble() as ollama:
        catalog = tmp_path / "models.toml"
        catalog.write_text(CATALOG.format(url=ollama.url, port=free_port()))  # nothing there
        env = {
            "PATH": os.environ.get("PATH", ""),
            "BOT_TOKEN": tg.token,
            "TELEGRAM_API_URL": tg.url,
            "REDIS_URL": redis_url,
            "MODELS_FILE": str(catalog),
            "LOG_LEVEL": "INFO",
        }
        log = tmp_path / "bot.log"
        with log.open("wb") as out:
            process = await spawn_bot(tmp_path, env, out, out)
        try:
            await tg.wait_for("getUpdates", timeout=30)
            deadline = time.monotonic() + 10
            while "provider away" not in log.read_text():
                assert time.monotonic() < deadline, log.read_text()
                await asyncio.sleep(0.05)
            assert "its 1 model(s) are hidden" in log.read_text()
            ann = tg.user(first_name="Ann")
            await ann.send("/model")
            labels = [label for row in button_labels(await ann.next_message()) for label in row]
            assert any("Local Test" in label for label in labels), labels
            assert not any("Away Test" in label for label in labels), labels
            # the reachable provider was probed too (its model listing)
            assert ollama.calls("/api/tags")
        finally:
            if process.returncode is None:
                process.terminate()
                await process.wait()
