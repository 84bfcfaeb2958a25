"""``python -m bot check`` against the doubles and a real Redis, healthy and broken."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bot.check import run_check
from bot.settings import Settings
from tests.doubles.gemini_api import GeminiDouble
from tests.doubles.llama_api import LlamaDouble
from tests.doubles.mistral_api import MistralDouble
from tests.doubles.ollama_api import OllamaDouble
from tests.doubles.openai_api import OpenAIDouble
from tests.doubles.telegram import TelegramDouble
from tests.harness import CATALOG, KEYS, write_catalog
from tests.redis_server import free_port

GEMINI_KEY = "gemini-test"

GEMINI = """
[providers.gemini]
kind = "gemini"
base_url = "{gemini}/v1beta"
api_key_env = "GEMINI_API_KEY"
timeout = 2

[[models]]
id = "flash"
title = "Gemini Flash"
provider = "gemini"
name = "gemini-2.5-flash"

[[models]]
id = "banana"
title = "Nano Banana"
provider = "gemini"
name = "gemini-2.5-flash-image"
type = "image"
edits = true

[[models]]
id = "painter"
title = "GPT Image"
provider = "openai"
name = "gpt-image-1"
type = "image"

[[models]]
id = "routed"
title = "Routed Image"
provider = "openai"
name = "google/gemini-2.5-flash-image"
type = "image"
image_api = "chat"
edits = true
"""


async def check(
    tmp_path: Path, redis_url: str, environ: dict[str, str], extra: str = "", **overrides: str
):
    async with (
        TelegramDouble() as tg,
        OpenAIDouble(key=KEYS["OPENAI_API_KEY"]) as openai,
        MistralDouble(key=KEYS["MISTRAL_API_KEY"]) as mistral,
        LlamaDouble(key=KEYS["LLAMA_API_KEY"]) as llama,
        OllamaDouble() as ollama,
        GeminiDouble(key=GEMINI_KEY) as gemini,
    ):
        urls = {
            "openai": openai.url,
            "mistral": mistral.url,
            "llama": llama.url,
            "ollama": ollama.url,
        }
        urls.update(overrides)
        settings = Settings(
            bot_token=tg.token,
            telegram_api_url=tg.url,
            redis_url=redis_url,
            models_file=write_catalog(
                tmp_path,
                timeout=2,
                daily_limit=0,
                extra=extra.replace("{gemini}", overrides.get("gemini", gemini.url)),
                **{k: v for k, v in urls.items() if k != "gemini"},
            ),
        )
        lines: list[str] = []
        status = await run_check(settings, environ, out=lines.append)
        return status, "\n".join(lines), tg.token


async def test_all_reachable(tmp_path: Path, redis_url: str) -> None:
    status, output, token = await check(tmp_path, redis_url, KEYS)
    assert status == 0, output
    assert "all reachable" in output
    assert "getMe ok: @manymodels_bot" in output
    for provider in ("openai", "mistral", "llama", "local"):
        assert f"provider {provider}" in output
    assert output.count(" ok ") >= 7  # catalog, redis, telegram, four providers
    assert token not in output


async def test_missing_key_hides_models_without_failing(tmp_path: Path, redis_url: str) -> None:
    environ = {k: v for k, v in KEYS.items() if k != "LLAMA_API_KEY"}
    status, output, _ = await check(tmp_path, redis_url, environ)
    assert status == 0, output
    assert "hidden: LLAMA_API_KEY is not set" in output
    assert "provider llama" not in output
    # what the defaults became is said, not silent
    assert "compare models 'llama' are hidden: the default compare set is" in output


async def test_wrong_key_and_unreachable_provider_fail(tmp_path: Path, redis_url: str) -> None:
    environ = {**KEYS, "MISTRAL_API_KEY": "wrong-key"}
    dead = f"http://127.0.0.1:{free_port()}"
    status, output, _ = await check(tmp_path, redis_url, environ, ollama=dead)
    assert status == 1
    lines = {line.split()[1]: line for line in output.splitlines() if line.startswith("provider")}
    assert "FAIL" in lines["mistral"] and "AuthenticationError" in lines["mistral"]
    assert "FAIL" in lines["local"] and "UnreachableError" in lines["local"]
    assert " ok " in lines["openai"]
    assert "wrong-key" not in output
    assert "2 problem(s)" in output


async def test_the_gemini_provider_and_every_image_model_are_shown(
    tmp_path: Path, redis_url: str
) -> None:
    environ = {**KEYS, "GEMINI_API_KEY": GEMINI_KEY}
    status, output, _ = await check(tmp_path, redis_url, environ, extra=GEMINI)
    assert status == 0, output
    lines = {line.split()[0] + " " + line.split()[1]: line for line in output.splitlines()}
    assert " ok " in lines["provider gemini"] and "gemini at http://127.0.0.1" in output
    assert GEMINI_KEY not in output
    banana = lines["image banana"]
    assert " ok " in banana
    assert "gemini-2.5-flash-image on gemini (gemini), draws and edits photos" in banana
    assert "the default for /image" in banana
    assert "draws (no edits)" in lines["image painter"]
    routed = lines["image routed"]
    assert "(openai (chat completions))" in routed and "not listed by the provider" in routed


async def test_image_models_of_a_provider_without_its_key_are_shown_hidden(
    tmp_path: Path, redis_url: str
) -> None:
    status, output, _ = await check(tmp_path, redis_url, KEYS, extra=GEMINI)
    assert status == 0, output
    (banana,) = [line for line in output.splitlines() if line.startswith("image banana")]
    assert "hidden: GEMINI_API_KEY is not set" in banana
    assert "provider gemini" not in output
    assert "image model" not in output  # no [defaults] image: nothing fell back


async def test_a_wrong_gemini_key_fails_the_provider(tmp_path: Path, redis_url: str) -> None:
    environ = {**KEYS, "GEMINI_API_KEY": "wrong-gemini-key"}
    status, output, _ = await check(tmp_path, redis_url, environ, extra=GEMINI)
    assert status == 1
    (line,) = [line for line in output.splitlines() if line.startswith("provider gemini")]
    assert "FAIL" in line and "AuthenticationError" in line and "API_KEY_INVALID" not in line
    assert "wrong-gemini-key" not in output
    (banana,) = [line for line in output.splitlines() if line.startswith("image banana")]
    assert "its provider failed the check" in banana


async def test_redis_down_fails(tmp_path: Path) -> None:
    status, output, _ = await check(tmp_path, f"redis://127.0.0.1:{free_port()}/0", KEYS)
    assert status == 1
    assert any(line.startswith("redis") and "FAIL" in line for line in output.splitlines())


def test_bad_catalog_exits_non_zero_naming_the_problem(tmp_path: Path) -> None:
    """The command line itself, as an operator runs it."""
    bad = tmp_path / "models.toml"
    bad.write_text(
        CATALOG.format(
            openai="http://127.0.0.1:1",
            mistral="http://127.0.0.1:1",
            llama="http://127.0.0.1:1",
            ollama="http://127.0.0.1:1",
            timeout=2,
            daily_limit=0,
            extra="",
        ).replace('kind = "ollama"', 'kind = "olama"')
    )
    env = {
        "PATH": os.environ.get("PATH", ""),
        "BOT_TOKEN": "1:secret-token",
        "MODELS_FILE": str(bad),
        "TELEGRAM_API_URL": "http://127.0.0.1:1",
    }
    result = subprocess.run(
        [sys.executable, "-m", "bot", "check"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "unknown kind 'olama'" in result.stdout + result.stderr
    assert "[providers.local]" in result.stdout + result.stderr
