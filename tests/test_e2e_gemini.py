"""End to end with the native Gemini API: the real bot, the fake Bot API, a Gemini double
speaking Google's own format, and a real Redis. Chat, photos, thoughts (never shown as
the answer, never kept in history), the model declining, failures and their refunds,
/image with a Gemini image model."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.texts import EN, RU
from tests import harness
from tests.doubles.base import Reply
from tests.doubles.gemini_api import GeminiDouble, GeminiReply
from tests.doubles.media import PNG_SIGNATURE, tiny_png
from tests.doubles.telegram import button_labels
from tests.harness import Harness, running_bot

pytestmark = pytest.mark.asyncio

GEMINI_KEY = "gemini-test-key"
PHOTO = b"\xff\xd8\xff\xe0\x00\x10JFIF-gemini-" + bytes(range(256))

GEMINI = """
[providers.gemini]
kind = "gemini"
base_url = "{url}/v1beta"
api_key_env = "GEMINI_API_KEY"
timeout = 2
max_retries = 1

[[models]]
id = "gem"
title = "Gemini Test"
provider = "gemini"
name = "gemini-test-flash"
vision = true
context = 100000

[[models]]
id = "banana"
title = "Banana Test"
provider = "gemini"
name = "gemini-test-image"
type = "image"
edits = true
cost = 3
daily_limit = 2
"""


@contextlib.asynccontextmanager
async def gemini_bot(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **options: Any
) -> AsyncIterator[tuple[Harness, GeminiDouble]]:
    """The harness's bot with a Gemini provider (its key set) pointed at a double."""
    monkeypatch.setitem(harness.KEYS, "GEMINI_API_KEY", GEMINI_KEY)
    extra = options.pop("extra_catalog", "")
    async with GeminiDouble(key=GEMINI_KEY) as gemini:
        catalog = GEMINI.replace("{url}", gemini.url) + extra
        async with running_bot(redis_url, tmp_path, extra_catalog=catalog, **options) as h:
            yield h, gemini


async def on_gemini(user: Any) -> None:
    await user.send("/model gem")
    assert "Gemini Test" in (await user.next_message())["text"]


async def credits_left(user: Any) -> str:
    await user.send("/limits")
    return str((await user.next_message())["text"])


def assert_token_never_left(h: Harness, gemini: GeminiDouble) -> None:
    for request in gemini.requests:
        seen = request.path + json.dumps(request.headers) + request.body.decode("latin-1")
        assert h.tg.token not in seen and "/file/bot" not in seen


async def test_chat_streams_from_the_native_api_and_keeps_the_conversation(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with gemini_bot(redis_url, tmp_path, monkeypatch) as (h, gemini):
        ann = h.tg.user(first_name="Ann")
        await on_gemini(ann)
        await ann.send("what is the capital of France?")
        assert (await ann.next_message())["text"] == "echo: what is the capital of France?"
        await ann.send("and of Italy?")
        assert (await ann.next_message())["text"] == "echo: and of Italy?"
        last = gemini.calls(":streamGenerateContent")[-1]
        assert last.path == "/v1beta/models/gemini-test-flash:streamGenerateContent"
        assert last.headers["x-goog-api-key"] == GEMINI_KEY
        assert last.json["contents"] == [
            {"role": "user", "parts": [{"text": "what is the capital of France?"}]},
            {"role": "model", "parts": [{"text": "echo: what is the capital of France?"}]},
            {"role": "user", "parts": [{"text": "and of Italy?"}]},
        ]
        assert h.openai.calls("/chat/completions") == []


async def test_thoughts_are_shown_apart_never_the_answer_nor_history(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with gemini_bot(redis_url, tmp_path, monkeypatch) as (h, gemini):
        ann = h.tg.user(first_name="Ann")
        await on_gemini(ann)
        gemini.queue.append(
            GeminiReply(text="It is 42.", thoughts=["SECRET-THOUGHT: six", " times seven"])
        )
        await ann.send("what is six times seven?")
        answer = await ann.next_message()
        # shown apart, collapsed above the answer (SPEC "Rich answers"), never as its text
        assert answer["text"].endswith("\n\nIt is 42.")
        [quote] = [e for e in answer["entities"] if e["type"] == "expandable_blockquote"]
        assert "SECRET-THOUGHT" in answer["text"][: quote["length"]]
        await ann.send("why?")
        await ann.next_message()
        contents = gemini.calls(":streamGenerateContent")[-1].json["contents"]
        assert contents[1] == {"role": "model", "parts": [{"text": "It is 42."}]}
        assert "SECRET-THOUGHT" not in json.dumps(contents)
        keys = await h.app.redis.keys("*")
        for key in keys:
            if (await h.app.redis.type(key)) == b"list":
                stored = await h.app.redis.lrange(key, 0, -1)
                assert not any(b"SECRET-THOUGHT" in item for item in stored)


async def test_a_photo_reaches_gemini_as_inline_data(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with gemini_bot(redis_url, tmp_path, monkeypatch) as (h, gemini):
        ann = h.tg.user(first_name="Ann")
        await on_gemini(ann)
        await ann.send_photo(PHOTO, caption="what is this?")
        assert (await ann.next_message())["text"] == "echo: what is this?"
        (seen,) = gemini.images
        assert seen.data == PHOTO and seen.mime == "image/jpeg" and seen.role == "user"
        assert_token_never_left(h, gemini)


async def test_a_safety_block_is_declined_and_free(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with gemini_bot(redis_url, tmp_path, monkeypatch, daily_limit=10) as (h, gemini):
        ann = h.tg.user(first_name="Ann")
        await on_gemini(ann)
        gemini.queue.append(GeminiReply(block="SAFETY"))
        await ann.send("something risky")
        failed = await ann.next_message()
        assert failed["text"] == EN.error_declined.format(model="Gemini Test")
        assert button_labels(failed) == [[EN.retry_button]]
        assert "Today: 10 of 10 credits left." in await credits_left(ann)
        assert len(gemini.calls(":streamGenerateContent")) == 1  # a block is not retried
        ivan = h.tg.user(first_name="Иван", language_code="ru")
        await on_gemini(ivan)
        gemini.queue.append(GeminiReply(prompt_block="PROHIBITED_CONTENT"))
        await ivan.send("что-то опасное")
        assert (await ivan.next_message())["text"] == RU.error_declined.format(model="Gemini Test")


async def test_a_recitation_block_after_text_keeps_it_and_counts(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with gemini_bot(redis_url, tmp_path, monkeypatch, daily_limit=10) as (h, gemini):
        ann = h.tg.user(first_name="Ann")
        await on_gemini(ann)
        gemini.queue.append(
            GeminiReply(text="To be or not to be", block="RECITATION", block_after=3)
        )
        await ann.send("quote Hamlet")
        text = (await ann.next_message())["text"]
        assert text.startswith("To be or")
        reason = EN.error_declined.format(model="Gemini Test")
        assert EN.interrupted.format(reason=reason) in text
        assert "Today: 9 of 10 credits left." in await credits_left(ann)


async def test_failures_are_explained_and_refunded(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with gemini_bot(redis_url, tmp_path, monkeypatch, daily_limit=10) as (h, gemini):
        ann = h.tg.user(first_name="Ann")
        await on_gemini(ann)
        gemini.queue.extend([Reply(status=503), Reply(status=503)])
        await ann.send("hello?")
        failed = await ann.next_message(timeout=10)
        assert failed["text"] == EN.error_unavailable.format(model="Gemini Test")
        gemini.queue.append(Reply(status=429, retry_after=40, error="Quota exceeded"))
        await ann.send("again?")
        busy = (await ann.next_message())["text"]
        assert busy == EN.error_rate_limited.format(model="Gemini Test")
        gemini.key = "rotated"  # the operator's key no longer works
        await ann.send("and now?")
        assert (await ann.next_message())["text"] == EN.error_auth.format(model="Gemini Test")
        assert "Today: 10 of 10 credits left." in await credits_left(ann)
        gemini.key = GEMINI_KEY
        await ann.click(EN.retry_button)
        assert (await ann.next_message(timeout=10))["text"] == "echo: and now?"
        assert "Today: 9 of 10 credits left." in await credits_left(ann)


async def test_image_draws_with_a_gemini_image_model(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with gemini_bot(redis_url, tmp_path, monkeypatch, daily_limit=10) as (h, gemini):
        ann = h.tg.user(first_name="Ann")
        mark = h.tg.mark()
        await ann.send("/image a lighthouse at dawn")  # the only image model: the default
        sent = await h.tg.wait_for("sendPhoto", since=mark, ok=True)
        assert sent.params["caption"] == "a lighthouse at dawn"
        photo = h.tg.file_bytes(ann.bot_messages()[-1]["photo"][-1]["file_id"])
        assert photo == tiny_png() and photo.startswith(PNG_SIGNATURE)
        (call,) = gemini.calls(":generateContent")
        assert call.path == "/v1beta/models/gemini-test-image:generateContent"
        assert call.json["generationConfig"] == {"responseModalities": ["TEXT", "IMAGE"]}
        assert "Today: 7 of 10 credits left." in await credits_left(ann)


async def test_a_picture_the_model_declines_is_free(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with gemini_bot(redis_url, tmp_path, monkeypatch, daily_limit=10) as (h, gemini):
        ann = h.tg.user(first_name="Ann")
        gemini.queue.append(GeminiReply(text="I can't draw that.", image=False))
        await ann.send("/image something forbidden")
        failed = await ann.next_message()
        assert failed["text"] == EN.error_declined.format(model="Banana Test")
        assert h.tg.calls("sendPhoto") == []
        assert "Today: 10 of 10 credits left." in await credits_left(ann)
