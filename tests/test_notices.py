"""The notices a refused or failed request gets: a provider's failure and a limit, with a
/model suggestion only where switching models can help; counts in plural forms."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.catalog import ModelSpec
from bot.services import notices
from bot.services.quota import Grant, Reservation
from bot.texts import EN, LANGUAGES, RU
from providers import (
    AuthenticationError,
    BadRequestError,
    ContextTooLongError,
    ModelNotFoundError,
    ProviderError,
    ProviderTimeoutError,
    RateLimitedError,
    UnavailableError,
    UnsupportedError,
)
from tests.test_texts import TEMPLATES, fields_of

MODEL = ModelSpec(id="m", title="Mistral Large", provider="p", name="m", daily_limit=3)
ERRORS: list[tuple[ProviderError, str]] = [
    (AuthenticationError("x"), "error_auth"),
    (ModelNotFoundError("x"), "error_not_found"),
    (ContextTooLongError("x"), "error_context"),
    (BadRequestError("x"), "error_bad_request"),
    (RateLimitedError("x"), "error_rate_limited"),
    (ProviderTimeoutError("x"), "error_timeout"),
    (UnavailableError("x"), "error_unavailable"),
    (UnsupportedError("x"), "error_unsupported"),
    (ProviderError("x"), "error_generic"),
]


@pytest.mark.parametrize(("error", "field"), ERRORS)
def test_describe_suggests_model_only_where_switching_can_help(
    error: ProviderError, field: str
) -> None:
    for texts in LANGUAGES.values():
        expected = getattr(texts, field).format(model="Mistral Large")
        assert notices.describe(error, texts, MODEL) == expected
        assert notices.describe(error, texts, MODEL, switchable=True) == expected
        fixed = notices.describe(error, texts, MODEL, switchable=False)
        assert "/model" not in fixed and "Mistral Large" in fixed
        if "/model" not in expected:
            assert fixed == expected  # nothing to take out: the same sentence
        else:
            assert fixed == getattr(texts, f"{field}_no_switch").format(model="Mistral Large")


def test_every_no_switch_text_is_its_twin_without_model() -> None:
    for texts in LANGUAGES.values():
        for field in TEMPLATES:
            if field.endswith("_no_switch"):
                twin = field.removesuffix("_no_switch")
                assert "/model" in getattr(texts, twin), field
                assert "/model" not in getattr(texts, field), field
                assert fields_of(getattr(texts, field)) == fields_of(getattr(texts, twin))


def reservation(grant: Grant) -> Reservation:
    return Reservation("k", "r", {"m": grant}, datetime(2030, 1, 2, tzinfo=UTC))


def test_limit_text_suggests_model_only_where_switching_can_help() -> None:
    now = datetime(2030, 1, 1, 22, 30, tzinfo=UTC).timestamp()
    capped = reservation(Grant.MODEL_CAP)
    said = notices.limit_text(EN, capped, MODEL, 10, now)
    assert said == (
        "You have used today's 3 requests to Mistral Large. It resets at 00:00 UTC "
        "(in 1 h 30 min); other models may still answer: /model."
    )
    alone = notices.limit_text(EN, capped, MODEL, 10, now, switchable=False)
    assert alone == (
        "You have used today's 3 requests to Mistral Large. It resets at 00:00 UTC (in 1 h 30 min)."
    )
    ru = notices.limit_text(RU, capped, MODEL, 10, now, switchable=False)
    assert ru.startswith("Дневной лимит модели Mistral Large (3 запроса) исчерпан.")
    assert "/model" not in ru
    overall = notices.limit_text(RU, reservation(Grant.OVERALL_CAP), MODEL, 2, now)
    assert overall.startswith("Бесплатный лимит на сегодня (2 кредита) израсходован.")
    one = notices.limit_text(EN, reservation(Grant.OVERALL_CAP), MODEL, 1, now)
    assert one.startswith("You have used today's free allowance of 1 credit.")


def test_prompt_too_long_counts_characters() -> None:
    assert notices.prompt_too_long(EN, 4001, 4000) == (
        "Your message is too long: 4001 characters, the limit is 4000 characters."
    )
    assert notices.prompt_too_long(RU, 101, 100) == (
        "Сообщение слишком длинное: 101 символ, а предел — 100 символов."
    )
