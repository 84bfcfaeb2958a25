"""One model answering one request into one answer writer: the stream, the failure
message, the outcome the caller needs to record history or refund a reservation."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

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

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.text.strip())


async def generate(
    provider: Provider,
    model: ModelSpec,
    request: ChatRequest,
    writer: AnswerWriter,
    texts: Texts,
    reply_markup: InlineKeyboardMarkup | None = None,
    footer: bool = False,
) -> Outcome:
    """Stream the model's answer into the writer and deliver it, or the reason it failed.

    ``reply_markup`` goes under a complete answer only; ``footer`` adds the time taken
    and the tokens written, when the API reported them.
    """
    started = time.monotonic()
    usage: Usage | None = None
    error: ProviderError | None = None
    await writer.start()
    try:
        async for chunk in provider.stream(request):
            writer.append(chunk.text)
            if chunk.usage is not None:
                usage = chunk.usage
    except ProviderError as exc:
        error = exc
        log.warning("%s (%s) failed: %s: %s", model.id, provider.name, type(exc).__name__, exc)
    except BaseException:
        await writer.cancel()
        raise
    elapsed = time.monotonic() - started
    text = writer.text
    markup, note = None, None
    if error is None and not text.strip():
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
            if usage is not None and usage.output_tokens is not None:
                note += " · " + texts.compare_footer_tokens.format(tokens=usage.output_tokens)
    ids = await writer.finish(final, reply_markup=markup, footer=note)
    return Outcome(text, error, usage, elapsed, ids)
