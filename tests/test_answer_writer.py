"""The answer writer driven directly: a real aiogram Bot against the fake Bot API, no app."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator

import pytest
from aiogram import Bot

from bot.services.answer_writer import AnswerWriter
from bot.services.pacer import DRAFT_INTERVAL, EDIT_INTERVAL, MAX_STRETCH, Pacer
from bot.services.target import Target
from bot.settings import Settings
from bot.telegram import make_bot
from bot.texts import EN
from tests.doubles.telegram import Call, TelegramDouble

pytestmark = pytest.mark.asyncio

SLACK = 0.05  # seconds of scheduling jitter allowed below a pacing interval
DRAFT_GAP = max(DRAFT_INTERVAL, 0.7) - SLACK
EDIT_GAP = max(EDIT_INTERVAL, 1.0) - SLACK

HOSTILE = (
    "Start **bold without end and __under and `tick\n\n"
    "<script>alert(1)</script> then a < b && c > d &amp; &#0; &#xD800;\n\n"
    "Emoji 😀👍🏽 family 👨‍👩‍👧 math 𝕏𝕐 and [link](javascript:x) and [ok](https://example.com)\n\n"
    "* * *\n\n"
    "> quote > > deeper\n>> nested\n\n"
    "1. one\n   - **two\n\n"
    "````\n```python\nnested fence\n```\n````\n\n"
    "| a | b |\n|---|\n| *x |\n\n"
    "||spoiler **cross|| over** ~~strike _mixed~~ end_\n\n"
    "~~~\nunclosed fence with *stars* and <b>tags</b> 𝕏\n"
)


@pytest.fixture
async def tg() -> AsyncIterator[TelegramDouble]:
    async with TelegramDouble() as double:
        yield double


@pytest.fixture
def pacer() -> Pacer:
    return Pacer()


@pytest.fixture
async def bot(tg: TelegramDouble, pacer: Pacer) -> AsyncIterator[Bot]:
    """The bot's own client: its session is what retries and tells the pacer of 429s."""
    client, patient = make_bot(Settings(bot_token=tg.token, telegram_api_url=tg.url))
    patient.on_flood = pacer.flood
    try:
        yield client
    finally:
        await client.session.close()


def writer_for(
    bot: Bot,
    pacer: Pacer,
    chat_id: int,
    private: bool = True,
    reply_to: int | None = None,
    **options: object,
) -> AnswerWriter:
    target = Target(chat_id, chat_id, private=private, reply_to=reply_to)
    return AnswerWriter(bot, pacer, target, texts=EN, **options)  # type: ignore[arg-type]


def gaps(calls: list[Call]) -> list[float]:
    times = sorted(c.time for c in calls)
    return [b - a for a, b in itertools.pairwise(times)]


async def stream(writer: AnswerWriter, words: list[str], delay: float) -> None:
    for index, word in enumerate(words):
        writer.append(word if index == 0 else f" {word}")
        await asyncio.sleep(delay)  # the model's pace, not a wait for the bot


async def test_every_prefix_of_hostile_markdown_is_accepted(
    tg: TelegramDouble, bot: Bot, pacer: Pacer
) -> None:
    chat = tg.user().id
    for end in range(1, len(HOSTILE) + 1):
        writer = writer_for(bot, pacer, chat)
        await writer.finish(HOSTILE[:end])
    failed = tg.calls(ok=False)
    assert failed == [], [(c.params.get("text"), c.description) for c in failed[:3]]
    assert len(tg.calls("sendMessage", chat)) >= len(HOSTILE) - 5  # blank prefixes send nothing


async def test_writers_sharing_a_chat_share_its_pace(
    tg: TelegramDouble, bot: Bot, pacer: Pacer
) -> None:
    """Two answers streaming at once in one chat (/compare) make one update per interval
    between them, not one each."""
    chat = tg.user().id
    writers = [writer_for(bot, pacer, chat, use_draft=False) for _ in range(2)]
    for writer in writers:
        await writer.start()
    await asyncio.gather(
        *(stream(w, [f"{n}word{i}" for i in range(23)], 0.1) for n, w in enumerate(writers))
    )
    streaming = len(tg.api_calls)
    for writer in writers:
        await writer.finish()
    updates = [c for c in tg.api_calls[:streaming] if c.method == "editMessageText"]
    assert len(updates) >= 2
    assert min(gaps(updates)) >= EDIT_GAP, gaps(updates)
    assert tg.calls(ok=False) == []


async def test_a_429_on_a_draft_is_waited_out(tg: TelegramDouble, bot: Bot, pacer: Pacer) -> None:
    chat = tg.user().id
    tg.fail_next("sendMessageDraft", 429, retry_after=1)
    writer = writer_for(bot, pacer, chat)
    await writer.start()
    await stream(writer, [f"word{i}" for i in range(16)], 0.1)
    await writer.finish()
    drafts = tg.calls("sendMessageDraft", chat)
    assert drafts[0].status == 429
    assert len(drafts) >= 2 and all(d.ok for d in drafts[1:])
    assert drafts[1].time - drafts[0].time >= 1.0 - SLACK
    assert min(gaps(drafts)) >= DRAFT_GAP, gaps(drafts)
    assert [m["text"] for m in tg.messages(chat)] == [" ".join(f"word{i}" for i in range(16))]


async def test_refused_formatting_falls_back_to_plain_text(
    tg: TelegramDouble, bot: Bot, pacer: Pacer
) -> None:
    chat = tg.user().id
    tg.fail_next("sendMessage", 400, "Bad Request: can't parse entities: Unsupported start tag")
    writer = writer_for(bot, pacer, chat)
    ids = await writer.finish("some **bold** text")
    sends = tg.calls("sendMessage", chat)
    assert [c.status for c in sends] == [400, 200]
    assert sends[0].params.get("entities") and not sends[1].params.get("entities")
    assert [m["text"] for m in tg.messages(chat)] == ["some bold text"]
    assert ids == [tg.messages(chat)[0]["message_id"]]


async def test_server_errors_on_the_final_message_are_retried(
    tg: TelegramDouble, bot: Bot, pacer: Pacer
) -> None:
    chat = tg.user().id
    tg.fail_next("sendMessage", 502)
    writer = writer_for(bot, pacer, chat)
    ids = await writer.finish("delivered anyway")
    assert [c.status for c in tg.calls("sendMessage", chat)] == [502, 200]
    assert [m["text"] for m in tg.messages(chat)] == ["delivered anyway"]
    assert len(ids) == 1


async def test_a_blocked_user_costs_nothing_but_the_answer(
    tg: TelegramDouble, bot: Bot, pacer: Pacer
) -> None:
    user = tg.user()
    user.block()
    writer = writer_for(bot, pacer, user.id)
    await writer.start()
    writer.append("nobody will read this")
    assert await writer.finish() == []
    assert tg.messages(user.id) == []
    assert writer.unreachable.is_set() and not writer.reached
    # the first 403 ended it: no final message was tried after the refused draft
    assert tg.calls("sendMessage", user.id) == []


async def test_long_answer_in_a_group_edits_the_reply_then_adds_messages(
    tg: TelegramDouble, bot: Bot, pacer: Pacer
) -> None:
    group = tg.group()
    ann = tg.user()
    question = await ann.send("@manymodels_bot write a lot", chat=group)
    paragraphs = [" ".join(f"p{i}w{j}" for j in range(60)) for i in range(40)]
    writer = writer_for(bot, pacer, group.id, private=False, reply_to=question["message_id"])
    await writer.start()
    writer.append("\n\n".join(paragraphs))
    ids = await writer.finish()
    assert len(ids) >= 3
    messages = [m for m in group.messages() if m["from"]["id"] == tg.bot_id]
    assert [m["message_id"] for m in messages] == ids
    assert messages[0]["reply_to_message"]["message_id"] == question["message_id"]
    joined = "\n\n".join(m["text"] for m in messages)
    assert joined == "\n\n".join(paragraphs)
    assert tg.calls("sendMessageDraft") == [] and tg.calls(ok=False) == []


async def test_a_lagging_process_stretches_updates_but_not_the_first_text(
    tg: TelegramDouble, bot: Bot, pacer: Pacer
) -> None:
    """Short of CPU (the pacer measured a late loop), updates after the first text wait
    several intervals; the first text and the final message do not."""
    chat = tg.user().id
    for _ in range(10):
        pacer.lag(1.0)
    assert pacer.stretch == MAX_STRETCH
    writer = writer_for(bot, pacer, chat)
    await writer.start()
    await asyncio.sleep(0.4)  # the "Thinking…" draft is out, and its short hold over
    started = time.monotonic()
    await stream(writer, [f"word{i}" for i in range(30)], 0.1)
    await writer.finish()
    drafts = tg.calls("sendMessageDraft", chat)
    texts = [c for c in drafts if c.params.get("text")]
    assert texts[0].time - started < DRAFT_INTERVAL  # the first text without a stretched wait
    # the next waited its interval stretched (it recovers slowly, from the fourfold)
    assert len(texts) >= 2 and texts[1].time - texts[0].time >= 2 * DRAFT_INTERVAL
    assert [m["text"] for m in tg.messages(chat)] == [" ".join(f"word{i}" for i in range(30))]
