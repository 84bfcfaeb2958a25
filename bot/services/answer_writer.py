"""The answer writer: shows an answer growing in the chat, then delivers it whole.

Private chats stream with a draft (``sendRichMessageDraft``, or ``sendMessageDraft`` as
text; an empty one shows Telegram's own "Thinking…") and finish with a message; groups,
and private chats where drafts fail, send one message and edit it. Intermediate updates
go out at the chat's pace (shared :class:`~bot.services.pacer.Pacer`), never twice with
the same content, and may be dropped (they are tried once: :func:`bot.telegram.best_effort`);
the final messages are always delivered (the bot's session waits out 429s and retries
5xx, see :mod:`bot.telegram`).

What the messages look like is the layout's business (:mod:`bot.services.layouts`): rich
messages while Telegram takes them, else text; a refused rich message is delivered as
text at once, and a message whose text formatting Telegram rejects as plain text. A
reasoning model's thoughts show live above the answer, then collapsed. When an answer
outgrows one message while it streams, the finished message is delivered at once and
the stream goes on in the next one: what the user has read never moves. An answer longer
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
from aiogram.methods import EditMessageReplyMarkup, SendDocument
from aiogram.methods.base import TelegramMethod
from aiogram.types import BufferedInputFile, InlineKeyboardMarkup, Message

from bot.render import Part
from bot.services.layouts import (
    Content,
    Layout,
    RichLayout,
    RichSwitch,
    TextLayout,
    rich_refusal,
    source_end,
)
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
MAX_PARTS = 10  # messages one answer may take; past that, the answer goes as a file


class _RichRefused(Exception):
    """Telegram refused a rich message: deliver the rest as text."""


class AnswerWriter:
    """One answer in one chat. Use ``start()``, then ``append()`` text (and ``think()``
    reasoning), then ``finish()``."""

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
        rich: RichSwitch | None = None,
    ) -> None:
        self.bot = bot
        self.pacer = pacer
        self.target = target
        self.chat_id = target.chat_id
        self.private = target.private
        self.use_draft = target.private if use_draft is None else use_draft
        self.texts = texts
        self.thread_id = target.thread_id
        self.header = header
        # units kept free beside the header, for a longer one later (an arena reveal)
        self.header_room = header_room
        self.switch = rich
        self.layout: Layout = (
            RichLayout(header, header_room)
            if rich is not None and rich.on
            else TextLayout(header, header_room)
        )
        self.first_part: Content | None = None  # the first message as finally delivered
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
        self._thoughts: list[str] = []
        self._thinking_since: float | None = None
        self._thinking_until: float | None = None
        # messages delivered while streaming (finished parts), and where in the answer's
        # Markdown the part being streamed now starts
        self._delivered: list[int] = []
        self._base = 0
        self._changed = asyncio.Event()
        self._closed = asyncio.Event()
        self._shown: Content | None = None  # the last update Telegram accepted
        self._shown_at = 0.0
        self._has_text = False
        self._text_came = asyncio.Event()  # the first text, or the end: no more "typing"
        self._loop_task: asyncio.Task[None] | None = None
        self._typing_task: asyncio.Task[None] | None = None

    @property
    def text(self) -> str:
        return "".join(self._pieces)

    @property
    def thoughts(self) -> str:
        return "".join(self._thoughts)

    @property
    def reached(self) -> bool:
        """Whether any of the answer's text was shown to the user."""
        return self._shown is not None or bool(self._delivered)

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
            if self._thinking_since is not None and self._thinking_until is None:
                self._thinking_until = time.monotonic()
            self._pieces.append(delta)
            self._shows()

    def think(self, delta: str) -> None:
        """A delta of the model's reasoning: shown live, kept collapsed, never the answer."""
        if delta:
            if self._thinking_since is None:
                self._thinking_since = time.monotonic()
            self._thoughts.append(delta)
            self._shows()

    def _shows(self) -> None:
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
        done = self.text[: self._base]
        rest = markdown[self._base :] if markdown.startswith(done) else markdown
        first = not self._delivered
        room = MAX_PARTS - len(self._delivered)
        ids, cut = await self._deliver_parts(
            rest, self.thoughts if first else "", first, footer, reply_markup, room
        )
        ids = [*self._delivered, *ids]
        if cut and (sent := await self._final_file(markdown, reply_markup)) is not None:
            ids.append(sent)
        return ids

    async def _deliver_parts(
        self,
        markdown: str,
        thoughts: str,
        first: bool,
        footer: str | None,
        markup: InlineKeyboardMarkup | None,
        most: int | None = None,
    ) -> tuple[list[int], bool]:
        """Deliver ``markdown`` as final messages (the first into the streamed message,
        if there is one), ``markup`` under the last; at most ``most`` of them, the last
        of which is then left for a file (True). A refused rich message and the rest go
        as text. The ids of the messages delivered."""
        parts: list[Content] = [
            *await self.layout.final(markdown, thoughts, first, self._thought_for(), footer)
        ]
        cut = most is not None and len(parts) > most
        if most is not None and cut:
            parts = parts[: max(1, most - 1)]
        ids: list[int] = []
        index = 0
        while index < len(parts):
            last = index == len(parts) - 1
            try:
                sent = await self._final(
                    parts[index], markup if last and not cut else None, index == 0
                )
            except _RichRefused:  # the layout is text now: this message and the rest
                start = (source_end(parts[index - 1]) or 0) if index else 0
                again = first and index == 0
                parts[index:] = await self.layout.final(
                    markdown[start:], thoughts if again else "", again, self._thought_for(), footer
                )
                continue
            if sent is not None:
                if first and index == 0:
                    self.first_part = parts[0]
                ids.append(sent)
            elif self.unreachable.is_set():
                break
            index += 1
        return ids, cut

    async def cancel(self) -> None:
        """Stop the loops without delivering anything (shutdown)."""
        await self._stop()

    def _thought_for(self) -> str:
        if self._thinking_since is None:
            return ""
        until = self._thinking_until or time.monotonic()
        return self.texts.thought_for.format(seconds=max(1, round(until - self._thinking_since)))

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
            # while we waited, and the writer shown longest ago goes first: one whose
            # text has not shown yet (/compare's "Thinking…") before all others.
            shown_at = self._shown_at if self._shown is not None else 0.0
            with self.pacer.in_line(self.chat_id, shown_at) as first:
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
        layout = self.layout
        part: Content | None = None
        if self._has_text:
            segment = self.text[self._base :]
            first = not self._delivered
            thoughts = self.thoughts if first else ""
            preview = await layout.preview(
                segment, thoughts, first, self.use_draft, self.texts.thinking
            )
            if preview.end is not None and len(self._delivered) < MAX_PARTS - 2:
                await self._deliver_finished(segment[: preview.end], thoughts, first)
                self._base += preview.end
                self._changed.set()
                return
            part = preview.parts[-1] if preview.parts else None
        if part is not None and layout.same(part, self._shown):
            return
        # The placeholder holds the chat's slot only briefly: the first text should show
        # as soon as it comes. Updates after it stretch when the process is short of CPU.
        interval = self.interval * self.pacer.stretch if part is not None else FIRST_INTERVAL
        self.pacer.claim(self.chat_id, interval)
        try:
            with best_effort(urgent=part is not None and self._shown is None):
                await self._send_update(part)
            self.pacer.landed(self.chat_id, interval)
        except TelegramRetryAfter:
            self._changed.set()  # the pacer was told; try again when the chat's slot opens
        except TelegramForbiddenError:
            self._lost()
        except TelegramAPIError as exc:
            if layout.is_rich and rich_refusal(exc):
                self._to_text(exc)
            elif isinstance(exc, TelegramBadRequest) and self.use_draft:
                log.info("chat %s: drafts refused (%s), editing a message", self.chat_id, exc)
                self.use_draft = False
                self._changed.set()
            elif isinstance(exc, (TelegramNetworkError, TelegramServerError)):
                log.debug("chat %s: update failed: %s", self.chat_id, exc)
            elif "not modified" not in exc.message:
                log.debug("chat %s: update refused: %s", self.chat_id, exc.message)

    def _to_text(self, error: Exception) -> None:
        """Rich messages refused: this answer goes on as text (and the next ones, for a
        while: the switch remembers)."""
        if self.switch is not None:
            self.switch.refused(self.chat_id, error)
        self.layout = TextLayout(self.header, self.header_room)
        self._changed.set()

    async def _deliver_finished(self, markdown: str, thoughts: str, first: bool) -> None:
        """The streamed answer outgrew its message: deliver the finished part of it now
        (into the streamed message, if there is one) and stream on in a new one."""
        ids, _ = await self._deliver_parts(markdown, thoughts, first, None, None)
        self._delivered.extend(ids)
        self.message_id = None
        self._shown = None

    async def _send_update(self, part: Content | None) -> None:
        layout = self.layout
        first = not self._delivered
        if self.use_draft:
            shown = part or layout.empty_draft(self.texts.thinking, first)
            stop = self.stop_markup is not None
            await self.bot(layout.draft(shown, self.chat_id, self.draft_id, self.thread_id, stop))
        elif self.message_id is None:
            shown = part or layout.placeholder(self.texts.thinking, first)
            sent = await self.bot(layout.send(shown, self.target, self.stop_markup))
            self.message_id = sent.message_id
        elif part is not None:
            await self.bot(layout.edit(part, self.chat_id, self.message_id, self.stop_markup))
        else:
            return
        self._shown = part
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

    async def _final(
        self, part: Content, markup: InlineKeyboardMarkup | None, edit: bool
    ) -> int | None:
        """Deliver one final message: into the streamed message when ``edit`` and there
        is one, else anew. Its id; None if it could not be delivered."""
        if edit and self.message_id is not None:
            message_id = await self._final_edit(part, markup)
            if message_id is not None:
                return message_id
        return await self._final_send(part, markup)

    async def _final_edit(self, part: Content, markup: InlineKeyboardMarkup | None) -> int | None:
        """Turn the streamed message into the final one; None if it is gone."""
        assert self.message_id is not None
        message_id = self.message_id
        if self.layout.same(part, self._shown) and markup is None and self.stop_markup is None:
            return message_id
        layout = self.layout
        try:
            await self._deliver(lambda p: layout.edit(p, self.chat_id, message_id, markup), part)
        except TelegramBadRequest as exc:
            if "not modified" in exc.message:
                return message_id
            log.info("chat %s: final edit refused (%s), sending anew", self.chat_id, exc.message)
            if self.stop_markup is not None:  # no dead Stop button over the new message
                with contextlib.suppress(TelegramAPIError):
                    await self.bot(
                        EditMessageReplyMarkup(chat_id=self.chat_id, message_id=message_id)
                    )
            self.message_id = None
            return None
        except TelegramForbiddenError:
            self._lost()
            return None
        return message_id

    async def _final_send(self, part: Content, markup: InlineKeyboardMarkup | None) -> int | None:
        layout = self.layout
        try:
            sent: Message = await self._deliver(lambda p: layout.send(p, self.target, markup), part)
        except TelegramForbiddenError:
            self._lost()
            return None
        except TelegramAPIError as exc:
            log.warning("chat %s: an answer could not be delivered: %s", self.chat_id, exc)
            return None
        return sent.message_id

    async def _final_file(self, markdown: str, markup: InlineKeyboardMarkup | None) -> int | None:
        """The whole answer as a Markdown file, when it would take too many messages."""
        document = BufferedInputFile(
            markdown.encode(), filename=f"{self.texts.answer_file_name}.md"
        )
        method = SendDocument(
            chat_id=self.chat_id,
            document=document,
            caption=self.texts.answer_in_file,
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

    async def _deliver(self, build: Callable[[Content], TelegramMethod[T]], part: Content) -> T:
        """Deliver a final message (the session retries 429s, 5xx and network errors).
        A refused rich message raises _RichRefused (the layout is text from then on); a
        text whose formatting Telegram refuses goes as plain text. A refusal that
        remains, or retries that ran out, reach the caller as TelegramBadRequest."""
        try:
            return await self.bot(build(part))
        except TelegramForbiddenError:
            raise
        except TelegramAPIError as exc:
            if self.layout.is_rich and rich_refusal(exc):
                self._to_text(exc)
                raise _RichRefused from exc
            if isinstance(exc, (TelegramNetworkError, TelegramServerError, TelegramRetryAfter)):
                raise TelegramBadRequest(build(part), f"gave up: {exc}") from exc
            formatted = isinstance(part, Part) and bool(part.entities)
            if not isinstance(exc, TelegramBadRequest) or not formatted:
                raise
            if "not modified" in exc.message:
                raise
            log.warning("chat %s: formatting refused (%s), plain text", self.chat_id, exc)
        assert isinstance(part, Part)
        return await self.bot(build(Part(part.text, [])))
