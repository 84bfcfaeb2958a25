"""What a user is told when a request is refused or fails: the limit that stopped it and
when it resets, the models that can see a photo, a prompt that is too long, a provider's
failure in one sentence. Every kind of request words these the same way, from here."""

from __future__ import annotations

from collections.abc import Sequence

from bot.catalog import Catalog, ModelSpec
from bot.services.quota import Grant, Reservation
from bot.texts import Texts
from bot.texts.base import reset_time
from providers import (
    AuthenticationError,
    BadRequestError,
    ContextTooLongError,
    DeclinedError,
    ModelNotFoundError,
    ProviderError,
    ProviderTimeoutError,
    RateLimitedError,
    UnavailableError,
    UnsupportedError,
)

_ERROR_TEXTS: list[tuple[type[ProviderError], str]] = [
    (AuthenticationError, "error_auth"),
    (ModelNotFoundError, "error_not_found"),
    (ContextTooLongError, "error_context"),
    (DeclinedError, "error_declined"),
    (BadRequestError, "error_bad_request"),
    (RateLimitedError, "error_rate_limited"),
    (ProviderTimeoutError, "error_timeout"),
    (UnavailableError, "error_unavailable"),
    (UnsupportedError, "error_unsupported"),
]


def describe(
    error: ProviderError, texts: Texts, model: ModelSpec, *, switchable: bool = True
) -> str:
    """One sentence for a person: no class names, no upstream bodies. ``switchable``:
    whether picking another model with /model can help (not for the transcription
    model, nor for the only image model); when not, the sentence suggests no /model."""
    fixed = {
        "error_auth": texts.error_auth_no_switch,
        "error_not_found": texts.error_not_found_no_switch,
        "error_rate_limited": texts.error_rate_limited_no_switch,
        "error_unavailable": texts.error_unavailable_no_switch,
        "error_unsupported": texts.error_unsupported_no_switch,
    }
    for cls, field in _ERROR_TEXTS:
        if isinstance(error, cls):
            template: str = getattr(texts, field)
            if not switchable:
                template = fixed.get(field, template)
            return template.format(model=model.title)
    return texts.error_generic.format(model=model.title)


def limit_text(
    texts: Texts,
    reservation: Reservation,
    model: ModelSpec,
    overall_cap: int,
    now: float,
    *,
    switchable: bool = True,
) -> str:
    """Which limit stopped a request to ``model``, and when it resets. ``switchable``:
    whether another model of the same kind could answer instead (a chat model: yes; an
    image model: when there are others; the transcription model: no); only then does
    the text of a model's own cap suggest /model."""
    when = reset_time(texts, reservation.resets_at, now)
    if reservation.grants[model.id] == Grant.MODEL_CAP:
        template = texts.limit_model if switchable else texts.limit_model_no_switch
        return template.format(model=model.title, limit=model.daily_limit, **when)
    return texts.limit_overall.format(limit=overall_cap, **when)


def skipped_text(
    texts: Texts, reservation: Reservation, skipped: Sequence[ModelSpec], now: float
) -> str:
    """Some models of a comparison were over a limit: which, and when they reset."""
    when = reset_time(texts, reservation.resets_at, now)
    titles = ", ".join(m.title for m in skipped)
    return texts.compare_skipped.format(models=titles, **when)


def vision_hint(catalog: Catalog, model: ModelSpec, texts: Texts) -> str:
    """The user's model can't see images: which models can."""
    titles = ", ".join(m.title for m in catalog.vision_models.values())
    return texts.photo_no_vision.format(model=model.title, models=titles)


def prompt_too_long(texts: Texts, length: int, limit: int) -> str:
    return texts.prompt_too_long.format(length=length, limit=limit)
