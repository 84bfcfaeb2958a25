"""``python -m bot`` that can't reach Telegram, or whose token Telegram refuses, says so
in one sentence (and how to check the set-up) and exits non-zero: no traceback."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from tests.doubles.telegram import TelegramDouble
from tests.redis_server import free_port
from tests.support import spawn_bot


async def run_bot(tmp_path: Path, token: str, api_url: str) -> tuple[int, str]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "BOT_TOKEN": token,
        "TELEGRAM_API_URL": api_url,
        "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
        "LOG_LEVEL": "WARNING",
    }
    pipe = asyncio.subprocess.PIPE
    process = await spawn_bot(tmp_path, env, pipe, pipe)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, (out + err).decode()


async def test_no_telegram_is_one_sentence(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    code, output = await run_bot(tmp_path, "123:abc", url)
    assert code == 1
    assert f"The Telegram Bot API at {url} could not be reached" in output
    assert "python -m bot check" in output
    assert "Traceback" not in output


async def test_a_wrong_token_is_one_sentence(tmp_path: Path) -> None:
    async with TelegramDouble() as tg:
        code, output = await run_bot(tmp_path, "999:wrong", tg.url)
    assert code == 1
    assert "Telegram refused the bot token (BOT_TOKEN)" in output
    assert "999:wrong" not in output  # the token is never printed
    assert "Traceback" not in output
