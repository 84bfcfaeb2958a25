"""End to end: editing a photo with ``/image <instruction>`` as its caption or in reply to
it (a user's photo, or a picture the bot drew), through the fake Bot API (getFile, the
file download, sendPhoto), the Gemini and OpenAI doubles and a real Redis; and image
models behind a gateway that draw through chat completions (``image_api = "chat"``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bot.texts import EN, RU
from tests.doubles.base import Reply
from tests.doubles.media import tiny_png
from tests.doubles.telegram import button_labels
from tests.harness import Harness
from tests.test_e2e_gemini import GEMINI_KEY, gemini_bot

pytestmark = pytest.mark.asyncio

PHOTO = b"\xff\xd8\xff\xe0\x00\x10JFIF-edit-me-" + bytes(range(256))

OTHERS = """
[[models]]
id = "painter"
title = "Painter Test"
provider = "openai"
name = "gpt-image-test"
type = "image"

[[models]]
id = "gpt-editor"
title = "GPT Editor"
provider = "openai"
name = "gpt-image-edit-test"
type = "image"
edits = true

[[models]]
id = "routed"
title = "Routed Banana"
provider = "openai"
name = "google/gemini-test-image"
type = "image"
image_api = "chat"
edits = true
"""


async def credits_left(user: Any) -> str:
    await user.send("/limits")
    return str((await user.next_message())["text"])


async def image_model(user: Any, model_id: str) -> None:
    await user.send(f"/model {model_id}")
    assert "/image" in (await user.next_message())["text"]


def posts(double: Any) -> list[Any]:
    """What a model double was asked (not the start-up probe's model listing)."""
    return [r for r in double.requests if r.method == "POST"]


def token_never_left(h: Harness, *doubles: Any) -> None:
    for double in (h.openai, *doubles):
        for request in double.requests:
            seen = request.path + json.dumps(request.headers) + request.body.decode("latin-1")
            assert h.tg.token not in seen and "/file/bot" not in seen, request.path


async def test_a_photo_captioned_with_image_is_edited_and_counted(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with gemini_bot(redis_url, tmp_path, monkeypatch, daily_limit=10) as (h, gemini):
        ann = h.tg.user(first_name="Ann")
        mark = h.tg.mark()
        await ann.send_photo(PHOTO, caption="/image make it night")
        sent = await h.tg.wait_for("sendPhoto", since=mark, ok=True)
        assert sent.params["caption"] == "make it night"
        new = h.tg.file_bytes(ann.bot_messages()[-1]["photo"][-1]["file_id"])
        assert new == tiny_png()
        (call,) = gemini.calls(":generateContent")
        parts = call.json["contents"][0]["parts"]
        assert parts[0] == {"text": "make it night"}
        assert [i.data for i in gemini.images] == [PHOTO]  # the photo itself, as data
        assert h.tg.calls("getFile")
        assert gemini.calls(":streamGenerateContent") == []  # not a chat turn
        token_never_left(h, gemini)
        assert "Today: 7 of 10 credits left." in await credits_left(ann)


async def test_image_in_reply_to_a_photo_edits_that_photo(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with gemini_bot(redis_url, tmp_path, monkeypatch) as (h, gemini):
        ann = h.tg.user(first_name="Ann")
        photo = await ann.send_photo(PHOTO)  # the bot answers the photo itself first
        await ann.next_message()
        mark = h.tg.mark()
        await ann.send("/image add a red hat", reply_to=photo)
        sent = await h.tg.wait_for("sendPhoto", since=mark, ok=True)
        assert sent.params["caption"] == "add a red hat"
        assert [i.data for i in gemini.images] == [PHOTO]


async def test_a_picture_the_bot_drew_is_edited_in_reply(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two taps: draw, then reply to the picture with what to change."""
    async with gemini_bot(redis_url, tmp_path, monkeypatch) as (h, gemini):
        ann = h.tg.user(first_name="Ann")
        mark = h.tg.mark()
        await ann.send("/image a cabin in the woods")
        await h.tg.wait_for("sendPhoto", since=mark, ok=True)
        drawn = ann.bot_messages()[-1]
        mark = h.tg.mark()
        await ann.send("/image make it night", reply_to=drawn)
        await h.tg.wait_for("sendPhoto", since=mark, ok=True)
        first, second = gemini.calls(":generateContent")
        assert len(first.json["contents"][0]["parts"]) == 1  # drawn from words
        assert second.json["contents"][0]["parts"][0] == {"text": "make it night"}
        assert [i.data for i in gemini.images] == [tiny_png()]  # the bot's own picture


async def test_image_on_a_photo_without_an_instruction_asks_for_one(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with gemini_bot(redis_url, tmp_path, monkeypatch) as (h, gemini):
        ann = h.tg.user(first_name="Ann")
        await ann.send_photo(PHOTO, caption="/image")
        assert (await ann.next_message())["text"] == EN.image_edit_usage
        assert posts(gemini) == [] and h.tg.calls("getFile") == []


async def test_a_model_without_edits_says_which_models_can(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with gemini_bot(
        redis_url, tmp_path, monkeypatch, daily_limit=10, extra_catalog=OTHERS
    ) as (h, gemini):
        ann = h.tg.user(first_name="Ann")
        await image_model(ann, "painter")
        await ann.send_photo(PHOTO, caption="/image make it night")
        hint = (await ann.next_message())["text"]
        assert hint == EN.image_no_edits.format(
            model="Painter Test", models="Banana Test, GPT Editor, Routed Banana"
        )
        ivan = h.tg.user(first_name="Иван", language_code="ru")
        await image_model(ivan, "painter")
        await ivan.send_photo(PHOTO, caption="/image сделай ночь")
        assert (await ivan.next_message())["text"].startswith("Модель Painter Test не умеет")
        assert h.tg.calls("getFile") == []  # not even downloaded
        assert posts(gemini) == [] and posts(h.openai) == []
        assert "Today: 10 of 10 credits left." in await credits_left(ann)
        assert RU.image_no_edits.startswith("Модель {model}")


async def test_openai_edits_go_to_images_edits(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with gemini_bot(redis_url, tmp_path, monkeypatch, extra_catalog=OTHERS) as (h, _):
        ann = h.tg.user(first_name="Ann")
        await image_model(ann, "gpt-editor")
        mark = h.tg.mark()
        await ann.send_photo(PHOTO, caption="/image make it night")
        await h.tg.wait_for("sendPhoto", since=mark, ok=True)
        (upload,) = h.openai.edits
        assert upload.data == PHOTO and upload.model == "gpt-image-edit-test"
        assert upload.fields["prompt"] == "make it night"
        assert h.openai.calls("/images/generations") == []
        token_never_left(h)


async def test_image_api_chat_draws_and_edits_through_chat_completions(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with gemini_bot(redis_url, tmp_path, monkeypatch, extra_catalog=OTHERS) as (h, _):
        ann = h.tg.user(first_name="Ann")
        await image_model(ann, "routed")
        mark = h.tg.mark()
        await ann.send("/image a fox")
        await h.tg.wait_for("sendPhoto", since=mark, ok=True)
        mark = h.tg.mark()
        await ann.send_photo(PHOTO, caption="/image make it night")
        await h.tg.wait_for("sendPhoto", since=mark, ok=True)
        drawn, edited = h.openai.calls("/chat/completions")
        assert drawn.json["modalities"] == ["image", "text"]
        assert drawn.json["model"] == "google/gemini-test-image"
        assert drawn.json["messages"] == [{"role": "user", "content": "a fox"}]
        assert edited.json["messages"][0]["content"][0] == {"type": "text", "text": "make it night"}
        assert [i.data for i in h.openai.images] == [PHOTO]
        assert h.openai.calls("/images/generations") == []
        token_never_left(h)


async def test_a_failed_edit_is_refunded_and_retried_with_the_photo_fetched_again(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with gemini_bot(redis_url, tmp_path, monkeypatch, daily_limit=10) as (h, gemini):
        ann = h.tg.user(first_name="Ann")
        gemini.queue.extend([Reply(status=503), Reply(status=503)])
        await ann.send_photo(PHOTO, caption="/image make it night")
        failed = await ann.next_message(timeout=10)
        assert failed["text"] == EN.error_unavailable_no_switch.format(model="Banana Test")
        assert button_labels(failed) == [[EN.retry_button]]
        assert "Today: 10 of 10 credits left." in await credits_left(ann)
        fetched = len(h.tg.calls("getFile"))
        mark = h.tg.mark()
        await ann.click(EN.retry_button, message_id=failed["message_id"])
        sent = await h.tg.wait_for("sendPhoto", since=mark, ok=True, timeout=10)
        assert sent.params["caption"] == "make it night"
        assert len(h.tg.calls("getFile")) == fetched + 1  # downloaded again, never kept
        assert [i.data for i in gemini.images] == [PHOTO, PHOTO, PHOTO]
        assert "Today: 7 of 10 credits left." in await credits_left(ann)
        assert gemini.key == GEMINI_KEY


async def test_edits_count_against_the_image_models_cap(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with gemini_bot(redis_url, tmp_path, monkeypatch) as (h, gemini):
        ann = h.tg.user(first_name="Ann")
        for i in range(2):
            mark = h.tg.mark()
            await ann.send_photo(PHOTO, caption=f"/image edit {i}")
            await h.tg.wait_for("sendPhoto", since=mark, ok=True)
        await ann.send_photo(PHOTO, caption="/image one more")
        refused = (await ann.next_message())["text"]
        assert "2 requests to Banana Test" in refused
        assert len(gemini.calls(":generateContent")) == 2
