"""One model answering one request into one answer writer: the race between the stream,
the user's Stop and a chat that can no longer be reached; then the final text
(:func:`bot.services.outcome.final_text`), the bookkeeping, the delivery."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from bot.catalog import ModelSpec
from bot.services.answer_writer import AnswerWriter
from bot.services.outcome import PLAIN, Delivery, Outcome, final_text, interrupted_text
from bot.texts import Texts
from providers import ChatRequest, Provider, ProviderError, Usage

log = logging.getLogger(__name__)

LAST_WORDS_SECONDS = 1.5  # to deliver a partial answer when the bot is stopped mid-way

_SURROGATE = re.compile("[\ud800-\udfff]")

Settle = Callable[[Outcome], Awaitable[object]]


@dataclass
class _Progress:
    """What the stream has brought so far."""

    started: float = field(default_factory=time.monotonic)
    usage: Usage | None = None
    first_text: float | None = None  # when the first text came: from then on it bills


async def generate(
    provider: Provider,
    model: ModelSpec,
    request: ChatRequest,
    writer: AnswerWriter,
    texts: Texts,
    delivery: Delivery = PLAIN,
    stop: asyncio.Event | None = None,
    settle: Settle | None = None,
) -> Outcome:
    """Stream the model's answer into the writer and deliver it, or the reason it failed.

    Setting ``stop`` ends the answer where it is (the upstream stream is closed), keeping
    what was written; a 403 from Telegram ends it the same way. ``settle(outcome)`` (the
    caller's bookkeeping: a refund, keeping the answer) runs before the final message
    is delivered, so that what its buttons rely on is done by the time the user can
    press them. Cancelled (shutdown), the user keeps what they saw, marked as cut short.
    """
    progress = _Progress()
    # The model is asked first; the placeholder and typing follow (they take their turn
    # on the event loop while the request is on its way).
    stream = asyncio.create_task(_consume(provider, request, writer, progress))
    try:
        await writer.start()
        ended_by = await race(stream, writer, stop)
        error = _error_of(stream)
    except BaseException:
        stream.cancel()
        outcome = _outcome(writer, None, progress, cancelled=True)
        await _bookkeep(model, settle, outcome)
        if writer.text.strip():  # keep what the user saw
            with contextlib.suppress(Exception):
                async with asyncio.timeout(LAST_WORDS_SECONDS):
                    await writer.finish(
                        interrupted_text(outcome.text, texts), delivery.retry_markup
                    )
        await writer.cancel()
        raise
    if error is not None:
        log.warning("%s (%s) failed: %s: %s", model.id, provider.name, type(error).__name__, error)
    outcome = _outcome(
        writer,
        error,
        progress,
        stopped=ended_by == "stop",
        unreachable=ended_by == "unreachable" or writer.unreachable.is_set(),
    )
    final, markup, footer = final_text(outcome, texts, model, delivery)
    await _bookkeep(model, settle, outcome)
    outcome.message_ids = await writer.finish(final, reply_markup=markup, footer=footer)
    outcome.unreachable = outcome.unreachable or writer.unreachable.is_set()
    return outcome


async def race(
    stream: asyncio.Task[None], writer: AnswerWriter, stop: asyncio.Event | None
) -> str | None:
    """Wait for the stream to end, the user's Stop, or the chat to become unreachable;
    in the last two cases close the stream. What ended it: None (the stream), "stop" or
    "unreachable"."""
    others = [asyncio.ensure_future(writer.unreachable.wait())]
    if stop is not None:
        others.append(asyncio.ensure_future(stop.wait()))
    try:
        await asyncio.wait({stream, *others}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in others:
            waiter.cancel()
    if stream.done():
        return None
    ended_by = "unreachable" if writer.unreachable.is_set() else "stop"
    stream.cancel()
    await asyncio.wait({stream})
    return ended_by


def _error_of(stream: asyncio.Task[None]) -> ProviderError | None:
    """The provider's failure that ended the stream; anything else is the bot's own bug."""
    if stream.cancelled() or (exc := stream.exception()) is None:
        return None
    if not isinstance(exc, ProviderError):
        raise exc
    return exc


def _outcome(
    writer: AnswerWriter,
    error: ProviderError | None,
    progress: _Progress,
    stopped: bool = False,
    unreachable: bool = False,
    cancelled: bool = False,
) -> Outcome:
    first = progress.first_text
    return Outcome(
        text=_well_formed(writer.text),
        error=error,
        usage=progress.usage,
        elapsed=time.monotonic() - progress.started,
        stopped=stopped,
        ttft=first - progress.started if first is not None else None,
        unreachable=unreachable,
        answered=first is not None,
        cancelled=cancelled,
    )


async def _bookkeep(model: ModelSpec, settle: Settle | None, outcome: Outcome) -> None:
    """Bookkeeping must never keep an answer from the user."""
    if settle is None:
        return
    try:
        await settle(outcome)
    except Exception:
        log.exception("%s: bookkeeping after the answer failed", model.id)


async def _consume(
    provider: Provider, request: ChatRequest, writer: AnswerWriter, progress: _Progress
) -> None:
    """The stream into the writer; a ProviderError ends it (and is the task's result)."""
    async for chunk in provider.stream(request):
        if chunk.reasoning:
            writer.think(chunk.reasoning)
        if chunk.text:
            if progress.first_text is None:
                progress.first_text = time.monotonic()
            writer.append(chunk.text)
        if chunk.usage is not None:
            progress.usage = chunk.usage


def _well_formed(text: str) -> str:
    """The answer as valid Unicode: an emoji whose surrogate halves came in separate
    chunks (JSON escapes split by a proxy) is joined again, a half left alone becomes
    U+FFFD. Lone surrogates cannot be encoded, so Redis (history, Retry) would refuse
    them after the answer was shown, and the chat would stay locked."""
    if _SURROGATE.search(text) is None:
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
