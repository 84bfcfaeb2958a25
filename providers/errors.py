"""The one error hierarchy every adapter maps its API's failures onto.

The bot explains each class to a person in one sentence, so the classes follow what a
person can do about the failure, not how the API happened to word it. Messages are for
logs: they never carry a key, and an upstream body is cut short.
"""

from __future__ import annotations

import re

_BODY_LIMIT = 300


class ProviderError(Exception):
    """Base class: something went wrong talking to a model API."""

    retryable: bool = False

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class AuthenticationError(ProviderError):
    """The API key is missing, wrong or not allowed to use this model."""


class ModelNotFoundError(ProviderError):
    """The provider does not know the model name the catalog gives."""


class BadRequestError(ProviderError):
    """The API refused the request itself (bad field, content filtered, ...)."""


class ContextTooLongError(BadRequestError):
    """The conversation does not fit the model's context window."""


class DeclinedError(BadRequestError):
    """The model (or its provider's filter) declined to answer: a safety block, a
    recitation block, a refusal to draw. Not retried: the same request is declined again."""


class RateLimitedError(ProviderError):
    """The provider asks us to slow down; ``retry_after`` is in seconds when it said."""

    retryable = True

    def __init__(
        self, message: str, *, status: int | None = 429, retry_after: float | None = None
    ) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after


class ProviderTimeoutError(ProviderError):
    """The provider did not answer (or stopped answering) within the timeout."""


class UnavailableError(ProviderError):
    """The provider cannot be reached, failed (5xx) or broke the stream."""

    retryable = True


class UnreachableError(UnavailableError):
    """No connection could be made to the provider at all (refused, no route, DNS)."""


class UnsupportedError(ProviderError):
    """The adapter or model lacks the capability the request needs."""


_CONTEXT_WORDS = re.compile(
    r"context[_ ]length|context window|maximum context|too many tokens|prompt is too long"
    r"|too long for|exceeds the (?:model'?s? )?(?:maximum|context)",
    re.IGNORECASE,
)


def short(body: str) -> str:
    """An upstream body cut to a loggable size, on one line."""
    body = " ".join(body.split())
    return body if len(body) <= _BODY_LIMIT else body[: _BODY_LIMIT - 1] + "…"


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds form; dates are rare for APIs)."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return max(0.0, seconds)


def error_for_status(
    status: int, body: str, *, retry_after: float | None = None, provider: str = ""
) -> ProviderError:
    """Map an HTTP status and its body onto the hierarchy (shared by all adapters)."""
    where = f"{provider}: " if provider else ""
    message = f"{where}HTTP {status}: {short(body)}"
    if status in (401, 403):
        return AuthenticationError(message, status=status)
    if status == 404:
        return ModelNotFoundError(message, status=status)
    if status == 429:
        return RateLimitedError(message, status=status, retry_after=retry_after)
    if status == 408:
        return ProviderTimeoutError(message, status=status)
    if status in (400, 413, 422):
        if status == 413 or _CONTEXT_WORDS.search(body):
            return ContextTooLongError(message, status=status)
        return BadRequestError(message, status=status)
    if status >= 500:
        return UnavailableError(message, status=status)
    return BadRequestError(message, status=status)
