"""End to end: /compare through the fake Bot API, the model doubles and a real Redis."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from bot.services.pacer import EDIT_INTERVAL
from bot.texts import EN
from tests.doubles.base import Reply
from tests.doubles.telegram import FakeUser, button_labels
from tests.harness import Harness, running_bot
from tests.support import bold_texts

pytestmark = pytest.mark.usefixtures("rich_too")  # text answers, then rich ones

TITLES = ["GPT Test", "Mistral Test", "Llama Test"]
NAMES = {"GPT Test": "gpt-test", "Mistral Test": "mistral-test", "Llama Test": "Llama-Test"}


def labels(message: dict[str, Any]) -> list[str]:
    return [label for row in button_labels(message) for label in row]


async def answers(h: Harness, user: FakeUser, titles: list[str]) -> dict[str, dict[str, Any]]:
    """Each model's finished answer message (its buttons mark it finished)."""
    found = {}
    for title in titles:
        found[title] = await h.tg.wait_message(
            user.id,
            lambda m, t=title: m["text"].startswith(t + "\n") and f"Continue with {t}" in labels(m),
            timeout=10,
        )
    return found


def script(h: Harness, reply: Reply, *titles: str) -> None:
    for title in titles:
        model_id = {"GPT Test": "gpt", "Mistral Test": "mistral", "Llama Test": "llama"}[title]
        h.llm(model_id).replies[NAMES[title]] = reply


async def test_three_models_answer_at_once_each_under_its_title(
    redis_url: str, tmp_path: Path
) -> None:
    async with running_bot(redis_url, tmp_path) as h:
        script(h, Reply(text="**An** answer in a few words", first_delay=0.4), *TITLES)
        ann = h.tg.user(first_name="Ann")
        await ann.send("/compare Which is best?")
        found = await answers(h, ann, TITLES)
        requests = [d.calls("/chat/completions")[-1] for d in (h.openai, h.mistral, h.llama)]
        # concurrently: every request started before the first answer was finished
        finished = min(
            c.time
            for c in h.tg.calls("editMessageText", ann.id)
            if "Continue with" in str(c.params)
        )
        assert max(r.time for r in requests) < finished
        assert max(r.time for r in requests) - min(r.time for r in requests) < 0.3
        for title, message in found.items():
            body = message["text"].split("\n", 1)[1]
            assert body.startswith("An answer in a few words")
            assert bold_texts(message)[0] == title
            assert "tokens" in body and " s · " in body  # the footer: time and tokens
        # a one-off question: no history went in, none was written
        for request in requests:
            assert [m["content"] for m in request.json["messages"]] == ["Which is best?"]
        h.openai.replies.clear()
        await ann.send("and now?")
        await ann.wait_message(contains="echo: and now?")
        sent = h.openai.calls("/chat/completions")[-1].json["messages"]
        assert [m["content"] for m in sent] == ["and now?"]


async def test_the_chat_edit_pace_holds_with_three_streams(redis_url: str, tmp_path: Path) -> None:
    async with running_bot(redis_url, tmp_path) as h:
        words = " ".join(f"word{i}" for i in range(40))
        script(h, Reply(text=words, chunk_delay=0.06), *TITLES)
        ann = h.tg.user(first_name="Ann")
        await ann.send("/compare stream please")
        await answers(h, ann, TITLES)
        streaming = [
            c for c in h.tg.calls("editMessageText", ann.id) if "Continue with" not in str(c.params)
        ]
        assert len(streaming) >= 2  # the answers grew in the chat
        gaps = [b.time - a.time for a, b in itertools.pairwise(streaming)]
        assert min(gaps) >= EDIT_INTERVAL - 0.05, gaps
        assert h.tg.calls(ok=False) == []


async def test_a_failing_model_is_refunded_and_does_not_disturb_the_others(
    redis_url: str, tmp_path: Path
) -> None:
    async with running_bot(redis_url, tmp_path, daily_limit=10) as h:
        script(h, Reply(status=500), "Mistral Test")
        ann = h.tg.user(first_name="Ann")
        await ann.send("/compare hello?")
        found = await answers(h, ann, ["GPT Test", "Llama Test"])
        assert all("echo: hello?" in m["text"] for m in found.values())
        failed = await h.tg.wait_message(
            ann.id, lambda m: m["text"].startswith("Mistral Test\n") and "unavailable" in m["text"]
        )
        assert labels(failed) == [EN.retry_button]  # that model alone can be asked again
        await ann.send("/limits")
        assert await ann.wait_message(contains="8 of 10 credits left")


async def test_a_model_over_its_cap_is_skipped_and_named(redis_url: str, tmp_path: Path) -> None:
    extra = '\n[[models]]\nid = "once"\ntitle = "Once Test"\nprovider = "ollama_p"\n'
    async with running_bot(
        redis_url,
        tmp_path,
        extra_catalog=extra.replace('"ollama_p"', '"local"') + 'name = "once"\ndaily_limit = 1\n',
    ) as h:
        ann = h.tg.user(first_name="Ann")
        await ann.send("/compare")
        await ann.next_message()
        await ann.click("Once Test")  # the set: gpt, mistral, llama, once
        await h.tg.wait_for("editMessageText")
        await ann.send("/compare first")
        await answers(h, ann, ["Once Test"])
        await ann.send("/compare second")
        skipped = await ann.wait_message(contains="Skipped")
        assert "Once Test" in skipped["text"] and "GPT Test" not in skipped["text"]
        await answers(h, ann, TITLES)
        assert len(h.ollama.calls("/api/chat")) == 1


async def test_the_keyboard_saves_the_set(redis_url: str, tmp_path: Path) -> None:
    async with running_bot(redis_url, tmp_path) as h:
        ann = h.tg.user(first_name="Ann")
        await ann.send("/compare")
        menu = await ann.next_message()
        assert "✅ GPT Test" in labels(menu) and "Local Test" in labels(menu)
        await ann.click("✅ Llama Test")  # off: gpt, mistral
        await h.tg.wait_for("editMessageText")
        query = await ann.click("✅ GPT Test")  # off would leave one: refused
        refusal = await h.tg.wait_callback_answer(query["id"])
        assert "2 to 4" in refusal.params["text"] and refusal.params.get("show_alert")
        await ann.send("/compare two only")
        await answers(h, ann, ["GPT Test", "Mistral Test"])
        assert h.llama.calls("/chat/completions") == []


async def test_continue_with_switches_model_and_seeds_history(
    redis_url: str, tmp_path: Path
) -> None:
    async with running_bot(redis_url, tmp_path) as h:
        script(h, Reply(text="Mistral says 42"), "Mistral Test")
        ann = h.tg.user(first_name="Ann")
        await ann.send("/compare the answer?")
        await answers(h, ann, TITLES)
        await ann.click("Continue with Mistral Test")
        note = await ann.wait_message(contains="goes on from its answer")
        assert "Mistral Test" in note["text"]
        del h.mistral.replies["mistral-test"]
        await ann.send("why?")
        await ann.wait_message(contains="echo: why?")
        sent = h.mistral.calls("/chat/completions")[-1].json["messages"]
        assert [m["content"] for m in sent] == ["the answer?", "Mistral says 42", "why?"]


async def test_a_vote_counts_once_and_top_shows_it(redis_url: str, tmp_path: Path) -> None:
    async with running_bot(redis_url, tmp_path) as h:
        ann, bob = h.tg.user(first_name="Ann"), h.tg.user(first_name="Bob")
        await ann.send("/top")
        assert "No votes yet" in (await ann.next_message())["text"]
        for user in (ann, bob):
            await user.send("/compare vote?")
            await answers(h, user, TITLES)
        first = await ann.click("👍 Best")  # on the latest message with it: Llama's
        assert "Vote counted" in (await h.tg.wait_callback_answer(first["id"])).params["text"]
        again = await ann.click("👍 Best")
        assert "already voted" in (await h.tg.wait_callback_answer(again["id"])).params["text"]
        theirs = await bob.click("👍 Best")
        await h.tg.wait_callback_answer(theirs["id"])
        await ann.send("/top")
        assert await ann.wait_message(contains="1. Llama Test: 2")
