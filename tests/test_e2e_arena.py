"""End to end: /arena blind battles (nothing names a model before the vote, one vote,
the reveal, costs and voids), the leaderboard in /top, and Merge under /compare."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from bot.texts import EN
from tests.doubles.base import Reply
from tests.doubles.telegram import FakeUser, button_labels
from tests.harness import Harness, running_bot, running_webhook_bot

DAILY = 20
NAMES = {  # id -> (title, provider model name), as in tests/harness.py's catalog
    "gpt": ("GPT Test", "gpt-test"),
    "mistral": ("Mistral Test", "mistral-test"),
    "llama": ("Llama Test", "Llama-Test"),
    "local": ("Local Test", "llama3.2"),
}


def labels(message: dict[str, Any]) -> list[str]:
    return [label for row in button_labels(message) for label in row]


def everything_sent(h: Harness, since: int = 0) -> str:
    """Every text, caption, keyboard and callback datum the bot sent or edited."""
    return "\n".join(json.dumps(c.params, ensure_ascii=False) for c in h.tg.api_calls[since:])


def names_in(text: str) -> list[str]:
    lowered = text.lower()
    found = []
    for model_id, (title, name) in NAMES.items():
        if (
            re.search(rf"\b{re.escape(model_id)}\b", lowered)
            or title.lower() in lowered
            or name.lower() in lowered
        ):
            found.append(model_id)
    return found


async def pair_counts(h: Harness, redis_url: str) -> dict[bytes, bytes]:
    """The arena's counted outcomes per pair, as kept in Redis."""
    client = aioredis.from_url(redis_url)
    try:
        return dict(await client.hgetall(f"arena:pairs:{h.tg.bot_id}"))
    finally:
        await client.aclose()


async def battle(h: Harness, user: FakeUser, question: str) -> dict[str, Any]:
    """Ask a battle; the second answer once it carries the vote buttons."""
    await user.send(f"/arena {question}")
    return await user.wait_message(lambda m: EN.arena_a_better in labels(m), timeout=15)


async def credits_left(user: FakeUser) -> int:
    sent = await user.send("/limits")
    answer = await user.wait_message(
        lambda m: m["message_id"] > sent["message_id"] and "credits left" in m["text"]
    )
    text = answer["text"]
    found = re.search(r"(\d+) of (\d+) credits left", text)
    assert found is not None, text
    return int(found.group(1))


async def test_a_blind_battle_names_no_model_until_the_vote(redis_url: str, tmp_path: Path) -> None:
    async with running_bot(redis_url, tmp_path, daily_limit=DAILY) as h:
        ann = h.tg.user(first_name="Ann")
        mark = h.tg.mark()
        second = await battle(h, ann, "what is 2+2?")
        first = ann.bot_messages()[-2]
        assert first["text"].startswith(EN.arena_model_a + "\n")
        assert second["text"].startswith(EN.arena_model_b + "\n")
        assert "echo: what is 2+2?" in first["text"] and "echo: what is 2+2?" in second["text"]
        assert names_in(everything_sent(h, mark)) == []
        asked = [r.json["model"] for r in h.llm_requests()]
        assert len(asked) == 2 and len(set(asked)) == 2  # two different models
        assert await credits_left(ann) == DAILY - 2  # both models' costs

        query = await ann.click(EN.arena_a_better, message_id=second["message_id"])
        answered = await h.tg.wait_callback_answer(query["id"])
        assert answered.params["text"] == EN.arena_counted
        revealed_a = await ann.wait_message(
            lambda m: m["message_id"] == first["message_id"] and ":" in m["text"].split("\n")[0]
        )
        revealed_b = await ann.wait_message(
            lambda m: m["message_id"] == second["message_id"] and ":" in m["text"].split("\n")[0]
        )
        shown = sorted(names_in(revealed_a["text"].split("\n")[0] + revealed_b["text"]))
        assert len(shown) == 2
        assert EN.arena_a_better not in labels(revealed_b)
        assert any(label.startswith("Continue with") for label in labels(revealed_a))
        go_on = next(label for label in labels(revealed_a) if label.startswith("Continue with"))
        query = await ann.click(go_on, message_id=first["message_id"])
        assert "Now talking to" in str((await h.tg.wait_callback_answer(query["id"])).params)

        pairs = await pair_counts(h, redis_url)
        assert sum(int(v) for v in pairs.values()) == 1


async def test_one_vote_per_battle_and_only_after_both_answers(
    redis_url: str, tmp_path: Path
) -> None:
    async with running_bot(redis_url, tmp_path) as h:
        ann = h.tg.user(first_name="Ann")
        second = await battle(h, ann, "hello")
        # two presses before the bot saw the first (or two replicas): one vote
        first = await ann.click(EN.arena_tie, message_id=second["message_id"])
        again = await ann.click(EN.arena_both_bad, message_id=second["message_id"])
        answers = [
            (await h.tg.wait_callback_answer(q["id"])).params["text"] for q in (first, again)
        ]
        assert sorted(answers) == sorted([EN.arena_counted, EN.arena_already])


async def test_a_failing_model_voids_the_battle_and_frees_both(
    redis_url: str, tmp_path: Path
) -> None:
    async with running_bot(redis_url, tmp_path, daily_limit=DAILY) as h:
        for double in (h.openai, h.mistral, h.llama, h.ollama):
            double.default = Reply(status=503)
        h.openai.default = Reply()  # only GPT answers: whichever it meets fails
        ann = h.tg.user(first_name="Ann")
        await ann.send("/arena tell me")
        await ann.wait_message(contains=EN.arena_void, timeout=15)
        assert not any(EN.arena_a_better in labels(m) for m in ann.bot_messages())
        assert await credits_left(ann) == DAILY


async def test_pairs_fill_up_evenly(redis_url: str, tmp_path: Path) -> None:
    async with running_bot(redis_url, tmp_path) as h:
        ann = h.tg.user(first_name="Ann")
        for i in range(6):  # four models: six pairs, each once
            second = await battle(h, ann, f"question {i}")
            vote = await ann.click(EN.arena_tie, message_id=second["message_id"])
            await h.tg.wait_callback_answer(vote["id"])
        pairs = await pair_counts(h, redis_url)
        assert len(pairs) == 6 and set(pairs.values()) == {b"1"}, pairs


async def test_an_answer_naming_its_model_is_not_counted(redis_url: str, tmp_path: Path) -> None:
    async with running_bot(redis_url, tmp_path) as h:
        for model_id, (title, name) in NAMES.items():
            h.llm(model_id).replies[name] = Reply(text=f"I am {title}, at your service.")
        ann = h.tg.user(first_name="Ann")
        second = await battle(h, ann, "who are you?")
        vote = await ann.click(EN.arena_a_better, message_id=second["message_id"])
        said = (await h.tg.wait_callback_answer(vote["id"])).params["text"]
        asked = {r.json["model"] for r in h.llm_requests()}
        named = [title for title, name in NAMES.values() if name in asked]
        assert said == EN.arena_named.format(models=", ".join(sorted(named, key=said.index)))
        assert await pair_counts(h, redis_url) == {}  # not counted


async def test_top_ranks_the_arena_and_keeps_the_best_counts(
    redis_url: str, tmp_path: Path
) -> None:
    async with running_bot(redis_url, tmp_path) as h:
        client = aioredis.from_url(redis_url)
        try:  # a scripted history: GPT beats everyone, Mistral beats Llama, Local is new
            key = f"arena:pairs:{h.tg.bot_id}"
            await client.hset(
                key,
                mapping={
                    "gpt|mistral|w": 30,
                    "gpt|mistral|l": 10,
                    "gpt|llama|w": 35,
                    "gpt|llama|l": 5,
                    "llama|mistral|w": 12,
                    "llama|mistral|l": 28,
                    "llama|local|t": 3,
                },
            )
        finally:
            await client.aclose()
        ann = h.tg.user(first_name="Ann")
        await ann.send("/top")
        text = (await ann.next_message())["text"]
        lines = text.split("\n")
        rated = [line for line in lines if re.match(r"\d+\. ", line)]
        assert [line.split(":")[0] for line in rated[:3]] == [
            "1. GPT Test",
            "2. Mistral Test",
            "3. Llama Test",
        ]
        assert (
            "Provisional" in text
            and "1. Local Test"
            in lines[
                lines.index(next(line for line in lines if line.startswith("Provisional"))) + 1
            ]
        )
        first = re.search(r": (\d+) \((\d+)–(\d+)\), (\d+) battles", rated[0])
        assert first is not None
        rating, low, high, battles = map(int, first.groups())
        assert low < rating < high and battles == 80


async def test_merge_writes_one_answer_from_a_comparison(redis_url: str, tmp_path: Path) -> None:
    async with running_bot(redis_url, tmp_path, daily_limit=DAILY) as h:
        ann = h.tg.user(first_name="Ann")
        await ann.send("/compare which is best?")
        for title in ("GPT Test", "Mistral Test", "Llama Test"):
            await ann.wait_message(lambda m, t=title: f"Continue with {t}" in labels(m), timeout=10)
        before = await credits_left(ann)
        h.openai.replies["gpt-test"] = Reply(text="The merged answer.")
        await ann.click(EN.merge_button)
        await ann.wait_message(contains=EN.merge_continued.format(model="GPT Test"), timeout=10)
        request = h.openai.calls("/chat/completions")[-1].json
        (sent,) = request["messages"]  # one message: no history
        for title in ("GPT Test", "Mistral Test", "Llama Test"):
            assert f"Answer from {title}:\necho: which is best?" in sent["content"]
        assert "which is best?" in sent["content"]
        assert await credits_left(ann) == before - 1
        h.openai.replies.clear()
        await ann.send("and then?")
        await ann.wait_message(contains="echo: and then?", timeout=10)
        history = h.openai.calls("/chat/completions")[-1].json["messages"]
        assert [m["content"] for m in history] == [
            "which is best?",
            "The merged answer.",
            "and then?",
        ]


async def test_two_replicas_take_one_vote_per_battle(redis_url: str, tmp_path: Path) -> None:
    async with running_webhook_bot(redis_url, tmp_path, replicas=2) as h:
        assert h.balancer is not None
        ann = h.tg.user(first_name="Ann")
        second = await battle(h, ann, "replicated?")
        # two presses at once, each a separate update: the balancer sends them to
        # different replicas, which race for the one vote
        presses = [
            await ann.click(label, message_id=second["message_id"])
            for label in (EN.arena_a_better, EN.arena_b_better)
        ]
        answers = [(await h.tg.wait_callback_answer(q["id"])).params["text"] for q in presses]
        assert sorted(answers) == sorted([EN.arena_counted, EN.arena_already])
        routed = dict(h.balancer.routed[-2:])
        assert len(set(routed.values())) == 2  # one press each
        pairs = await pair_counts(h, redis_url)
        assert sum(int(v) for v in pairs.values()) == 1


async def test_votes_over_the_daily_cap_are_thanked_not_counted(
    redis_url: str, tmp_path: Path
) -> None:
    async with running_bot(redis_url, tmp_path, arena_daily_votes=1) as h:
        ann = h.tg.user(first_name="Ann")
        said = []
        for i in range(2):
            second = await battle(h, ann, f"question {i}")
            vote = await ann.click(EN.arena_b_better, message_id=second["message_id"])
            said.append((await h.tg.wait_callback_answer(vote["id"])).params["text"])
        assert said == [EN.arena_counted, EN.arena_over_cap.format(limit=1)]
        pairs = await pair_counts(h, redis_url)
        assert sum(int(v) for v in pairs.values()) == 1
