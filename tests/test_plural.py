"""Plural forms: the CLDR rules for English and Russian, the ``{n:#forms}`` templates
that use them, and the check that refuses a template with the wrong number of forms."""

from __future__ import annotations

import copy

import pytest

from bot.texts import EN, RU
from bot.texts.base import shorten
from bot.texts.plural import Template, category, check, choose, count, plural_specs

RUSSIAN = {
    # one: n % 10 = 1 and n % 100 != 11
    "one": [1, 21, 31, 101, 121, 1001, 1_000_001],
    # few: n % 10 in 2..4 and n % 100 not in 12..14
    "few": [2, 3, 4, 22, 23, 24, 32, 102, 104, 1002, 1_000_003],
    # many: the rest
    "many": [0, 5, 6, 9, 10, 11, 12, 13, 14, 15, 19, 20, 25, 100, 111, 112, 114, 1000, 1011],
}


@pytest.mark.parametrize(("expected", "n"), [(c, n) for c, ns in RUSSIAN.items() for n in ns])
def test_russian_categories(expected: str, n: int) -> None:
    assert category("ru", n) == expected


@pytest.mark.parametrize(
    ("n", "word"),
    [
        (0, "кредитов"),
        (1, "кредит"),
        (2, "кредита"),
        (4, "кредита"),
        (5, "кредитов"),
        (11, "кредитов"),
        (12, "кредитов"),
        (14, "кредитов"),
        (21, "кредит"),
        (22, "кредита"),
        (25, "кредитов"),
        (101, "кредит"),
        (111, "кредитов"),
        (1000, "кредитов"),
    ],
)
def test_russian_words(n: int, word: str) -> None:
    assert count("ru", n, "кредит|кредита|кредитов") == f"{n} {word}"
    assert RU.count(n, "кредит|кредита|кредитов") == f"{n} {word}"
    assert RU.plural(n, ("кредит", "кредита", "кредитов")) == word


@pytest.mark.parametrize("n", [0, 2, 5, 11, 12, 21, 22, 25, 101, 111, 1000])
def test_english_other(n: int) -> None:
    assert category("en", n) == "other"
    assert EN.count(n, "credit|credits") == f"{n} credits"


def test_english_one() -> None:
    assert category("en", 1) == "one"
    assert EN.count(1, "credit|credits") == "1 credit"
    assert choose("en", 1, ["user", "users"]) == "user"


def test_negative_numbers_follow_their_absolute_value() -> None:
    assert category("ru", -21) == "one"
    assert category("ru", -3) == "few"


def test_the_number_of_forms_must_match_the_language() -> None:
    with pytest.raises(ValueError, match="3 forms"):
        choose("ru", 2, "кредит|кредиты")
    with pytest.raises(ValueError, match="2 forms"):
        choose("en", 2, "credit|credits|creditss")


def test_a_template_fills_counts_in_its_language() -> None:
    ru = Template("осталось {left} из {limit:#кредита|кредитов|кредитов}", "ru")
    assert ru.format(left=3, limit=21) == "осталось 3 из 21 кредита"
    assert ru.format(left=3, limit=50) == "осталось 3 из 50 кредитов"
    assert ru.format_map({"left": 0, "limit": 1}) == "осталось 0 из 1 кредита"
    en = Template("{n:#vote|votes}, {s:.1f} s, {name!r}", "en")
    assert en.format(n=1, s=2.25, name="x") == "1 vote, 2.2 s, 'x'"
    assert en.format(n=3.0, s=0, name="") == "3 votes, 0.0 s, ''"  # an integral float
    assert en.format(n="7", s=1, name="") == "7 votes, 1.0 s, ''"  # digits, as from html()
    assert en.format(n=None, s=1, name="") == "None votes, 1.0 s, ''"  # never an exception
    assert isinstance(en.format(n=1, s=1, name=""), str)


def test_a_template_survives_copies() -> None:
    template = Template("{n:#vote|votes}", "en")
    for copied in (copy.copy(template), copy.deepcopy(template)):
        assert isinstance(copied, Template)
        assert copied.format(n=1) == "1 vote"


def test_texts_templates_with_counts_are_templates() -> None:
    assert isinstance(RU.limits_model, Template)
    assert RU.limits_model.format(model="M", cost=2) == "M: 2 кредита за запрос"
    assert EN.limits_model.format(model="M", cost=1) == "M: 1 credit a request"
    assert not isinstance(EN.new_done, Template)  # nothing to count: a plain string


def test_check_refuses_a_wrong_number_of_forms() -> None:
    check("ru", "{n:#год|года|лет}", "ok")
    assert plural_specs("{a} {n:#год|года|лет} {b:.1f}") == [("n", ["год", "года", "лет"])]
    with pytest.raises(ValueError, match=r"ru\.field: \{n\} needs 3 forms"):
        check("ru", "{n:#год|лет}", "ru.field")
    with pytest.raises(ValueError, match="needs 2 forms"):
        check("en", "{n:#year|}", "en.field")  # an empty form


def test_shorten_bounds_what_is_said_back() -> None:
    assert shorten("gpt") == "gpt"
    assert shorten("x" * 64) == "x" * 64
    long = shorten("y" * 4090)
    assert len(long) == 64 and long.endswith("…")
    assert shorten("a\nb\t c") == "a b c"
