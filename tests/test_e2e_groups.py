"""End to end, groups: the bot answers only when mentioned or replied to, streams by
editing one reply at the group's pace, and keeps history per group and user."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from bot.services.pacer import FIRST_INTERVAL, GROUP_INTERVAL
from bot.texts import EN
from tests.doubles.base import Reply
from tests.doubles.telegram import Call
from tests.harness import running_bot

pytestmark = pytest.mark.asyncio

SLACK = 0.05  # seconds of scheduling jitter allowed below a pacing interval
# No faster than the bot's group pace, nor than Telegram's 20 messages a minute in a group.
GROUP_GAP = max(GROUP_INTERVAL, 3.0) - SLACK


def gaps(calls: list[Call]) -> list[float]:
    times = [c.time for c in calls]
    return [b - a for a, b in itertools.pairwise(times)]


def asked(double: Any) -> list[list[str]]:
    """The message contents of every chat request a model double received."""
    return [
        [m["content"] for m in r.json["messages"]]
        for r in double.requests
        if r.method == "POST" and r.json
    ]


async def test_group_ignores_what_is_not_addressed_and_streams_an_edited_reply(
    redis_url: str, tmp_path: Path
) -> None:
    words = [f"w{i:02d}" for i in range(13)]
    full = " ".join(words)
    async with running_bot(redis_url, tmp_path) as h:
        group = h.tg.group()
        ann = h.tg.user(first_name="Ann")
        bot = f"@{h.tg.username}"
        h.openai.replies["gpt-test"] = Reply(text=full, chunk_delay=0.3, first_delay=0.2)
        await ann.send("talking to people, not to the bot", chat=group)
        await ann.send_sticker(chat=group)
        await ann.send(f"{bot} what is 2+2?", chat=group)
        question = group.messages()[-1]
        final = await ann.wait_message(lambda m: m["text"] == full, chat=group, timeout=10)

        # only the mention reached the model, without the mention itself
        assert asked(h.openai) == [["what is 2+2?"]]
        assert h.llm_requests() == h.openai.calls("/chat/completions")
        # one reply to the question, edited in place while the answer streamed
        sends = h.tg.calls("sendMessage", group.id)
        assert len(sends) == 1 and sends[0].ok
        assert sends[0].params["text"] == EN.thinking
        assert final["reply_to_message"]["message_id"] == question["message_id"]
        assert [m["message_id"] for m in ann.bot_messages(chat=group)] == [final["message_id"]]
        edits = h.tg.calls("editMessageText", group.id)
        assert len(edits) >= 2  # at least one while streaming, then the full text
        assert all(int(e.params["message_id"]) == final["message_id"] for e in edits)
        assert edits[-1].params["text"] == full
        for edit in edits[:-1]:
            assert full.startswith(edit.params["text"]) and edit.params["text"] != full
        streaming = [sends[0], *edits[:-1]]
        assert gaps(streaming)[0] >= FIRST_INTERVAL - SLACK, gaps(streaming)
        assert min(gaps(streaming)[1:], default=GROUP_GAP) >= GROUP_GAP, gaps(streaming)
        assert h.tg.calls("sendMessageDraft") == []  # drafts are for private chats only
        assert h.tg.calls(ok=False) == []


async def test_group_reply_to_the_bot_and_history_per_group_and_user(
    redis_url: str, tmp_path: Path
) -> None:
    async with running_bot(redis_url, tmp_path) as h:
        group = h.tg.group()
        ann, bob = h.tg.user(first_name="Ann"), h.tg.user(first_name="Bob")
        bot = f"@{h.tg.username}"

        await ann.send(f"{bot} my name is Ann", chat=group)
        first = await ann.wait_message(
            lambda m: m["text"] == "echo: my name is Ann", chat=group, timeout=10
        )
        # a reply to the bot's message, without a mention, is answered with the context
        await ann.send("what is my name?", chat=group, reply_to=first)
        await ann.wait_message(
            lambda m: m["text"] == "echo: what is my name?", chat=group, timeout=10
        )
        assert asked(h.openai)[-1] == [
            "my name is Ann",
            "echo: my name is Ann",
            "what is my name?",
        ]
        # another member of the same group has a conversation of their own
        await bob.send(f"who am I? {bot}", chat=group)
        await bob.wait_message(lambda m: m["text"] == "echo: who am I?", chat=group, timeout=10)
        assert asked(h.openai)[-1] == ["who am I?"]
        # Ann's private chat does not see her group conversation...
        await ann.send("hello in private")
        assert (await ann.next_message())["text"] == "echo: hello in private"
        assert asked(h.openai)[-1] == ["hello in private"]
        # ...nor does the group see her private one
        await ann.send(f"{bot} and again", chat=group)
        await ann.wait_message(lambda m: m["text"] == "echo: and again", chat=group, timeout=10)
        assert asked(h.openai)[-1] == [
            "my name is Ann",
            "echo: my name is Ann",
            "what is my name?",
            "echo: what is my name?",
            "and again",
        ]
        assert h.tg.calls(ok=False) == []


async def test_group_model_command_addressed_to_the_bot(redis_url: str, tmp_path: Path) -> None:
    async with running_bot(redis_url, tmp_path) as h:
        group = h.tg.group()
        ann = h.tg.user(first_name="Ann")
        await ann.send("/model@some_other_bot llama", chat=group)  # not for us: ignored
        await ann.send(f"/model@{h.tg.username} mistral", chat=group)
        switched = await ann.next_message(chat=group)
        assert switched["text"] == EN.model_switched.format(model="Mistral Test")
        await ann.send(f"@{h.tg.username} which model?", chat=group)
        await ann.wait_message(lambda m: m["text"] == "echo: which model?", chat=group)
        assert asked(h.mistral) == [["which model?"]]
        assert h.llm_requests() == h.mistral.calls("/chat/completions")
        assert len(h.tg.calls("sendMessage", group.id)) == 2
        assert h.tg.calls(ok=False) == []
