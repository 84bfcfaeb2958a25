"""End to end: /image, photos to vision models and voice messages, through the fake Bot
API (getFile, file downloads, sendPhoto), the model doubles (the OpenAI double's images
and transcription endpoints, every API's image parts) and a real Redis."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bot.texts import EN, RU
from tests.doubles.base import Reply, _content_text
from tests.doubles.media import PNG_SIGNATURE, tiny_png
from tests.doubles.telegram import button_labels, detect_entities
from tests.harness import Harness, running_bot

pytestmark = pytest.mark.asyncio

MEDIA = """
[[models]]
id = "painter"
title = "Painter Test"
provider = "openai"
name = "gpt-image-test"
type = "image"
cost = 5
daily_limit = 2

[[models]]
id = "painter2"
title = "Painter Two"
provider = "openai"
name = "gpt-image-two"
type = "image"

[[models]]
id = "ears"
title = "Ears Test"
provider = "openai"
name = "whisper-test"
type = "transcription"
cost = 2
daily_limit = 2

[[models]]
id = "seer-openai"
title = "Seer OpenAI"
provider = "openai"
name = "gpt-vision-test"
vision = true

[[models]]
id = "seer-mistral"
title = "Seer Mistral"
provider = "mistral"
name = "pixtral-test"
vision = true

[[models]]
id = "seer-llama"
title = "Seer Llama"
provider = "llama"
name = "Llama-4-Vision-Test"
vision = true

[[models]]
id = "seer-local"
title = "Seer Local"
provider = "local"
name = "llava"
vision = true
"""

PHOTO = b"\xff\xd8\xff\xe0\x00\x10JFIF-not-really-a-jpeg-" + bytes(range(256))


def provider_requests(h: Harness) -> list[Any]:
    return [r for d in (h.openai, h.mistral, h.llama, h.ollama) for r in d.requests]


def assert_token_never_left(h: Harness) -> None:
    """No model API was sent the bot token, or a Telegram file URL (which holds it)."""
    token = h.tg.token
    for request in provider_requests(h):
        seen = request.path + json.dumps(request.headers) + request.body.decode("latin-1")
        assert token not in seen, request.path
        assert "/file/bot" not in seen, request.path


async def limits_text(user: Any) -> str:
    await user.send("/limits")
    return str((await user.next_message())["text"])


# --- /image ---------------------------------------------------------------------------


async def test_image_sends_the_picture_with_the_prompt_and_counts(
    redis_url: str, tmp_path: Path
) -> None:
    async with running_bot(redis_url, tmp_path, daily_limit=20, extra_catalog=MEDIA) as h:
        ann = h.tg.user(first_name="Ann")
        mark = h.tg.mark()
        await ann.send("/image a red fox in the snow")
        sent = await h.tg.wait_for("sendPhoto", since=mark, ok=True)
        assert sent.params["caption"] == "a red fox in the snow"
        shown = ann.bot_messages()[-1]
        assert shown["caption"] == "a red fox in the snow"
        photo = h.tg.file_bytes(shown["photo"][-1]["file_id"])  # the multipart upload
        assert photo.startswith(PNG_SIGNATURE) and photo == tiny_png()
        actions = [c.params["action"] for c in h.tg.calls("sendChatAction", ann.id)]
        assert "upload_photo" in actions
        (request,) = h.openai.calls("/images/generations")
        assert request.json["model"] == "gpt-image-test"
        assert request.json["prompt"] == "a red fox in the snow"
        text = await limits_text(ann)
        assert "Today: 15 of 20 credits left." in text
        assert "Painter Test: 5 credits a request, 1 of 2 requests left" in text
        assert h.openai.calls("/chat/completions") == []  # no chat model was asked


async def test_a_long_prompt_is_drawn_whole_and_its_caption_cut(
    redis_url: str, tmp_path: Path
) -> None:
    async with running_bot(redis_url, tmp_path, extra_catalog=MEDIA) as h:
        ann = h.tg.user(first_name="Ann")
        prompt = "a castle " + "with towers and flags " * 80
        await ann.send(f"/image {prompt}")
        sent = await h.tg.wait_for("sendPhoto", ok=True)
        caption = sent.params["caption"]
        assert len(caption) <= 1024 and caption.endswith("…")
        assert prompt.strip().startswith(caption[:-1])
        assert h.openai.calls("/images/generations")[0].json["prompt"] == prompt.strip()


async def test_a_failed_picture_is_refunded(redis_url: str, tmp_path: Path) -> None:
    async with running_bot(redis_url, tmp_path, daily_limit=20, extra_catalog=MEDIA) as h:
        ann = h.tg.user(first_name="Ann")
        h.openai.replies["gpt-image-test"] = Reply(status=503)
        await ann.send("/image a lighthouse")
        error = (await ann.next_message())["text"]
        assert error == EN.error_unavailable.format(model="Painter Test")
        assert h.tg.calls("sendPhoto") == []
        text = await limits_text(ann)
        assert "Today: 20 of 20 credits left." in text
        assert "Painter Test: 5 credits a request, 2 of 2 requests left" in text
        del h.openai.replies["gpt-image-test"]
        await ann.send("/image a lighthouse")
        await h.tg.wait_for("sendPhoto", ok=True)
        assert "Today: 15 of 20 credits left." in await limits_text(ann)


async def test_image_model_cap_and_overall_allowance(redis_url: str, tmp_path: Path) -> None:
    async with running_bot(redis_url, tmp_path, daily_limit=12, extra_catalog=MEDIA) as h:
        ann = h.tg.user(first_name="Ann")
        for i in range(2):
            mark = h.tg.mark()
            await ann.send(f"/image picture {i}")
            await h.tg.wait_for("sendPhoto", since=mark, ok=True)
        await ann.send("/image picture 3")
        refused = (await ann.next_message())["text"]
        assert "2 requests to Painter Test" in refused and "resets at 00:00 UTC" in refused
        assert len(h.openai.calls("/images/generations")) == 2
        # 10 of 12 credits used: another image model (1 credit) and a chat answer still fit
        await ann.send("/model painter2")
        assert (await ann.next_message())["text"] == "/image now draws with Painter Two."
        mark = h.tg.mark()
        await ann.send("/image picture 4")
        await h.tg.wait_for("sendPhoto", since=mark, ok=True)
        await ann.send("hello")
        assert (await ann.next_message())["text"] == "echo: hello"
        await ann.send("/image picture 5")  # 13 > 12
        assert "free allowance of 12 credits" in (await ann.next_message())["text"]
        assert len(h.openai.calls("/images/generations")) == 3


async def test_image_without_prompt_or_without_an_image_model(
    redis_url: str, tmp_path: Path
) -> None:
    async with running_bot(redis_url, tmp_path) as h:  # the plain catalog: no image model
        ann = h.tg.user(first_name="Ann")
        await ann.send("/image")
        assert (await ann.next_message())["text"] == EN.image_usage
        await ann.send("/image a cat")
        assert (await ann.next_message())["text"] == EN.image_unavailable
        assert h.llm_requests() == []


async def test_model_lists_image_models_and_a_press_picks_the_image_model(
    redis_url: str, tmp_path: Path
) -> None:
    async with running_bot(redis_url, tmp_path, extra_catalog=MEDIA) as h:
        ann = h.tg.user(first_name="Ann")
        await ann.send("/model")
        menu = await ann.next_message()
        assert "Pictures for /image: Painter Test" in menu["text"]
        labels = button_labels(menu)
        assert ["✅ 🎨 Painter Test", "🎨 Painter Two"] in labels
        flat = [label for row in labels for label in row]
        assert "✅ GPT Test" in flat and not any("Ears" in label for label in flat)
        query = await ann.click("🎨 Painter Two")
        answered = await h.tg.wait_callback_answer(query["id"])
        assert answered.params["text"] == "/image now draws with Painter Two."
        edited = await ann.wait_message(contains="Painter Two")
        assert ["🎨 Painter Test", "✅ 🎨 Painter Two"] in button_labels(edited)
        assert "✅ GPT Test" in [label for row in button_labels(edited) for label in row]
        await ann.send("/image a boat")
        await h.tg.wait_for("sendPhoto", ok=True)
        assert h.openai.calls("/images/generations")[-1].json["model"] == "gpt-image-two"
        # the chat model did not change
        await ann.send("hi")
        assert (await ann.next_message())["text"] == "echo: hi"
        assert h.openai.calls("/chat/completions")[-1].json["model"] == "gpt-test"


# --- photos ---------------------------------------------------------------------------


@pytest.mark.parametrize("model_id", ["seer-openai", "seer-mistral", "seer-llama", "seer-local"])
async def test_a_photo_reaches_a_vision_model_as_image_data(
    redis_url: str, tmp_path: Path, model_id: str
) -> None:
    async with running_bot(redis_url, tmp_path, daily_limit=10, extra_catalog=MEDIA) as h:
        ann = h.tg.user(first_name="Ann")
        await ann.send(f"/model {model_id}")
        await ann.next_message()
        double = h.llm(model_id)
        await ann.send_photo(PHOTO, caption="what is this?")
        assert (await ann.next_message())["text"] == "echo: what is this?"
        (seen,) = double.images
        assert seen.data == PHOTO and seen.role == "user"
        if model_id == "seer-local":  # Ollama: bare base64 in the message's images
            assert not seen.url.startswith(("data:", "http"))
        else:  # image_url parts holding a data URL
            assert seen.url.startswith("data:image/jpeg;base64,") and seen.mime == "image/jpeg"
        assert h.tg.calls("getFile")  # the bot fetched the photo itself
        # the history keeps a placeholder, never the bytes
        await ann.send("and the colours?")
        assert (await ann.next_message())["text"] == "echo: and the colours?"
        assert len(double.images) == 1
        sent = [r for r in double.requests if r.method == "POST"][-1].json["messages"]
        assert [_content_text(m.get("content")) for m in sent] == [
            "[photo] what is this?",
            "echo: what is this?",
            "and the colours?",
        ]
        assert all(not m.get("images") for m in sent)
        assert_token_never_left(h)
        assert "Today: 8 of 10 credits left." in await limits_text(ann)


async def test_a_photo_without_caption_asks_to_describe_it(redis_url: str, tmp_path: Path) -> None:
    async with running_bot(redis_url, tmp_path, extra_catalog=MEDIA) as h:
        ivan = h.tg.user(first_name="Иван", language_code="ru")
        await ivan.send("/model seer-openai")
        await ivan.next_message()
        await ivan.send_photo(PHOTO)
        assert (await ivan.next_message())["text"] == f"echo: {RU.photo_prompt}"
        assert h.openai.images[0].data == PHOTO
        await ivan.send("ещё?")
        await ivan.next_message()
        sent = h.openai.calls("/chat/completions")[-1].json["messages"]
        assert _content_text(sent[0]["content"]) == "[photo]"
        assert_token_never_left(h)


async def test_a_failed_photo_turn_is_retried_with_the_photo_fetched_again(
    redis_url: str, tmp_path: Path
) -> None:
    async with running_bot(redis_url, tmp_path, daily_limit=10, extra_catalog=MEDIA) as h:
        ann = h.tg.user(first_name="Ann")
        await ann.send("/model seer-openai")
        await ann.next_message()
        h.openai.queue.append(Reply(status=401, error="bad key"))
        await ann.send_photo(PHOTO, caption="what is this?")
        failed = await ann.next_message(timeout=10)
        assert button_labels(failed) == [[EN.retry_button]]
        fetched = len(h.tg.calls("getFile"))

        await ann.click(EN.retry_button)
        assert (await ann.next_message(timeout=10))["text"] == "echo: what is this?"
        assert len(h.tg.calls("getFile")) == fetched + 1  # downloaded again, never kept
        assert [i.data for i in h.openai.images] == [PHOTO, PHOTO]
        assert not any(PHOTO.hex() in k for k in map(str, await h.app.redis.keys("*")))
        assert_token_never_left(h)
        assert "Today: 9 of 10 credits left." in await limits_text(ann)  # the failure was free


async def test_a_photo_to_a_model_without_vision_gets_the_hint(
    redis_url: str, tmp_path: Path
) -> None:
    async with running_bot(redis_url, tmp_path, daily_limit=10, extra_catalog=MEDIA) as h:
        ann = h.tg.user(first_name="Ann")
        await ann.send_photo(PHOTO, caption="what is this?")  # GPT Test: no vision
        hint = (await ann.next_message())["text"]
        assert hint.startswith("GPT Test can't see images.")
        assert "Seer OpenAI, Seer Mistral, Seer Llama, Seer Local" in hint
        assert "/model" in hint
        assert h.llm_requests() == []
        assert h.tg.calls("getFile") == []  # not even downloaded
        assert "Today: 10 of 10 credits left." in await limits_text(ann)


async def test_an_image_sent_as_a_file_is_seen_too(redis_url: str, tmp_path: Path) -> None:
    async with running_bot(redis_url, tmp_path, extra_catalog=MEDIA) as h:
        ann = h.tg.user(first_name="Ann")
        await ann.send("/model seer-openai")
        await ann.next_message()
        png = tiny_png()
        await ann.send_document(png, "chart.png", "image/png", caption="read the chart")
        assert (await ann.next_message())["text"] == "echo: read the chart"
        assert h.openai.images[0].data == png and h.openai.images[0].mime == "image/png"


async def test_photos_and_voice_without_models_for_them_say_what_works(
    redis_url: str, tmp_path: Path
) -> None:
    async with running_bot(redis_url, tmp_path, extra_catalog=MEDIA) as h:
        ann = h.tg.user(first_name="Ann")
        await ann.send_sticker()
        text = (await ann.next_message())["text"]
        assert text == EN.unsupported_media.format(things="text, photos and voice messages")
    async with running_bot(redis_url, tmp_path) as h:  # no vision, no transcription model
        ann = h.tg.user(first_name="Ann")
        for send in (ann.send_photo, ann.send_voice):
            await send()
            assert (await ann.next_message())["text"] == EN.unsupported
        assert h.llm_requests() == []


async def test_a_photo_counts_like_a_message(redis_url: str, tmp_path: Path) -> None:
    async with running_bot(redis_url, tmp_path, daily_limit=1, extra_catalog=MEDIA) as h:
        ann = h.tg.user(first_name="Ann")
        await ann.send("/model seer-openai")
        await ann.next_message()
        await ann.send_photo(PHOTO, caption="first")
        assert (await ann.next_message())["text"] == "echo: first"
        await ann.send_photo(PHOTO, caption="second")
        assert "free allowance of 1 credit." in (await ann.next_message())["text"]
        assert len(h.openai.calls("/chat/completions")) == 1


async def test_in_a_group_a_photo_is_answered_only_when_addressed(
    redis_url: str, tmp_path: Path
) -> None:
    async with running_bot(redis_url, tmp_path, extra_catalog=MEDIA) as h:
        group = h.tg.group()
        ann = h.tg.user(first_name="Ann")
        await ann.send("/model seer-openai")
        await ann.next_message()

        def photo(caption: str) -> dict[str, Any]:
            stored = h.tg.files[h.tg.add_file(PHOTO, kind="photos")]
            stored.file_path += ".jpg"
            sizes = [
                {"file_id": stored.file_id, "file_unique_id": stored.file_unique_id, "width": w}
                | {"height": w, "file_size": len(PHOTO)}
                for w in (90, 800)
            ]
            content = {"photo": sizes, "caption": caption}
            return content | {"caption_entities": detect_entities(caption)}

        h.tg.deliver_message(ann.info, group.id, photo("look at this, everyone"))
        h.tg.deliver_message(ann.info, group.id, photo(f"@{h.tg.username} what is this?"))
        await ann.wait_message(lambda m: m.get("text") == "echo: what is this?", chat=group)
        assert len(h.openai.images) == 1  # the photo not addressed to the bot was left alone
        assert_token_never_left(h)


# --- voice ----------------------------------------------------------------------------


async def test_a_voice_message_is_transcribed_quoted_and_answered(
    redis_url: str, tmp_path: Path
) -> None:
    async with running_bot(redis_url, tmp_path, daily_limit=10, extra_catalog=MEDIA) as h:
        ann = h.tg.user(first_name="Ann")
        audio = b"what is the capital of France"
        await ann.send_voice(audio, duration=3)
        quote = await ann.next_message()
        (upload,) = h.openai.uploads
        assert upload.data == audio and upload.model == "whisper-test"
        assert upload.filename.endswith(".ogg")
        transcript = f"transcript of {len(audio)} bytes: what is the capital of France"
        assert transcript in quote["text"]
        assert any(e["type"] == "blockquote" for e in quote["entities"])
        answer = await ann.next_message()
        assert answer["text"] == f"echo: {transcript}"
        chat = h.openai.calls("/chat/completions")
        assert chat[-1].json["model"] == "gpt-test"
        assert _content_text(chat[-1].json["messages"][-1]["content"]) == transcript
        assert_token_never_left(h)
        # transcription (2 credits) and the answer (1)
        text = await limits_text(ann)
        assert "Today: 7 of 10 credits left." in text
        assert "Ears Test: 2 credits a request, 1 of 2 requests left" in text


async def test_a_voice_message_over_the_maximum_is_refused(redis_url: str, tmp_path: Path) -> None:
    async with running_bot(
        redis_url, tmp_path, daily_limit=10, extra_catalog=MEDIA, voice_max_seconds=60
    ) as h:
        ann = h.tg.user(first_name="Ann")
        await ann.send_voice(b"long speech", duration=61)
        text = (await ann.next_message())["text"]
        assert text == EN.voice_too_long.format(duration=61, limit=60)
        assert h.openai.uploads == [] and h.llm_requests() == []
        assert h.tg.calls("getFile") == []
        assert "Today: 10 of 10 credits left." in await limits_text(ann)


async def test_a_failed_transcription_is_refunded_and_not_answered(
    redis_url: str, tmp_path: Path
) -> None:
    async with running_bot(redis_url, tmp_path, daily_limit=10, extra_catalog=MEDIA) as h:
        ann = h.tg.user(first_name="Ann")
        h.openai.replies["whisper-test"] = Reply(status=503)
        await ann.send_voice(b"hello", duration=2)
        assert (await ann.next_message())["text"] == EN.error_unavailable_no_switch.format(
            model="Ears Test"
        )
        assert h.openai.calls("/chat/completions") == []
        text = await limits_text(ann)
        assert "Today: 10 of 10 credits left." in text
        assert "Ears Test: 2 credits a request, 2 of 2 requests left" in text


async def test_voice_counts_against_the_transcription_models_cap(
    redis_url: str, tmp_path: Path
) -> None:
    async with running_bot(redis_url, tmp_path, extra_catalog=MEDIA) as h:
        ann = h.tg.user(first_name="Ann")
        for i in range(2):
            await ann.send_voice(f"question {i}".encode(), duration=2)
            await ann.next_message()  # the quote
            assert (await ann.next_message())["text"].startswith("echo: transcript of")
        await ann.send_voice(b"one more", duration=2)
        refused = (await ann.next_message())["text"]
        assert "2 requests to Ears Test" in refused
        assert len(h.openai.uploads) == 2
        assert len(h.openai.calls("/chat/completions")) == 2


async def test_an_audio_file_is_transcribed_with_its_format(redis_url: str, tmp_path: Path) -> None:
    async with running_bot(redis_url, tmp_path, extra_catalog=MEDIA) as h:
        ann = h.tg.user(first_name="Ann")
        stored = h.tg.files[h.tg.add_file(b"ID3-speech", kind="music")]
        audio = {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "duration": 5,
            "mime_type": "audio/mpeg",
            "file_name": "memo",
            "file_size": len(stored.data),
        }
        h.tg.deliver_message(ann.info, ann.id, {"audio": audio})
        await ann.next_message()
        assert (await ann.next_message())["text"].startswith("echo: transcript of 10 bytes")
        assert h.openai.uploads[0].filename == "audio.mp3"
