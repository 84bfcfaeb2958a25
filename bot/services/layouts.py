"""How an answer looks in Telegram: a rich message (Bot API 10.1 blocks, built by
:mod:`bot.rich`) or text with entities (:mod:`bot.render`). The answer writer streams and
delivers through one layout and switches to the text one when Telegram refuses rich
messages; :class:`RichSwitch` remembers the refusal for the whole process.

A layout turns the answer's Markdown (and a reasoning model's thoughts) into messages,
for a draft or an edit while it streams, and for the final delivery, and builds the Bot
API calls that carry them. Around the answer: a header (``/compare``'s model title), the
model's reasoning (live, then collapsed), a footer (time and tokens).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from aiogram.exceptions import TelegramBadRequest, TelegramNotFound
from aiogram.methods import (
    EditMessageText,
    SendMessage,
    SendMessageDraft,
    SendRichMessage,
    SendRichMessageDraft,
)
from aiogram.types import InlineKeyboardMarkup, LinkPreviewOptions, MessageEntity

from bot import rich
from bot.render import MAX_MESSAGE_LENGTH, Part, render, render_async, utf16_len
from bot.services.target import Target

log = logging.getLogger(__name__)

Content = Part | rich.RichPart


@dataclass(frozen=True)
class Preview:
    """An unfinished answer's messages; when there are several, ``end`` is where in its
    Markdown the last one's source starts (None: not known, show the last only)."""

    parts: list[Content]
    end: int | None = None


Method = SendMessage | SendRichMessage
Draft = SendMessageDraft | SendRichMessageDraft

RICH_PAUSE = 600.0  # seconds without rich messages after Telegram refused one (auto)
LIVE_THOUGHTS = 1_000  # characters of the reasoning shown while the model thinks
KEPT_THOUGHTS = 3_000  # characters of it kept, collapsed, in a text answer
_NO_PREVIEW = LinkPreviewOptions(is_disabled=True)


class RichSwitch:
    """Whether answers go out as rich messages: ``RICH_MESSAGES`` and, with ``auto``,
    no refusal from Telegram in the last ``RICH_PAUSE`` seconds (per process)."""

    def __init__(
        self, mode: Literal["auto", "off"] = "auto", clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.mode = mode
        self.clock = clock
        self._paused_until = 0.0

    @property
    def on(self) -> bool:
        return self.mode == "auto" and self.clock() >= self._paused_until

    def refused(self, chat_id: int, error: Exception) -> None:
        """Telegram refused a rich message: text for the next ``RICH_PAUSE`` seconds."""
        if self.on:  # logged once a pause
            log.warning(
                "chat %s: Telegram refused a rich message (%s); text for %d minutes",
                chat_id,
                error,
                RICH_PAUSE // 60,
            )
        self._paused_until = self.clock() + RICH_PAUSE


def rich_refusal(error: Exception) -> bool:
    """Whether a failed rich call means "no rich messages here": an unknown method (an
    older Bot API server) or a 400 about the content; "not modified" is not one."""
    if isinstance(error, TelegramNotFound):
        return True
    return isinstance(error, TelegramBadRequest) and "not modified" not in error.message


class TextLayout:
    """Text with entities, split at 4096 UTF-16 units (today's Telegram messages)."""

    is_rich = False

    def __init__(self, header: Part | None = None, header_room: int = 0) -> None:
        self.header = header
        self.header_room = header_room

    async def preview(
        self, markdown: str, thoughts: str, first: bool, draft: bool, summary: str
    ) -> Preview:
        prefix = self._prefix(first, _tail(thoughts, LIVE_THOUGHTS), summary)
        limit = self._limit(prefix)
        parts = await render_async(markdown, limit) if markdown.strip() else []
        end = await asyncio.to_thread(_text_cut, markdown, limit) if len(parts) > 1 else None
        return Preview(list(_prefixed_first(prefix, parts)), end)

    async def final(
        self, markdown: str, thoughts: str, first: bool, summary: str, footer: str | None
    ) -> list[Part]:
        prefix = self._prefix(first, _tail(thoughts, KEPT_THOUGHTS), summary)
        parts = await render_async(markdown, self._limit(prefix))
        return with_footer(_prefixed_first(prefix, parts), footer)

    def empty_draft(self, text: str, first: bool) -> None:
        """A draft before any text: empty, Telegram shows its own "Thinking…"."""
        return None

    def placeholder(self, text: str, first: bool) -> Part:
        prefix = self._prefix(first, "", "")
        return _prefixed_first(prefix, [Part(text, [])])[0]

    def _prefix(self, first: bool, thoughts: str, summary: str) -> Part | None:
        header = self.header if first else None
        quote = _quote(summary, thoughts) if thoughts.strip() else None
        if header is None or quote is None:
            return header or quote
        return prefixed(header, quote)

    def _limit(self, prefix: Part | None) -> int:
        used = utf16_len(prefix.text) if prefix is not None else 0
        return MAX_MESSAGE_LENGTH - used - self.header_room

    @staticmethod
    def same(a: Content | None, b: Content | None) -> bool:
        return isinstance(a, Part) and isinstance(b, Part) and a.text == b.text

    @staticmethod
    def draft(part: Content | None, chat_id: int, draft_id: int, thread: int | None,
              can_stop: bool) -> SendMessageDraft:  # fmt: skip
        assert part is None or isinstance(part, Part)
        return SendMessageDraft(
            chat_id=chat_id,
            draft_id=draft_id,
            can_stop=True if can_stop else None,
            text=part.text if part is not None else None,
            entities=part.entities or None if part is not None else None,
            message_thread_id=thread,
        )

    @staticmethod
    def send(part: Content, target: Target, markup: InlineKeyboardMarkup | None) -> SendMessage:
        assert isinstance(part, Part)
        return SendMessage(
            chat_id=target.chat_id,
            text=part.text,
            entities=part.entities or None,
            message_thread_id=target.thread_id,
            reply_parameters=target.reply_parameters(),
            reply_markup=markup,
            link_preview_options=_NO_PREVIEW,
        )

    @staticmethod
    def edit(
        part: Content, chat_id: int, message_id: int, markup: InlineKeyboardMarkup | None
    ) -> EditMessageText:
        assert isinstance(part, Part)
        return EditMessageText(
            chat_id=chat_id,
            message_id=message_id,
            text=part.text,
            entities=part.entities or None,
            reply_markup=markup,
            link_preview_options=_NO_PREVIEW,
        )


class RichLayout:
    """Rich messages: real tables, formulas and headings, 32,768 characters a message;
    the reasoning live in a ``thinking`` block (drafts) and then collapsed in a
    ``details`` block."""

    is_rich = True

    def __init__(self, header: Part | None = None, header_room: int = 0) -> None:
        self.header = [rich.paragraph(header.text, header.entities)] if header else []
        self.limit = rich.MAX_CHARS - header_room
        self._streams: dict[bool, rich.RichStream] = {}
        self._streamed: str | None = None  # the segment the streams were fed

    async def preview(
        self, markdown: str, thoughts: str, first: bool, draft: bool, summary: str
    ) -> Preview:
        stream = self._stream(markdown, first)
        parts = stream.feed(markdown) if markdown.strip() else []
        end = parts[-2].source_end if len(parts) > 1 else None
        if not thoughts.strip():
            return Preview(list(parts), end)
        live = rich.thinking(thoughts, max_chars=LIVE_THOUGHTS) if draft else None
        block = live or rich.details(summary, thoughts, max_chars=LIVE_THOUGHTS)
        if not parts:
            return Preview([_part([*self.header, block] if first else [block])])
        at = len(self.header) if len(parts) == 1 and first else 0
        last = parts[-1]
        blocks = [*last.blocks[:at], block, *last.blocks[at:]]
        if rich.measure(blocks)[1] > rich.MAX_BLOCKS:  # no room for the thoughts
            return Preview(list(parts), end)
        return Preview([*parts[:-1], _part(blocks, last)], end)

    async def final(
        self, markdown: str, thoughts: str, first: bool, summary: str, footer: str | None
    ) -> list[rich.RichPart]:
        opening: list[rich.Block] = list(self.header) if first else []
        if thoughts.strip():
            opening.append(rich.details(summary, thoughts))
        closing = [rich.paragraph(footer, [_italic(footer)])] if footer else []
        return rich.split(markdown, first=opening, last=closing, limit=self.limit)

    def empty_draft(self, text: str, first: bool) -> rich.RichPart:
        """A draft before any text: Telegram's "Thinking…" block (under the header)."""
        block = rich.thinking(text)
        return _part([*self.header, block] if first else [block])

    def placeholder(self, text: str, first: bool) -> rich.RichPart:
        note = rich.paragraph(text, [_italic(text)])
        return _part([*self.header, note] if first else [note])

    def _stream(self, markdown: str, first: bool) -> rich.RichStream:
        """The incremental renderer of this segment (a new one when the segment moved)."""
        stream = self._streams.get(first)
        if stream is None or self._streamed is None or not markdown.startswith(self._streamed):
            stream = rich.RichStream(first=self.header if first else (), limit=self.limit)
            self._streams = {first: stream}
        self._streamed = markdown
        return stream

    @staticmethod
    def same(a: Content | None, b: Content | None) -> bool:
        return (
            isinstance(a, rich.RichPart) and isinstance(b, rich.RichPart) and a.blocks == b.blocks
        )

    @staticmethod
    def draft(part: Content | None, chat_id: int, draft_id: int, thread: int | None,
              can_stop: bool) -> SendRichMessageDraft:  # fmt: skip
        assert isinstance(part, rich.RichPart)
        return SendRichMessageDraft(
            chat_id=chat_id,
            draft_id=draft_id,
            rich_message=part.message(),
            message_thread_id=thread,
            can_stop=True if can_stop else None,
        )

    @staticmethod
    def send(part: Content, target: Target, markup: InlineKeyboardMarkup | None) -> SendRichMessage:
        assert isinstance(part, rich.RichPart)
        return SendRichMessage(
            chat_id=target.chat_id,
            rich_message=part.message(),
            message_thread_id=target.thread_id,
            reply_parameters=target.reply_parameters(),
            reply_markup=markup,
        )

    @staticmethod
    def edit(
        part: Content, chat_id: int, message_id: int, markup: InlineKeyboardMarkup | None
    ) -> EditMessageText:
        assert isinstance(part, rich.RichPart)
        return EditMessageText(
            chat_id=chat_id, message_id=message_id, rich_message=part.message(), reply_markup=markup
        )


Layout = TextLayout | RichLayout


def source_end(part: Content) -> int | None:
    """Where in the segment's Markdown the next message's source starts, if known."""
    return part.source_end if isinstance(part, rich.RichPart) else None


def _text_cut(markdown: str, limit: int) -> int | None:
    """The longest start of ``markdown`` that ends at a blank line outside code and
    renders as one message; None if there is none."""
    cuts = _blank_lines(markdown)
    low, high, best = 0, len(cuts) - 1, None
    while low <= high:
        middle = (low + high) // 2
        if len(render(markdown[: cuts[middle]], limit)) <= 1:
            best, low = cuts[middle], middle + 1
        else:
            high = middle - 1
    return best


def _blank_lines(markdown: str) -> list[int]:
    """Offsets just after each blank line that is not inside a fenced code block."""
    cuts: list[int] = []
    fence = ""
    offset = 0
    for line in markdown.splitlines(keepends=True):
        offset += len(line)
        stripped = line.strip()
        if fence:
            if stripped.startswith(fence) and not stripped.strip(fence[0]):
                fence = ""
        elif stripped.startswith(("```", "~~~")):
            fence = stripped[: len(stripped) - len(stripped.lstrip(stripped[0]))]
        elif not stripped and offset < len(markdown):
            cuts.append(offset)
    return cuts


def with_footer(parts: list[Part], footer: str | None) -> list[Part]:
    """The footer in italics after the last part, or as a part of its own if it won't fit."""
    if not footer:
        return parts
    if not parts:
        return [Part(footer, [_italic(footer)])]
    last = parts[-1]
    gap = "\n\n"
    if utf16_len(last.text) + len(gap) + utf16_len(footer) > MAX_MESSAGE_LENGTH:
        return [*parts, *with_footer([], footer)]
    italic = _italic(footer, utf16_len(last.text) + len(gap))
    return [*parts[:-1], Part(last.text + gap + footer, [*last.entities, italic])]


def prefixed(header: Part, part: Part) -> Part:
    """``header`` followed by ``part``, the part's entities moved past the header."""
    shift = utf16_len(header.text)
    moved = [e.model_copy(update={"offset": e.offset + shift}) for e in part.entities]
    return Part(header.text + part.text, [*header.entities, *moved])


def _prefixed_first(prefix: Part | None, parts: list[Part]) -> list[Part]:
    if prefix is None:
        return parts
    if not parts:
        return [Part(prefix.text.rstrip("\n"), prefix.entities)]
    return [prefixed(prefix, parts[0]), *parts[1:]]


def _quote(summary: str, thoughts: str) -> Part:
    """The model's reasoning as an expandable block quote, its summary first in italics."""
    text = f"{summary}\n{thoughts}" if summary else thoughts
    entities = [MessageEntity(type="expandable_blockquote", offset=0, length=utf16_len(text))]
    if summary:
        entities.append(_italic(summary))
    return Part(f"{text}\n\n", entities)


def _tail(text: str, limit: int) -> str:
    """The end of ``text``, at most ``limit`` characters, from a line or word start."""
    text = text.strip()
    if len(text) <= limit:
        return text
    cut = text[-limit:]
    starts = [i for i in (cut.find("\n"), cut.find(" ")) if 0 <= i < limit // 4]
    return "…" + (cut[min(starts) + 1 :] if starts else cut)


def _italic(text: str, offset: int = 0) -> MessageEntity:
    return MessageEntity(type="italic", offset=offset, length=utf16_len(text))


def _part(blocks: Sequence[rich.Block], like: rich.RichPart | None = None) -> rich.RichPart:
    chars, count, _ = rich.measure(blocks)
    end = like.source_end if like is not None else None
    return rich.RichPart(tuple(blocks), chars, count, end)
