"""End to end: a person talking to the real bot through the fake Bot API, with model
doubles for every provider kind and a real Redis."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.doubles.base import Reply
from tests.doubles.telegram import button_labels
from tests.harness import running_bot
from tests.support import bold_texts

pytestmark = [pytest.mark.asyncio, pytest.mark.usefixtures("rich_too")]


async def test_start_and_help_show_the_model_and_commands(redis_url: str, tmp_path: Path) -> None:
    async with running_bot(redis_url, tmp_path) as h:
        ann = h.tg.user(first_name="Ann")
        await ann.send("/start")
        reply = await ann.next_message()
        assert "GPT Test" in reply["text"]
        assert "/model" in reply["text"] and "/new" in reply["text"]
        await ann.send("/help")
        assert "GPT Test" in (await ann.next_message())["text"]
        # the command menu was set in English and Russian
        scopes = {c.params.get("language_code") for c in h.tg.calls("setMyCommands")}
        assert scopes == {None, "ru"}


async def test_conversation_carries_context_and_new_forgets_it(
    redis_url: str, tmp_path: Path
) -> None:
    async with running_bot(redis_url, tmp_path) as h:
        ann = h.tg.user(first_name="Ann")
        await ann.send("My name is Ann")
        first = await ann.next_message()
        assert first["text"] == "echo: My name is Ann"
        await ann.send("What is my name?")
        assert (await ann.next_message())["text"] == "echo: What is my name?"
        sent = h.openai.calls("/chat/completions")[-1].json["messages"]
        assert [m["content"] for m in sent] == [
            "My name is Ann",
            "echo: My name is Ann",
            "What is my name?",
        ]
        await ann.send("/new")
        assert "new conversation" in (await ann.next_message())["text"]
        await ann.send("Hello again")
        await ann.next_message()
        sent = h.openai.calls("/chat/completions")[-1].json["messages"]
        assert [m["content"] for m in sent] == ["Hello again"]


async def test_two_users_never_share_history(redis_url: str, tmp_path: Path) -> None:
    async with running_bot(redis_url, tmp_path) as h:
        ann, bob = h.tg.user(first_name="Ann"), h.tg.user(first_name="Bob")
        await ann.send("secret of Ann")
        await ann.next_message()
        await bob.send("hi from Bob")
        await bob.next_message()
        sent = h.openai.calls("/chat/completions")[-1].json["messages"]
        assert [m["content"] for m in sent] == ["hi from Bob"]


@pytest.mark.parametrize("model_id", ["mistral", "llama", "local", "gpt"])
async def test_model_by_argument_then_that_provider_answers(
    redis_url: str, tmp_path: Path, model_id: str
) -> None:
    async with running_bot(redis_url, tmp_path) as h:
        ann = h.tg.user(first_name="Ann")
        await ann.send(f"/model {model_id}")
        title = h.catalog.models[model_id].title
        assert title in (await ann.next_message())["text"]
        h.llm(model_id).replies[h.catalog.models[model_id].name] = Reply(text="**bold** answer")
        await ann.send("question")
        answer = await ann.next_message()
        assert answer["text"] == "bold answer"
        assert bold_texts(answer) == ["bold"]
        posted = [r for r in h.llm_requests() if r.json]
        assert [r.model for r in posted] == [h.catalog.models[model_id].name]


async def test_model_keyboard_marks_current_and_switches(redis_url: str, tmp_path: Path) -> None:
    async with running_bot(redis_url, tmp_path) as h:
        ann = h.tg.user(first_name="Ann")
        await ann.send("/model")
        menu = await ann.next_message()
        labels = [label for row in button_labels(menu) for label in row]
        assert "✅ GPT Test" in labels and "Mistral Test" in labels and len(labels) == 4
        for row in menu["reply_markup"]["inline_keyboard"]:
            for button in row:
                assert len(button["callback_data"].encode()) <= 64
        query = await ann.click("Mistral Test")
        answer = await h.tg.wait_callback_answer(query["id"])
        assert "Mistral Test" in answer.params["text"]
        await h.tg.wait_for("editMessageText")
        edited = h.tg.messages(ann.id)[-1]
        assert "Mistral Test" in edited["text"]
        assert "✅ Mistral Test" in [b for row in button_labels(edited) for b in row]
        await ann.send("which model?")
        await ann.next_message()
        assert h.mistral.calls("/chat/completions")


async def test_unknown_model_argument_lists_the_models(redis_url: str, tmp_path: Path) -> None:
    async with running_bot(redis_url, tmp_path) as h:
        ann = h.tg.user(first_name="Ann")
        await ann.send("/model nope")
        text = (await ann.next_message())["text"]
        assert "nope" in text and "gpt" in text and "mistral" in text
