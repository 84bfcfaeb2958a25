"""The answer writer: shows an answer growing in the chat, then delivers it whole.

Private chats stream with ``sendMessageDraft`` (an empty draft shows Telegram's own
"Thinking…") and finish with ``sendMessage``; groups, and private chats where drafts fail,
send one message and edit it. Intermediate updates go out at the chat's pace (shared
:class:`~bot.services.pacer.Pacer`), never twice with the same text, and may be dropped
(they are tried once: :func:`bot.telegram.best_effort`); the final messages are always
delivered (the bot's session waits out 429s and retries 5xx, see :mod:`bot.telegram`),
a message whose formatting Telegram rejects is sent as plain text, and an answer longer
than ``MAX_PARTS`` messages goes as a Markdown file after the first ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

from aiogram import Bot
from aiogram.enums import ChatAction
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.methods import (
    EditMessageReplyMarkup,
    EditMessageText,
    SendDocument,
    SendMessage,
    SendMessageDraft,
)
from aiogram.methods.base import TelegramMethod
from aiogram.types import (
    BufferedInputFile,
    InlineKeyboardMarkup,
    LinkPreviewOptions,
    Message,
    MessageEntity,
)

from bot.render import Part, render_async, render_preview_async, utf16_len
from bot.services.pacer import (
    DRAFT_INTERVAL,
    EDIT_INTERVAL,
    FIRST_INTERVAL,
    GROUP_INTERVAL,
    Pacer,
)
from bot.services.target import Target, show_action, wait_for
from bot.telegram import best_effort
from bot.texts import Texts

log = logging.getLogger(__name__)

T = TypeVar("T")

TYPING_AFTER = 1.0  # seconds without text before "typing" is shown
TURN_POLL = 0.02  # seconds between looks at the line, for a writer whose turn is not yet
DRAFT_REFRESH = 20.0  # a draft disappears after 30 s without an update
LIMIT = 4096
MAX_PARTS = 10  # messages one answer may take; past that, the answer goes as a file
_NO_PREVIEW = LinkPreviewOptions(is_disabled=True)


class AnswerWriter:
    """One answer in one chat. Use ``start()``, then ``append()`` text, then ``finish()``."""

    def __init__(
        self,
        bot: Bot,
        pacer: Pacer,
        target: Target,
        *,
        texts: Texts,
        header: Part | None = None,
        header_room: int = 0,
        use_draft: bool | None = None,
        typing: bool = True,
        draft_id: int | None = None,
        stop_markup: InlineKeyboardMarkup | None = None,
        after: asyncio.Event | None = None,
    ) -> None:
        self.bot = bot
        self.pacer = pacer
        self.target = target
        self.chat_id = target.chat_id
        self.private = target.private
        self.use_draft = target.private if use_draft is None else use_draft
        self.placeholder = texts.thinking
        self.file_caption = texts.answer_in_file
        self.file_name = texts.answer_file_name
        self.thread_id = target.thread_id
        self.header = header
        # units kept free beside the header, for a longer one later (an arena reveal)
        self.header_room = header_room
        self.first_part: Part | None = None  # the first message as finally delivered
        self.typing = typing
        self.draft_id = draft_id or random.randint(1, 2**31 - 1)
        # a Stop button while streaming: under the edited message, or the draft's own
        self.stop_markup = stop_markup
        # messages in order (/compare): our placeholder waits for the one before it
        self.after = after
        self.placed = asyncio.Event()
        # Telegram answered 403: the user blocked the bot, or it is no longer in the
        # group. Nothing more can reach them; the answer should end.
        self.unreachable = asyncio.Event()
        self.message_id: int | None = None  # the edited message, in edit mode
        self._pieces: list[str] = []
        self._changed = asyncio.Event()
        self._closed = asyncio.Event()
        self._shown: str | None = None  # the text of the last update Telegram accepted
        self._shown_at = 0.0
        self._has_text = False
        self._text_came = asyncio.Event()  # the first text, or the end: no more "typing"
        self._loop_task: asyncio.Task[None] | None = None
        self._typing_task: asyncio.Task[None] | None = None

    @property
    def text(self) -> str:
        return "".join(self._pieces)

    @property
    def reached(self) -> bool:
        """Whether any of the answer's text was shown to the user."""
        return self._shown is not None

    @property
    def interval(self) -> float:
        if not self.private:
            return GROUP_INTERVAL
        return DRAFT_INTERVAL if self.use_draft else EDIT_INTERVAL

    async def start(self, wait: bool = False) -> None:
        """Show that an answer is coming ("Thinking…"), and start the update and typing
        loops. The placeholder goes out in the background, so that the model is asked at
        once, unless ``wait``. Calling it again does nothing."""
        if self._typing_task is not None or self._closed.is_set():
            return
        self._typing_task = asyncio.create_task(self._typing())
        if wait:
            await self._update()
            self.placed.set()
        self._loop_task = asyncio.create_task(self._loop(placeholder=not wait))

    def append(self, delta: str) -> None:
        if delta:
            self._pieces.append(delta)
            self._has_text = True
            self._text_came.set()
            self._changed.set()

    async def finish(
        self,
        markdown: str | None = None,
        reply_markup: InlineKeyboardMarkup | None = None,
        footer: str | None = None,
    ) -> list[int]:
        """Stop streaming and deliver ``markdown`` (default: the text so far) in full,
        with ``footer`` (plain, shown in italics) and ``reply_markup`` on the last part.

        Returns the ids of the messages that hold the answer: none if the user can't
        be reached.
        """
        await self._stop()
        if self.unreachable.is_set():
            return []
        markdown = self.text if markdown is None else markdown
        # a long answer renders in a worker thread: other chats are served meanwhile
        rendered = await render_async(markdown, self._limit)
        parts = _with_footer(self._with_header(rendered), footer)
        self.first_part = parts[0] if parts else None
        attached = len(parts) > MAX_PARTS
        if attached:  # the first messages, then the whole answer as a file
            parts = parts[: MAX_PARTS - 1]
        ids: list[int] = []
        for index, part in enumerate(parts):
            markup = reply_markup if index == len(parts) - 1 and not attached else None
            if index == 0 and self.message_id is not None:
                message_id = await self._final_edit(part, markup)
                if message_id is not None:
                    ids.append(message_id)
                    continue
            sent = await self._final_send(part, markup)
            if sent is not None:
                ids.append(sent)
            elif self.unreachable.is_set():
                return ids
        if attached and (sent := await self._final_file(markdown, reply_markup)) is not None:
            ids.append(sent)
        return ids

    async def cancel(self) -> None:
        """Stop the loops without delivering anything (shutdown)."""
        await self._stop()

    # -- streaming -------------------------------------------------------------------

    async def _loop(self, placeholder: bool) -> None:
        if placeholder:
            try:
                if self.after is not None:
                    await self.after.wait()
                await self._update()
            finally:
                self.placed.set()
        while not self._closed.is_set():
            if self.use_draft and not self._has_text:
                # keep the "Thinking…" draft alive: it lasts 30 s on the client
                await wait_for(self._changed, DRAFT_REFRESH)
            else:
                await self._changed.wait()
            # Wait for the chat's slot until it is free and it is this writer's turn:
            # another writer in this chat (/compare) or a 429 may have taken it again
            # while we waited, and the writer shown longest ago goes first.
            with self.pacer.in_line(self.chat_id, self._shown_at) as first:
                while not self._closed.is_set():
                    delay = self.pacer.delay(self.chat_id)
                    if delay <= 0 and first():
                        break
                    await wait_for(self._closed, max(delay, TURN_POLL))
            if self._closed.is_set():
                return
            self._changed.clear()
            await self._update()

    async def _update(self) -> None:
        part = None
        if self._has_text:
            part = self._with_header([await render_preview_async(self.text, self._limit)])[0]
        if part is not None and part.text == self._shown:
            return
        # The placeholder holds the chat's slot only briefly: the first text should show
        # as soon as it comes.
        self.pacer.claim(self.chat_id, self.interval if part is not None else FIRST_INTERVAL)
        try:
            with best_effort(urgent=part is not None and self._shown is None):
                await self._send_update(part)
        except TelegramRetryAfter:
            self._changed.set()  # the pacer was told; try again when the chat's slot opens
        except TelegramBadRequest as exc:
            if self.use_draft:
                log.info("chat %s: drafts refused (%s), editing a message", self.chat_id, exc)
                self.use_draft = False
                self._changed.set()
            elif "not modified" not in exc.message:
                log.debug("chat %s: update refused: %s", self.chat_id, exc.message)
        except (TelegramNetworkError, TelegramServerError) as exc:
            log.debug("chat %s: update failed: %s", self.chat_id, exc)
        except TelegramForbiddenError:
            self._lost()

    async def _send_update(self, part: Part | None) -> None:
        if self.use_draft:
            await self.bot(self._draft(part))
        elif self.message_id is None:
            first = part or self._with_header([Part(self.placeholder, [])])[0]
            sent = await self.bot(self._send(first, self.stop_markup))
            self.message_id = sent.message_id
        elif part is not None:
            await self.bot(self._edit(part, self.stop_markup))
        else:
            return
        self._shown = part.text if part is not None else None
        self._shown_at = time.monotonic()

    async def _typing(self) -> None:
        """ "typing" while no text has come (a quick answer needs none)."""
        if self.typing and not await show_action(
            self.bot, self.chat_id, self.thread_id, ChatAction.TYPING, self._text_came, TYPING_AFTER
        ):
            self._lost()

    def _lost(self) -> None:
        """A 403: stop updating, and tell whoever waits on ``unreachable``."""
        if not self.unreachable.is_set():
            log.info("chat %s: the bot cannot write here (blocked or removed)", self.chat_id)
        self.unreachable.set()
        self._closed.set()
        self._text_came.set()
        self._changed.set()

    async def _stop(self) -> None:
        """Stop the loops, letting an update already on its way to Telegram land first
        (cancelling a request midway can leave a stale draft after the final message)."""
        self._closed.set()
        self._text_came.set()
        self._changed.set()
        tasks = [t for t in (self._loop_task, self._typing_task) if t is not None]
        self._loop_task = self._typing_task = None
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    # -- final delivery --------------------------------------------------------------

    async def _final_edit(self, part: Part, markup: InlineKeyboardMarkup | None) -> int | None:
        """Turn the streamed message into the first part; None if it is gone."""
        assert self.message_id is not None
        if part.text == self._shown and markup is None and self.stop_markup is None:
            return self.message_id
        try:
            await self._deliver(lambda p: self._edit(p, markup), part)
        except TelegramBadRequest as exc:
            if "not modified" in exc.message:
                return self.message_id
            log.info("chat %s: final edit refused (%s), sending anew", self.chat_id, exc.message)
            if self.stop_markup is not None:  # no dead Stop button over the new message
                with contextlib.suppress(TelegramAPIError):
                    await self.bot(
                        EditMessageReplyMarkup(chat_id=self.chat_id, message_id=self.message_id)
                    )
            return None
        except TelegramForbiddenError:
            self._lost()
            return None
        return self.message_id

    async def _final_send(self, part: Part, markup: InlineKeyboardMarkup | None) -> int | None:
        try:
            sent: Message = await self._deliver(lambda p: self._send(p, markup), part)
        except TelegramForbiddenError:
            self._lost()
            return None
        except TelegramBadRequest as exc:
            log.warning("chat %s: an answer could not be delivered: %s", self.chat_id, exc)
            return None
        return sent.message_id

    async def _final_file(self, markdown: str, markup: InlineKeyboardMarkup | None) -> int | None:
        """The whole answer as a Markdown file, when it would take too many messages."""
        document = BufferedInputFile(markdown.encode(), filename=f"{self.file_name}.md")
        method = SendDocument(
            chat_id=self.chat_id,
            document=document,
            caption=self.file_caption,
            message_thread_id=self.thread_id,
            reply_parameters=self.target.reply_parameters(),
            reply_markup=markup,
        )
        try:
            sent = await self.bot(method)
        except TelegramForbiddenError:
            self._lost()
            return None
        except TelegramAPIError as exc:
            log.warning("chat %s: the answer's file could not be delivered: %s", self.chat_id, exc)
            return None
        return sent.message_id

    async def _deliver(self, build: Callable[[Part], TelegramMethod[T]], part: Part) -> T:
        """Deliver a final part (the session retries 429s, 5xx and network errors); when
        Telegram refuses its formatting, as plain text. A refusal that remains, or
        retries that ran out, reach the caller as TelegramBadRequest."""
        try:
            return await self.bot(build(part))
        except TelegramBadRequest as exc:
            if not part.entities or "not modified" in exc.message:
                raise
            log.warning("chat %s: formatting refused (%s), plain text", self.chat_id, exc)
        except (TelegramNetworkError, TelegramServerError, TelegramRetryAfter) as exc:
            raise TelegramBadRequest(build(part), f"gave up: {exc}") from exc
        return await self.bot(build(Part(part.text, [])))

    # -- method builders -------------------------------------------------------------

    @property
    def _limit(self) -> int:
        header = utf16_len(self.header.text) if self.header is not None else 0
        return LIMIT - header - self.header_room

    def _with_header(self, parts: list[Part]) -> list[Part]:
        if self.header is None or not parts:
            return parts
        return [_prefixed(self.header, parts[0]), *parts[1:]]

    def _draft(self, part: Part | None) -> SendMessageDraft:
        return SendMessageDraft(
            chat_id=self.chat_id,
            draft_id=self.draft_id,
            can_stop=True if self.stop_markup is not None else None,
            text=part.text if part is not None else None,
            entities=part.entities or None if part is not None else None,
            message_thread_id=self.thread_id,
        )

    def _send(self, part: Part, markup: InlineKeyboardMarkup | None) -> SendMessage:
        return SendMessage(
            chat_id=self.chat_id,
            text=part.text,
            entities=part.entities or None,
            message_thread_id=self.thread_id,
            reply_parameters=self.target.reply_parameters(),
            reply_markup=markup,
            link_preview_options=_NO_PREVIEW,
        )

    def _edit(self, part: Part, markup: InlineKeyboardMarkup | None) -> EditMessageText:
        return EditMessageText(
            chat_id=self.chat_id,
            message_id=self.message_id,
            text=part.text,
            entities=part.entities or None,
            reply_markup=markup,
            link_preview_options=_NO_PREVIEW,
        )


def _with_footer(parts: list[Part], footer: str | None) -> list[Part]:
    """The footer in italics after the last part, or as a part of its own if it won't fit."""
    if not footer:
        return parts
    if not parts:
        return [Part(footer, [MessageEntity(type="italic", offset=0, length=utf16_len(footer))])]
    last = parts[-1]
    gap = "\n\n"
    if utf16_len(last.text) + len(gap) + utf16_len(footer) > LIMIT:
        return [*parts, *_with_footer([], footer)]
    offset = utf16_len(last.text) + len(gap)
    italic = MessageEntity(type="italic", offset=offset, length=utf16_len(footer))
    return [*parts[:-1], Part(last.text + gap + footer, [*last.entities, italic])]


def _prefixed(header: Part, part: Part) -> Part:
    """``header`` followed by ``part``, the part's entities moved past the header."""
    shift = utf16_len(header.text)
    moved = [e.model_copy(update={"offset": e.offset + shift}) for e in part.entities]
    return Part(header.text + part.text, [*header.entities, *moved])
