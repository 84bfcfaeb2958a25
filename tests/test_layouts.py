"""The layouts an answer writer renders through: the rich-message switch and its pause,
where a streamed text answer may end one message and start the next, and the text
layout's reasoning quote, header and footer."""

from __future__ import annotations

import logging

import pytest
from aiogram.exceptions import TelegramBadRequest, TelegramNotFound
from aiogram.methods import SendRichMessage
from aiogram.types import InputRichMessage, MessageEntity

from bot.render import MAX_MESSAGE_LENGTH, Part, render, utf16_len
from bot.services.layouts import (
    RICH_PAUSE,
    RichLayout,
    RichSwitch,
    TextLayout,
    _blank_lines,
    _text_cut,
    rich_refusal,
)

METHOD = SendRichMessage(chat_id=1, rich_message=InputRichMessage(markdown="x"))


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_switch_pauses_rich_messages_after_a_refusal_and_logs_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    switch = RichSwitch("auto", clock)
    assert switch.on
    with caplog.at_level(logging.WARNING):
        switch.refused(1, TelegramNotFound(METHOD, "Not Found"))
        switch.refused(2, TelegramNotFound(METHOD, "Not Found"))
    assert not switch.on
    assert sum("refused a rich message" in r.message for r in caplog.records) == 1
    clock.now += RICH_PAUSE - 1
    assert not switch.on
    clock.now += 1
    assert switch.on
    assert not RichSwitch("off", clock).on


def test_what_counts_as_a_refusal_of_rich_messages() -> None:
    assert rich_refusal(TelegramNotFound(METHOD, "Not Found"))
    assert rich_refusal(TelegramBadRequest(METHOD, "Bad Request: rich message is too long"))
    assert not rich_refusal(TelegramBadRequest(METHOD, "Bad Request: message is not modified"))


def test_blank_lines_inside_code_fences_are_no_place_to_cut() -> None:
    text = "one\n\n```\ncode\n\nmore code\n```\n\ntwo\n\n~~~~\n\n~~~\n\n~~~~\nthree"
    cuts = _blank_lines(text)
    assert [text[c:].split("\n", 1)[0] for c in cuts] == ["```", "two", "~~~~"]


def test_a_text_cut_is_the_longest_start_that_fits_one_message() -> None:
    paragraphs = [f"Paragraph {i}: " + "words " * 150 for i in range(12)]
    text = "\n\n".join(paragraphs)
    cut = _text_cut(text, MAX_MESSAGE_LENGTH)
    assert cut is not None
    assert len(render(text[:cut])) == 1
    assert text[cut:].startswith("Paragraph ")
    longer = text.index("\n\n", cut) + 2
    assert len(render(text[:longer])) > 1
    assert _text_cut("x" * 10_000, MAX_MESSAGE_LENGTH) is None


async def test_the_text_layout_quotes_the_reasoning_above_the_answer() -> None:
    header = Part("GPT\n", [MessageEntity(type="bold", offset=0, length=3)])
    layout = TextLayout(header)
    summary = "Thought for 3 s"
    [part] = await layout.final("The **answer**.", "I weighed it.", True, summary, "1.0 s")
    assert part.text == "GPT\nThought for 3 s\nI weighed it.\n\nThe answer.\n\n1.0 s"
    types = [(e.type, part.text[e.offset : e.offset + e.length]) for e in part.entities]
    assert types == [
        ("bold", "GPT"),
        ("expandable_blockquote", "Thought for 3 s\nI weighed it."),
        ("italic", "Thought for 3 s"),
        ("bold", "answer"),
        ("italic", "1.0 s"),
    ]
    preview = await layout.preview("", "Thinking hard", True, True, "Thinking…")
    assert [p.text for p in preview.parts] == ["GPT\nThinking…\nThinking hard"]  # type: ignore[union-attr]


async def test_a_long_reasoning_keeps_its_end_within_one_message() -> None:
    thoughts = " ".join(f"step{i}" for i in range(5000))
    [part] = await TextLayout().final("Done.", thoughts, True, "Thought for 9 s", None)
    assert utf16_len(part.text) <= MAX_MESSAGE_LENGTH
    assert "step4999" in part.text and "step0 " not in part.text
    assert part.text.endswith("Done.")


async def test_the_rich_layout_puts_header_thoughts_answer_and_footer_in_order() -> None:
    header = Part("GPT\n", [MessageEntity(type="bold", offset=0, length=3)])
    [part] = await RichLayout(header).final("| a |\n|---|\n| 1 |", "Hm.", True, "Thought", "2 s")
    kinds = [b.type for b in part.blocks]
    assert kinds == ["paragraph", "details", "table", "paragraph"]
    preview = await RichLayout(header).preview("Partial **ans", "Hm.", True, True, "Thinking…")
    assert [b.type for b in preview.parts[-1].blocks] == ["paragraph", "thinking", "paragraph"]  # type: ignore[union-attr]
    edited = await RichLayout(header).preview("Partial", "Hm.", True, False, "Thinking…")
    assert [b.type for b in edited.parts[-1].blocks] == ["paragraph", "details", "paragraph"]  # type: ignore[union-attr]
