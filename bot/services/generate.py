"""One model answering one request into one answer writer: the stream, the failure
message, the outcome the caller needs to record history or refund a reservation."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiogram.types import InlineKeyboardMarkup

from bot.catalog import ModelSpec
from bot.services.answer_writer import AnswerWriter
from bot.texts import Texts
from providers import (
    AuthenticationError,
    BadRequestError,
    ChatRequest,
    ContextTooLongError,
    ModelNotFoundError,
    Provider,
    ProviderError,
    ProviderTimeoutError,
    RateLimitedError,
    UnavailableError,
    UnsupportedError,
    Usage,
)

log = logging.getLogger(__name__)

LAST_WORDS_SECONDS = 1.5  # to deliver a partial answer when the bot is stopped mid-way

_SURROGATE = re.compile("[\ud800-\udfff]")

_ERROR_TEXTS: list[tuple[type[ProviderError], str]] = [
    (AuthenticationError, "error_auth"),
    (ModelNotFoundError, "error_not_found"),
    (ContextTooLongError, "error_context"),
    (BadRequestError, "error_bad_request"),
    (RateLimitedError, "error_rate_limited"),
    (ProviderTimeoutError, "error_timeout"),
    (UnavailableError, "error_unavailable"),
    (UnsupportedError, "error_unsupported"),
]


def describe(error: ProviderError, texts: Texts, model_title: str) -> str:
    """One sentence for a person: no class names, no upstream bodies."""
    for cls, field in _ERROR_TEXTS:
        if isinstance(error, cls):
            template: str = getattr(texts, field)
            return template.format(model=model_title)
    return texts.error_generic.format(model=model_title)


@dataclass
class Outcome:
    text: str  # what the model wrote (possibly partial)
    error: ProviderError | None
    usage: Usage | None
    elapsed: float  # seconds from the request to the last chunk
    message_ids: list[int]
    stopped: bool = False  # the user pressed Stop
    ttft: float | None = None  # seconds from the request to the first text
    unreachable: bool = False  # Telegram refused with 403: blocked, or not in the group

    @property
    def ok(self) -> bool:
        return (
            self.error is None
            and not self.stopped
            and not self.unreachable
            and bool(self.text.strip())
        )


async def generate(
    provider: Provider,
    model: ModelSpec,
    request: ChatRequest,
    writer: AnswerWriter,
    texts: Texts,
    reply_markup: InlineKeyboardMarkup | None = None,
    retry_markup: InlineKeyboardMarkup | None = None,
    footer: bool = False,
    stop: asyncio.Event | None = None,
    refund: Callable[[], Awaitable[object]] | None = None,
    on_complete: Callable[[str], Awaitable[None]] | None = None,
) -> Outcome:
    """Stream the model's answer into the writer and deliver it, or the reason it failed.

    ``reply_markup`` goes under a complete answer, ``retry_markup`` under a failed or
    stopped one; ``footer`` adds the time taken and the tokens written, when the API
    reported them. Setting ``stop`` ends the answer where it is (the upstream stream is
    closed), keeping what was written.

    ``refund()`` runs when no text reached the user (a failure, an early Stop, a
    cancellation, a user who blocked the bot): such a request is free. A 403 from
    Telegram also ends the answer, as Stop does. ``on_complete(text)`` runs for a complete
    answer. Both run before the final message is delivered, so that what its buttons
    rely on is done by the time the user can press them.
    """
    started = time.monotonic()
    usage: list[Usage] = []
    error: ProviderError | None = None
    first_text: list[float] = []
    # The model is asked first; the placeholder and typing follow (they take their turn
    # on the event loop while the request is on its way).
    stream = asyncio.create_task(_consume(provider, request, writer, usage, first_text))
    stopped = False
    try:
        await writer.start()
        waiters: set[asyncio.Future[Any]] = {stream}
        if stop is not None:
            waiters.add(asyncio.ensure_future(stop.wait()))
        waiters.add(asyncio.ensure_future(writer.unreachable.wait()))
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        if not stream.done():  # Stop, or nobody to write to: close the upstream stream
            stopped = not writer.unreachable.is_set()
            stream.cancel()
            await asyncio.wait({stream})
        for waiter in waiters - {stream}:
            waiter.cancel()
        if not stream.cancelled() and (exc := stream.exception()) is not None:
            if not isinstance(exc, ProviderError):
                raise exc
            error = exc
    except BaseException:
        stream.cancel()
        if not writer.text.strip():
            await _bookkeep(model, refund)
        else:  # shutting down mid-answer: keep what the user saw
            cut_short = texts.interrupted.format(reason=texts.shutting_down)
            with contextlib.suppress(Exception):
                async with asyncio.timeout(LAST_WORDS_SECONDS):
                    await writer.finish(f"{writer.text}\n\n_{cut_short}_")
        await writer.cancel()
        raise
    if error is not None:
        log.warning("%s (%s) failed: %s: %s", model.id, provider.name, type(error).__name__, error)
    elapsed = time.monotonic() - started
    text = _well_formed(writer.text)
    markup, note = retry_markup, None
    if stopped:
        final = f"{text}\n\n_{texts.stopped}_" if text.strip() else texts.stopped
    elif error is None and not text.strip():
        final = texts.empty_answer.format(model=model.title)
    elif error is not None and not text:
        final = describe(error, texts, model.title)
    elif error is not None:
        reason = describe(error, texts, model.title)
        final = f"{text}\n\n_{texts.interrupted.format(reason=reason)}_"
    else:
        final, markup = text, reply_markup
        if footer:
            note = texts.compare_footer_time.format(seconds=elapsed)
            if usage and usage[-1].output_tokens is not None:
                note += " · " + texts.compare_footer_tokens.format(tokens=usage[-1].output_tokens)
    if not text.strip():
        await _bookkeep(model, refund)
    elif error is None and not stopped and on_complete is not None:
        await _bookkeep(model, on_complete, text)
    ids = await writer.finish(final, reply_markup=markup, footer=note)
    unreachable = writer.unreachable.is_set()
    if unreachable and text.strip() and not ids and not writer.reached:
        await _bookkeep(model, refund)  # written, but none of it reached the user
    ttft = first_text[0] - started if first_text else None
    last = usage[-1] if usage else None
    return Outcome(text, error, last, elapsed, ids, stopped, ttft, unreachable)


async def _bookkeep(
    model: ModelSpec, call: Callable[..., Awaitable[object]] | None, *args: Any
) -> None:
    """Run a refund or record; bookkeeping must never keep an answer from the user."""
    if call is None:
        return
    try:
        await call(*args)
    except Exception:
        log.exception("%s: bookkeeping after the answer failed", model.id)


async def _consume(
    provider: Provider,
    request: ChatRequest,
    writer: AnswerWriter,
    usage: list[Usage],
    first_text: list[float],
) -> None:
    """The stream into the writer; a ProviderError ends it (and is the task's result)."""
    async for chunk in provider.stream(request):
        if chunk.text and not first_text:
            first_text.append(time.monotonic())
        writer.append(chunk.text)
        if chunk.usage is not None:
            usage.append(chunk.usage)


def _well_formed(text: str) -> str:
    """The answer as valid Unicode: an emoji whose surrogate halves came in separate
    chunks (JSON escapes split by a proxy) is joined again, a half left alone becomes
    U+FFFD. Lone surrogates cannot be encoded, so Redis (history, Retry) would refuse
    them after the answer was shown, and the chat would stay locked."""
    if _SURROGATE.search(text) is None:
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
