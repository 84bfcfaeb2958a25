"""End to end, private chats: how an answer streams in (drafts, pacing, the final
message), long and hostile answers, Telegram and provider failures, languages, and
content the bot does not handle."""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

import pytest

from bot.services.pacer import DRAFT_INTERVAL, EDIT_INTERVAL, FIRST_INTERVAL
from bot.texts import EN, RU, Texts
from tests.doubles.base import Reply
from tests.doubles.telegram import Call
from tests.harness import running_bot

pytestmark = pytest.mark.asyncio

SLACK = 0.05  # seconds of scheduling jitter allowed below a pacing interval
# Updates come no faster than the bot's own pace, nor than Telegram allows in a private
# chat (about one message a second; drafts a little more often).
DRAFT_GAP = max(DRAFT_INTERVAL, 0.7) - SLACK
EDIT_GAP = max(EDIT_INTERVAL, 1.0) - SLACK
ERROR_FIELDS = (
    "error_auth",
    "error_not_found",
    "error_bad_request",
    "error_context",
    "error_rate_limited",
    "error_timeout",
    "error_unavailable",
    "error_unsupported",
    "error_generic",
)


def gaps(calls: list[Call]) -> list[float]:
    """Seconds between consecutive calls (the double's monotonic arrival times)."""
    times = [c.time for c in calls]
    return [b - a for a, b in itertools.pairwise(times)]


def error_texts(texts: Texts, model: str) -> set[str]:
    return {getattr(texts, name).format(model=model) for name in ERROR_FIELDS}


def sent_contents(h: Any) -> list[str]:
    """The messages of the last request the OpenAI double got."""
    return [m["content"] for m in h.openai.calls("/chat/completions")[-1].json["messages"]]


def in_order(haystack: str, needles: list[str]) -> list[str]:
    """The needles not found in ``haystack`` in the given order (empty: all there)."""
    missing, position = [], 0
    for needle in needles:
        found = haystack.find(needle, position)
        if found == -1:
            missing.append(needle)
        else:
            position = found + len(needle)
    return missing


async def test_streamed_answer_shows_paced_drafts_then_one_final_message(
    redis_url: str, tmp_path: Path
) -> None:
    words = [f"word{i:02d}" for i in range(30)]
    full = " ".join(words)
    async with running_bot(redis_url, tmp_path) as h:
        h.openai.replies["gpt-test"] = Reply(text=full, chunk_delay=0.1, first_delay=0.3)
        ann = h.tg.user(first_name="Ann")
        await ann.send("stream please")
        final = await ann.next_message(timeout=10)
        assert final["text"] == full

        sends = h.tg.calls("sendMessage", ann.id)
        assert len(sends) == 1 and sends[0].ok
        drafts = h.tg.calls("sendMessageDraft", ann.id)
        assert drafts and all(d.ok for d in drafts)
        assert all(d.time < sends[0].time for d in drafts)  # no stale draft after the answer
        # before the first token: Telegram's own "Thinking…" (a draft without text)
        assert not drafts[0].text
        partial = [d.text for d in drafts if d.text]
        assert len(partial) >= 3, partial  # ~3 s of streaming at one draft per 0.7 s
        for text in partial:
            assert full.startswith(text) and len(text) < len(full), text
        assert len(partial[0]) < len(partial[-1])  # it grows
        texts = [d.text for d in drafts]
        assert all(a != b for a, b in itertools.pairwise(texts)), texts
        # the placeholder holds the slot briefly, then one draft per interval
        assert gaps(drafts)[0] >= FIRST_INTERVAL - SLACK, gaps(drafts)
        assert min(gaps(drafts)[1:]) >= DRAFT_GAP, gaps(drafts)
        # text came within a second: no "typing" was needed
        assert h.tg.calls("sendChatAction", ann.id) == []
        assert h.tg.calls(ok=False) == []


async def test_a_slow_first_token_shows_typing(redis_url: str, tmp_path: Path) -> None:
    async with running_bot(redis_url, tmp_path) as h:
        h.openai.replies["gpt-test"] = Reply(text="late", first_delay=1.5)
        ann = h.tg.user(first_name="Ann")
        await ann.send("take your time")
        assert (await ann.next_message(timeout=10))["text"] == "late"
        actions = h.tg.calls("sendChatAction", ann.id)
        assert [a.params["action"] for a in actions] == ["typing"]
        assert actions[0].time < h.tg.calls("sendMessage", ann.id)[0].time


async def test_long_markdown_answer_arrives_whole_in_several_messages(
    redis_url: str, tmp_path: Path
) -> None:
    blocks: list[str] = []
    expected: list[str] = []  # every token, in the order it must be shown
    for i in range(48):
        tokens = [f"p{i}w{j}" for j in range(28)]
        blocks.append(f"Paragraph {i} has **bold{i}** and " + " ".join(tokens) + ".")
        expected += [f"Paragraph {i}", f"bold{i}", *tokens]
        if i % 10 == 4:
            blocks.append(f"```python\ndef func{i}():\n    return code{i}\n```")
            expected += [f"def func{i}():\n    return code{i}"]
        if i % 10 == 7:
            items = [f"item{i}x{k}" for k in range(4)]
            blocks.append("\n".join(f"- {item} is *listed*" for item in items))
            expected += items
    blocks.append("THE_END")
    expected.append("THE_END")
    markdown = "\n\n".join(blocks)
    assert len(markdown) > 10_000
    async with running_bot(redis_url, tmp_path) as h:
        h.openai.replies["gpt-test"] = Reply(text=markdown)
        ann = h.tg.user(first_name="Ann")
        await ann.send("write a lot")
        messages: list[dict[str, Any]] = []
        while not messages or "THE_END" not in messages[-1]["text"]:
            messages.append(await ann.next_message(timeout=10))
            assert len(messages) <= 6, [m["text"][:40] for m in messages]
        assert len(messages) >= 3
        assert all(len(m["text"].encode("utf-16-le")) // 2 <= 4096 for m in messages)
        joined = "\n".join(m["text"] for m in messages)
        assert in_order(joined, expected) == []
        assert "**" not in joined and "```" not in joined  # rendered, not shown raw
        types = {e["type"] for m in messages for e in m["entities"]}
        assert {"bold", "italic", "pre"} <= types
        pre = [
            m["text"][e["offset"] : e["offset"] + e["length"]]
            for m in messages
            for e in m["entities"]
            if e["type"] == "pre" and e.get("language") == "python"
        ]
        assert any("return code4" in code for code in pre), pre
        assert h.tg.calls(ok=False) == []
        assert len(h.tg.calls("sendMessage", ann.id)) == len(messages)


HOSTILE = (
    "Start **bold without end and __under and `tick\n\n"
    "<script>alert(1)</script> then a < b && c > d\n\n"
    "Emoji 😀👍🏽 family 👨‍👩‍👧 math 𝕏𝕐 and [link](javascript:x) and [ok](https://example.com)\n\n"
    "* * *\n\n"
    "> quote > > deeper\n\n"
    "````\n```python\nnested fence\n```\n````\n\n"
    "| a | b |\n|---|\n\n"
    "~~~\nunclosed fence with *stars* and <b>tags</b> 𝕏\n"
)
HOSTILE_VISIBLE = [
    "Start",
    "bold without end",
    "<script>alert(1)</script>",
    "a < b && c > d",
    "😀👍🏽",
    "👨‍👩‍👧",
    "𝕏𝕐",
    "link",
    "nested fence",
    "unclosed fence with *stars* and <b>tags</b> 𝕏",
]


async def test_hostile_model_output_never_gets_a_400(redis_url: str, tmp_path: Path) -> None:
    chunks = [HOSTILE[i : i + 7] for i in range(0, len(HOSTILE), 7)]
    async with running_bot(redis_url, tmp_path) as h:
        h.openai.replies["gpt-test"] = Reply(chunks=chunks, chunk_delay=0.02)
        ann = h.tg.user(first_name="Ann")
        await ann.send("be nasty")
        parts = [await ann.next_message(timeout=10)]
        text = parts[0]["text"]
        assert in_order(text, HOSTILE_VISIBLE) == [], text
        assert not [e for e in parts[0]["entities"] if "javascript" in str(e.get("url"))]
        assert len([d for d in h.tg.drafts(ann.id) if d.text]) >= 1  # partial states shown
        failed = h.tg.calls(ok=False)
        assert failed == [], [(c.method, c.description) for c in failed]


async def test_429_on_the_final_message_is_waited_out(redis_url: str, tmp_path: Path) -> None:
    async with running_bot(redis_url, tmp_path) as h:
        ann = h.tg.user(first_name="Ann")
        h.tg.fail_next("sendMessage", 429, retry_after=1)
        await ann.send("hello there")
        answer = await ann.next_message(timeout=10)
        assert answer["text"] == "echo: hello there"
        sends = h.tg.calls("sendMessage", ann.id)
        assert [c.status for c in sends] == [429, 200]
        assert sends[1].time - sends[0].time >= 1.0 - SLACK
        assert sends[0].params["text"] == sends[1].params["text"]
        assert len(ann.bot_messages()) == 1


async def test_refused_drafts_fall_back_to_one_edited_message(
    redis_url: str, tmp_path: Path
) -> None:
    words = [f"part{i:02d}" for i in range(24)]
    full = " ".join(words)
    async with running_bot(redis_url, tmp_path) as h:
        h.openai.replies["gpt-test"] = Reply(text=full, chunk_delay=0.1)
        h.tg.fail_next("sendMessageDraft", 400, "Bad Request: TEXTDRAFT_PEER_INVALID", times=None)
        ann = h.tg.user(first_name="Ann")
        await ann.send("no drafts here")
        final = await ann.wait_message(lambda m: m["text"] == full, timeout=10)

        assert len(h.tg.calls("sendMessageDraft", ann.id)) == 1  # refused once, not retried
        sends = h.tg.calls("sendMessage", ann.id)
        assert len(sends) == 1 and sends[0].ok
        edits = h.tg.calls("editMessageText", ann.id)
        assert len(edits) >= 2  # at least one update while streaming, then the final text
        assert all(e.ok and int(e.params["message_id"]) == final["message_id"] for e in edits)
        assert [m["message_id"] for m in ann.bot_messages()] == [final["message_id"]]
        assert edits[-1].params["text"] == full
        streaming = [sends[0], *edits[:-1]]
        assert gaps(streaming)[0] >= FIRST_INTERVAL - SLACK, gaps(streaming)
        assert min(gaps(streaming)[1:], default=EDIT_GAP) >= EDIT_GAP, gaps(streaming)
        texts = [c.params["text"] for c in [sends[0], *edits]]
        assert all(a != b for a, b in itertools.pairwise(texts)), texts
        assert h.tg.calls("editMessageText", ok=False) == []


async def test_provider_failures_are_explained_and_never_enter_the_history(
    redis_url: str, tmp_path: Path
) -> None:
    upstream = "Traceback (most recent call last): KeyError secret-upstream-body-7731"
    async with running_bot(redis_url, tmp_path) as h:
        ann = h.tg.user(first_name="Ann")
        # before any text: both attempts fail (the catalog allows one retry)
        h.openai.queue.extend([Reply(status=500, error=upstream), Reply(status=500)])
        await ann.send("first question")
        text = (await ann.next_message(timeout=10))["text"]
        assert text in error_texts(EN, "GPT Test"), text
        assert len(text) < 160 and "\n" not in text
        for leak in ("Traceback", "Error", "Exception", "7731", "500", "HTTP"):
            assert leak not in text
        assert len(h.openai.calls("/chat/completions")) == 2  # the attempt and one retry
        assert len(h.tg.calls("sendMessage", ann.id)) == 1

        # midway: the text so far stays, with a note in italics; no retry after text
        h.openai.queue.append(Reply(text="one two three four five six", cut_after=3))
        await ann.send("count")
        reply = await ann.next_message(timeout=10)
        text = reply["text"]
        assert text.startswith("one two three\n"), text
        assert "four" not in text
        note = text[len("one two three") :].strip()
        reasons = error_texts(EN, "GPT Test")
        assert note in {EN.interrupted.format(reason=r) for r in reasons}, note
        italic = [e for e in reply["entities"] if e["type"] == "italic"]
        assert italic and text[italic[0]["offset"] :].startswith(note[:10])
        assert sent_contents(h) == ["count"]
        assert len(h.openai.calls("/chat/completions")) == 3

        await ann.send("second question")
        assert (await ann.next_message(timeout=10))["text"] == "echo: second question"
        assert sent_contents(h) == ["second question"]  # no failed exchange was recorded


async def test_russian_user_gets_russian_help(redis_url: str, tmp_path: Path) -> None:
    async with running_bot(redis_url, tmp_path) as h:
        ivan = h.tg.user(first_name="Иван", language_code="ru")
        await ivan.send("/help")
        sent = await h.tg.wait_for("sendMessage")
        assert sent.ok, sent.description
        help_text = (await ivan.next_message())["text"]
        assert "Текущая модель: GPT Test" in help_text
        assert all(f"/{command}" in help_text for command in RU.commands)
        assert "what I can do" not in help_text


async def test_russian_user_gets_russian_errors(redis_url: str, tmp_path: Path) -> None:
    async with running_bot(redis_url, tmp_path) as h:
        ivan = h.tg.user(first_name="Иван", language_code="ru")
        h.openai.queue.extend([Reply(status=503), Reply(status=503)])
        await ivan.send("вопрос")
        error = (await ivan.next_message(timeout=10))["text"]
        assert error in error_texts(RU, "GPT Test"), error
        assert error not in error_texts(EN, "GPT Test")

        h.openai.replies["gpt-test"] = Reply(text="раз два", cut_after=1)
        await ivan.send("ещё вопрос")
        cut = (await ivan.next_message(timeout=10))["text"]
        assert cut.startswith("раз\n") and "ответ прерван" in cut, cut

        await ivan.send_sticker()
        assert (await ivan.next_message())["text"] == RU.unsupported


async def test_unsupported_content_gets_a_short_answer_and_edits_are_ignored(
    redis_url: str, tmp_path: Path
) -> None:
    async with running_bot(redis_url, tmp_path) as h:
        ann = h.tg.user(first_name="Ann")
        for send in (
            ann.send_sticker,
            ann.send_voice,
            ann.send_document,
            ann.send_photo,
            ann.send_location,
        ):
            await send()
            reply = await ann.next_message()
            assert reply["text"] == EN.unsupported, send.__name__
            assert re.search(r"/help\b", reply["text"])
        await ann.send("/nonsense")
        assert (await ann.next_message())["text"] == EN.unknown_command.format(command="/nonsense")
        assert h.llm_requests() == []

        question = await ann.send("original question")
        assert (await ann.next_message())["text"] == "echo: original question"
        await ann.edit(question, "edited question")
        await ann.send("next question")
        assert (await ann.next_message())["text"] == "echo: next question"
        assert len(h.tg.calls("sendMessage", ann.id)) == 8
        asked = [
            m["content"] for r in h.openai.calls("/chat/completions") for m in r.json["messages"]
        ]
        assert "edited question" not in asked
        assert len(h.openai.calls("/chat/completions")) == 2
