"""The real command line, ``python -m bot``, as an operator runs it: it starts polling,
answers, and on SIGTERM stops taking updates, lets the answers in flight finish (for
``SHUTDOWN_GRACE_SECONDS``) and exits; its log never shows the bot token or a key."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

from tests.doubles.base import Reply
from tests.doubles.ollama_api import OllamaDouble
from tests.doubles.telegram import TelegramDouble
from tests.support import spawn_bot, until_started

OLLAMA_KEY = "ollama-secret-key-4711"

CATALOG = """\
[defaults]
model = "local"
daily_limit = 0

[providers.local]
kind = "ollama"
base_url = "{url}"
timeout = 30
max_retries = 0
{key_line}

[[models]]
id = "local"
title = "Local Test"
provider = "local"
name = "llama3.2"
"""


@dataclass
class BotProcess:
    process: asyncio.subprocess.Process
    stdout: Path
    stderr: Path

    @property
    def output(self) -> str:
        """Everything the process wrote (stdout and stderr), so far."""
        return self.stdout.read_text(errors="replace") + self.stderr.read_text(errors="replace")

    def terminate(self) -> float:
        """Send SIGTERM; returns when it was sent (time.monotonic)."""
        self.process.send_signal(signal.SIGTERM)
        return time.monotonic()

    async def exit_code(self, timeout: float) -> int:
        return await asyncio.wait_for(self.process.wait(), timeout)


@contextlib.asynccontextmanager
async def bot_process(
    tmp_path: Path,
    redis_url: str,
    tg: TelegramDouble,
    ollama: OllamaDouble,
    *,
    grace: float = 5,
    key: str | None = None,
) -> AsyncIterator[BotProcess]:
    """``python -m bot`` in ``tmp_path`` (no stray .env), killed if a test leaves it."""
    catalog = tmp_path / "models.toml"
    key_line = 'api_key_env = "OLLAMA_API_KEY"' if key else ""
    catalog.write_text(CATALOG.format(url=ollama.url, key_line=key_line))
    env = {
        "PATH": os.environ.get("PATH", ""),
        "BOT_TOKEN": tg.token,
        "TELEGRAM_API_URL": tg.url,
        "REDIS_URL": redis_url,
        "MODELS_FILE": str(catalog),
        "SHUTDOWN_GRACE_SECONDS": str(grace),
        "LOG_LEVEL": "INFO",
    }
    if key:
        env["OLLAMA_API_KEY"] = key
    out, err = tmp_path / "stdout.log", tmp_path / "stderr.log"
    with out.open("wb") as out_file, err.open("wb") as err_file:
        process = await spawn_bot(tmp_path, env, out_file, err_file)
    bot = BotProcess(process, out, err)
    try:
        yield bot
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        print(f"--- python -m bot exited {process.returncode}; its output:\n{bot.output}")


async def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition`` until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)


async def polling(tg: TelegramDouble, bot: BotProcess) -> None:
    """Wait until the bot's first getUpdates has arrived (a long poll is open)."""
    await until_started(
        bot.process,
        lambda: any(r.path.endswith("/getUpdates") for r in tg.requests),
        "getUpdates",
        lambda: bot.output,
    )


def answer(words: int) -> str:
    return " ".join(f"word{i}" for i in range(1, words + 1))


async def test_answers_then_sigterm_lets_the_answer_in_flight_finish(
    redis_url: str, tmp_path: Path
) -> None:
    """(One process for both, to keep the file fast: starting one takes ~2.5 s here.)"""
    text = answer(20)  # 20 pieces, 0.1 s apart: about 2 s of streaming
    grace = 5.0
    async with (
        TelegramDouble() as tg,
        OllamaDouble() as ollama,
        bot_process(tmp_path, redis_url, tg, ollama, grace=grace) as bot,
    ):
        # it starts polling and answers
        await polling(tg, bot)
        ann = tg.user(first_name="Ann")
        await ann.send("hello there")
        assert (await ann.next_message(timeout=10))["text"] == "echo: hello there"

        # SIGTERM while the next answer is streaming
        ollama.default = Reply(text=text, chunk_delay=0.1)
        await ann.send("tell me a long story")
        # streaming: the model was asked and the first words are on the screen
        await tg.wait_for("sendRichMessageDraft", lambda c: "word1" in (c.text or ""), timeout=10)
        signalled = bot.terminate()
        await wait_until(lambda: "Polling stopped" in bot.output, 5, "polling to stop")
        await ann.send("a message after polling stopped")
        final = await ann.next_message(timeout=grace)
        assert final["text"] == text  # delivered complete, not cut at the signal
        code = await bot.exit_code(timeout=grace + 5)
        exited = time.monotonic()
        assert code == 0, bot.output
        assert exited - signalled < grace, bot.output

        # it stopped taking updates: no poll while it drained, the late message unanswered
        late_polls = [c for c in tg.calls("getUpdates") if c.time > signalled + 1.0]
        assert late_polls == []
        asked = [r.json["messages"][-1]["content"] for r in ollama.calls("/api/chat")]
        assert asked == ["hello there", "tell me a long story"]
        assert [m["text"] for m in ann.bot_messages()] == ["echo: hello there", text]
        assert "did not finish in time" not in bot.output


async def test_sigterm_does_not_wait_beyond_the_grace(redis_url: str, tmp_path: Path) -> None:
    grace = 1.0
    async with (
        TelegramDouble() as tg,
        OllamaDouble() as ollama,
        bot_process(tmp_path, redis_url, tg, ollama, grace=grace) as bot,
    ):
        await polling(tg, bot)
        ollama.default = Reply(text=answer(50), chunk_delay=0.2)  # about 10 s
        ann = tg.user(first_name="Ann")
        await ann.send("an endless story please")
        await tg.wait_for("sendRichMessageDraft", lambda c: "word1" in (c.text or ""), timeout=10)
        signalled = bot.terminate()
        code = await bot.exit_code(timeout=grace + 8)
        elapsed = time.monotonic() - signalled
        assert elapsed < grace + 4, f"exited {elapsed:.1f} s after SIGTERM"
        assert code == 0, bot.output
        assert "shutdown: 1 answer(s) did not finish in time" in bot.output
        # what the user saw is kept, marked as cut short by the restart
        final = tg.calls("sendRichMessage", ann.id)[-1].text or ""
        assert final.startswith("word1 word2") and "the bot was restarting" in final


async def test_log_never_shows_the_token_or_keys(redis_url: str, tmp_path: Path) -> None:
    async with (
        TelegramDouble() as tg,
        OllamaDouble(key=OLLAMA_KEY) as ollama,
        bot_process(tmp_path, redis_url, tg, ollama, key=OLLAMA_KEY) as bot,
    ):
        await polling(tg, bot)
        ann = tg.user(first_name="Ann")
        await ann.send("first question")
        assert (await ann.next_message(timeout=10))["text"] == "echo: first question"
        assert ollama.calls("/api/chat")[0].headers["Authorization"] == f"Bearer {OLLAMA_KEY}"

        # the provider fails, and its error body repeats the secrets it was sent
        ollama.default = Reply(
            status=500, error=f"internal error for key {OLLAMA_KEY} via {tg.url}/bot{tg.token}/"
        )
        await ann.send("second question")
        failure = await ann.next_message(timeout=10)
        assert "Local Test" in failure["text"]
        assert OLLAMA_KEY not in failure["text"] and tg.token not in failure["text"]
        bot.terminate()
        assert await bot.exit_code(timeout=10) == 0, bot.output

    output = bot.output
    assert "internal error for key ***" in output  # the failure was logged, masked
    assert "/bot***/" in output
    assert tg.token not in output
    assert OLLAMA_KEY not in output
