"""Every user-facing text of every language: the same placeholders as English, counts
with plural forms, formatting that works for any count, sentences whose grammar does not
hang on a model's title; and what /limits says per model."""

from __future__ import annotations

import dataclasses
import re
import string

import pytest

from bot.catalog import ModelSpec
from bot.handlers.limits import model_line
from bot.texts import EN, LANGUAGES, RU, Texts
from bot.texts.plural import SPEC

FIELDS = [f.name for f in dataclasses.fields(Texts)]
TEMPLATES = [name for name in FIELDS if isinstance(getattr(EN, name), str)]
COUNTS = [0, 1, 2, 3, 5, 11, 12, 14, 21, 22, 25, 101, 111, 1000]


def fields_of(template: str) -> dict[str, str]:
    """Placeholder name -> its format spec."""
    return {
        name: spec or ""
        for _, name, spec, _ in string.Formatter().parse(template)
        if name is not None
    }


@pytest.mark.parametrize("field", TEMPLATES)
def test_every_language_has_the_placeholders_of_english(field: str) -> None:
    english = fields_of(getattr(EN, field))
    for code, texts in LANGUAGES.items():
        theirs = fields_of(getattr(texts, field))
        assert set(theirs) == set(english), (code, field)
        counted = {n for n, spec in theirs.items() if spec.startswith(SPEC)}
        assert counted == {n for n, spec in english.items() if spec.startswith(SPEC)}, (
            code,
            field,
            "a count in one language is a count in all",
        )


@pytest.mark.parametrize("field", TEMPLATES)
def test_every_template_formats_with_any_count(field: str) -> None:
    for code, texts in LANGUAGES.items():
        template: str = getattr(texts, field)
        names = fields_of(template)
        for n in COUNTS:
            values: dict[str, object] = {
                name: n if spec else f"<{name}>" for name, spec in names.items()
            }
            filled = template.format(**values)
            assert "{" not in filled and "}" not in filled, (code, field, filled)
            assert "(s)" not in filled and "кред." not in filled, (code, field, filled)


def test_commands_are_the_same_in_every_language() -> None:
    for texts in LANGUAGES.values():
        assert list(texts.commands) == list(EN.commands)
        assert all(texts.commands.values())


def test_counts_agree_in_russian() -> None:
    assert RU.limits_overall.format(left=3, limit=21) == "<b>Сегодня:</b> осталось 3 из 21 кредита."
    assert RU.limit_overall.format(limit=2, time="00:00 UTC", left="1 ч 0 мин").startswith(
        "Бесплатный лимит на сегодня (2 кредита) израсходован."
    )
    assert RU.prompt_too_long.format(length=4001, limit=4000) == (
        "Сообщение слишком длинное: 4001 символ, а предел — 4000 символов."
    )
    assert "62 секунды" in RU.voice_too_long.format(duration=62, limit=61)
    assert "не больше 61 секунды" in RU.voice_too_long.format(duration=62, limit=61)
    assert RU.stats_title.format(date="d", users=1) == "<b>d</b>: 1 пользователь"
    assert RU.stats_model.format(model="M", count=3) == "M: 3 запроса"
    assert RU.stats_failures.format(provider="p", count=5) == "p: 5 сбоев"
    assert RU.top_line.format(place=1, model="M", votes=22) == "1. M: 22 голоса"
    assert RU.compare_footer_tokens.format(tokens=11) == "11 токенов"


def test_counts_agree_in_english() -> None:
    assert EN.stats_title.format(date="d", users=1) == "<b>d</b>: 1 user"
    assert EN.stats_model.format(model="M", count=1) == "M: 1 request"
    assert EN.stats_failures.format(provider="p", count=2) == "p: 2 failures"
    assert EN.top_line.format(place=1, model="M", votes=1) == "1. M: 1 vote"
    assert EN.compare_footer_tokens.format(tokens=1) == "1 token"
    assert EN.limits_model_capped.format(model="M", cost=1, left=0, limit=1) == (
        "M: 1 credit a request, 0 of 1 request left"
    )
    assert EN.voice_too_long.format(duration=61, limit=60).startswith(
        "Your voice message is 61 seconds long; I can transcribe up to 60 seconds."
    )


def test_russian_model_sentences_do_not_depend_on_the_models_gender() -> None:
    """A title ("GPT-5 mini", "Mistral Large") has no gender: a sentence never starts
    with it before a verb or an adjective ("{model} не принял"); "Модель {model}" does."""
    for field in TEMPLATES:
        template: str = getattr(RU, field)
        if "{model}" not in template:
            continue
        assert not re.search(r"(?:^|[.!?;]\s*)\{model\}(?!:)", template), (field, template)
        assert not re.search(r"\b(её|его|ей|ему)\b", template), (field, template)


def test_language_names_inside_russian_sentences_are_lowercase() -> None:
    assert RU.language_name == "Русский"  # a button
    assert RU.language_name_inline == "русский"
    said = RU.language_auto_set.format(language=RU.language_name_inline)
    assert said == "Снова говорю на языке вашего Telegram: русский."


def test_help_says_how_to_talk_in_groups() -> None:
    assert "In a group, mention me or reply to my message" in EN.help
    assert "В группе упомяните меня или ответьте на моё сообщение" in RU.help


# --- /limits, per model ---------------------------------------------------------------


def spec(cost: int = 1, daily_limit: int | None = None) -> ModelSpec:
    return ModelSpec(id="x", title="X", provider="p", name="x", cost=cost, daily_limit=daily_limit)


def test_a_models_left_never_exceeds_what_the_overall_allowance_lets_through() -> None:
    capped = spec(cost=2, daily_limit=3)
    assert model_line(EN, capped, 0, None) == "X: 2 credits a request, 3 of 3 requests left"
    assert model_line(EN, capped, 0, 100) == "X: 2 credits a request, 3 of 3 requests left"
    assert model_line(EN, capped, 0, 5) == "X: 2 credits a request, 2 of 3 requests left"
    assert model_line(EN, capped, 2, 5) == "X: 2 credits a request, 1 of 3 requests left"
    blocked = "X: 2 credits a request, more than you have left today"
    assert model_line(EN, capped, 0, 1) == blocked
    assert model_line(EN, capped, 0, 0) == blocked
    assert model_line(EN, capped, 3, 0) == "X: 2 credits a request, 0 of 3 requests left"
    assert (
        model_line(EN, spec(cost=4), 0, 3)
        == "X: 4 credits a request, more than you have left today"
    )
    assert model_line(EN, spec(cost=4), 0, 4) == "X: 4 credits a request"
    assert model_line(EN, spec(cost=0, daily_limit=2), 1, 0) == (
        "X: 0 credits a request, 1 of 2 requests left"
    )
    assert model_line(RU, capped, 0, 1) == (
        "X: 2 кредита за запрос — больше, чем у вас осталось на сегодня"
    )
    assert model_line(RU, spec(cost=1, daily_limit=21), 0, 30) == (
        "X: 1 кредит за запрос, осталось 21 из 21 запроса"
    )
