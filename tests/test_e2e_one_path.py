"""End to end: every kind of request goes through the one admission and accounting path:
/stats counts them all, each failure offers Retry, buttons belong to whoever asked."""

from __future__ import annotations

from pathlib import Path

from bot.texts import EN
from tests.doubles.base import Reply
from tests.doubles.telegram import button_labels
from tests.harness import running_bot
from tests.test_e2e_media import MEDIA

ADMIN = 4242


def labels(message: dict[str, object]) -> list[str]:
    return [label for row in button_labels(message) for label in row]


async def test_stats_count_chat_compare_image_and_voice(redis_url: str, tmp_path: Path) -> None:
    async with running_bot(
        redis_url, tmp_path, extra_catalog=MEDIA, admin_ids=frozenset({ADMIN})
    ) as h:
        ann = h.tg.user(first_name="Ann")
        boss = h.tg.user(id=ADMIN, first_name="Boss")
        await ann.send("hello")
        await ann.next_message()
        await ann.send("/compare which is best?")
        for title in ("GPT Test", "Mistral Test", "Llama Test"):
            await ann.wait_message(lambda m, t=title: f"Continue with {t}" in labels(m), timeout=10)
        await ann.send("/image a fox")
        await h.tg.wait_for("sendPhoto", ok=True)
        await ann.send_voice(b"speech", duration=2)
        await ann.wait_message(contains="echo: transcript", timeout=10)
        await boss.send("/stats")
        text = (await boss.next_message())["text"]
        # chat: 1 + the voice's answer; compare: one each; the picture; the transcript
        assert "GPT Test: 3 requests" in text, text
        assert "Mistral Test: 1 request" in text and "Llama Test: 1 request" in text, text
        assert "Painter Test: 1 request" in text and "Ears Test: 1 request" in text, text


async def test_a_failed_picture_and_transcript_offer_retry(redis_url: str, tmp_path: Path) -> None:
    async with running_bot(redis_url, tmp_path, extra_catalog=MEDIA) as h:
        ann = h.tg.user(first_name="Ann")
        h.openai.queue.extend([Reply(status=503), Reply(status=503)])  # both tries
        await ann.send("/image a lighthouse")
        failed = await ann.next_message(timeout=10)
        assert labels(failed) == [EN.retry_button]
        await ann.click(EN.retry_button)
        await h.tg.wait_for("sendPhoto", ok=True)
        drawn = [r.json["prompt"] for r in h.openai.calls("/images/generations")]
        assert drawn == ["a lighthouse"] * 3

        h.openai.queue.extend([Reply(status=503), Reply(status=503)])
        await ann.send_voice(b"speech", duration=2)
        failed = await ann.next_message(timeout=10)
        assert labels(failed) == [EN.retry_button]
        await ann.click(EN.retry_button)
        answer = await ann.wait_message(contains="echo: transcript", timeout=10)
        assert answer["text"].startswith("echo: transcript of 6 bytes")
        assert [u.data for u in h.openai.uploads] == [b"speech"] * 3
        assert len(h.tg.calls("getFile")) == 2  # the retry downloaded the voice again


async def test_a_failed_compare_answer_is_retried_alone(redis_url: str, tmp_path: Path) -> None:
    async with running_bot(redis_url, tmp_path) as h:
        ann = h.tg.user(first_name="Ann")
        h.mistral.queue.extend([Reply(status=503), Reply(status=503)])
        await ann.send("/compare which is best?")
        failed = await ann.wait_message(
            lambda m: m["text"].startswith("Mistral Test\n") and EN.retry_button in labels(m),
            timeout=10,
        )
        await ann.wait_message(lambda m: "Continue with Llama Test" in labels(m), timeout=10)
        before = (len(h.openai.requests), len(h.llama.requests))
        await ann.click(EN.retry_button, message_id=failed["message_id"])
        again = await ann.wait_message(
            lambda m: (
                m["message_id"] > failed["message_id"] and "Continue with Mistral Test" in labels(m)
            ),
            timeout=10,
        )
        assert again["text"].startswith("Mistral Test\necho: which is best?")
        assert (len(h.openai.requests), len(h.llama.requests)) == before  # only Mistral


async def test_buttons_in_a_group_belong_to_who_asked(redis_url: str, tmp_path: Path) -> None:
    async with running_bot(redis_url, tmp_path) as h:
        group = h.tg.group()
        ann, bob = h.tg.user(first_name="Ann"), h.tg.user(first_name="Bob")
        h.openai.queue.extend([Reply(status=503), Reply(status=503)])
        await ann.send("@manymodels_bot tell me", chat=group)
        failed = await ann.wait_message(lambda m: EN.retry_button in labels(m), chat=group)
        query = await bob.click(EN.retry_button, chat=group)
        answered = await h.tg.wait_callback_answer(query["id"])
        assert answered.params.get("text") == EN.not_your_button
        asked = len(h.openai.calls("/chat/completions"))
        # Ann's own press works: the button was left in place for her
        await ann.click(EN.retry_button, chat=group, message_id=failed["message_id"])
        await ann.wait_message(contains="echo: tell me", chat=group, timeout=10)
        assert len(h.openai.calls("/chat/completions")) == asked + 1


async def test_another_members_press_on_a_model_keyboard_changes_nothing(
    redis_url: str, tmp_path: Path
) -> None:
    async with running_bot(redis_url, tmp_path) as h:
        group = h.tg.group()
        ann, bob = h.tg.user(first_name="Ann"), h.tg.user(first_name="Bob")
        await ann.send("/model@manymodels_bot", chat=group)
        keyboard = await ann.wait_message(lambda m: "Mistral Test" in labels(m), chat=group)
        query = await bob.click("Mistral Test", chat=group)
        answered = await h.tg.wait_callback_answer(query["id"])
        assert answered.params.get("text") == EN.not_your_button
        assert h.tg.calls("editMessageText") == []  # Ann's keyboard is as it was
        await bob.send("@manymodels_bot hi", chat=group)
        await bob.wait_message(contains="echo: hi", chat=group, timeout=10)
        assert h.openai.calls("/chat/completions")  # Bob is still on the default model
        await ann.click("Mistral Test", chat=group, message_id=keyboard["message_id"])
        # the keyboard's own edit (Bob's answer was streamed by edits too)
        await ann.wait_message(
            lambda m: m["message_id"] == keyboard["message_id"] and "Mistral Test" in m["text"],
            chat=group,
        )
        await ann.send("@manymodels_bot hello", chat=group)
        await ann.wait_message(contains="echo: hello", chat=group, timeout=10)
        assert h.mistral.calls("/chat/completions")  # Ann's own press switched her
