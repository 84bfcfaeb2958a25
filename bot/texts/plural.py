"""Plural forms by the CLDR cardinal rules, for every count the bot shows ("1 credit",
"3 кредита", "5 кредитов"), and the templates that use them.

A language lists its plural categories in the order its word forms are written
(``CATEGORIES``): English "credit|credits" (one, other), Russian "кредит|кредита|кредитов"
(one, few, many). In a template, ``{name:#forms}`` is the number followed by the form
that fits it: ``"{cost:#кредит|кредита|кредитов} за запрос"`` with ``cost=2`` gives
"2 кредита за запрос". The forms are the sentence's own, so a sentence that needs
another case writes other forms ("из {limit:#кредита|кредитов|кредитов}").

Rules (https://www.unicode.org/cldr/charts/latest/supplemental/language_plural_rules.html),
for whole numbers, the only counts the bot shows:
- English: one for 1; other for the rest (0, 2, 11, 21, …).
- Russian: one when n % 10 = 1 and n % 100 ≠ 11 (1, 21, 101, …); few when n % 10 is 2-4
  and n % 100 is not 12-14 (2, 3, 22, 104, …); many for the rest (0, 5-20, 25, 111, …).
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Sequence
from typing import Any, Literal

Category = Literal["zero", "one", "two", "few", "many", "other"]


def english(n: int) -> Category:
    return "one" if n == 1 else "other"


def russian(n: int) -> Category:
    n = abs(n)
    if n % 10 == 1 and n % 100 != 11:
        return "one"
    if 2 <= n % 10 <= 4 and not 12 <= n % 100 <= 14:
        return "few"
    return "many"


RULES: dict[str, Callable[[int], Category]] = {"en": english, "ru": russian}
# The categories of each language in the order its forms are written.
CATEGORIES: dict[str, tuple[Category, ...]] = {"en": ("one", "other"), "ru": ("one", "few", "many")}

SPEC = "#"  # ``{name:#one|other}``: the number and its form
_SEPARATOR = "|"


def category(language: str, n: int) -> Category:
    """The CLDR plural category of the whole number ``n`` in ``language``."""
    return RULES[language](n)


def choose(language: str, n: int, forms: Sequence[str] | str) -> str:
    """The one of ``forms`` (in the language's ``CATEGORIES`` order, as a sequence or
    "a|b|c") that goes with ``n``."""
    if isinstance(forms, str):
        forms = forms.split(_SEPARATOR)
    order = CATEGORIES[language]
    if len(forms) != len(order):
        raise ValueError(f"{language} needs {len(order)} forms ({', '.join(order)}): {forms!r}")
    return forms[order.index(category(language, n))]


def count(language: str, n: int, forms: Sequence[str] | str) -> str:
    """``n`` and the form that goes with it: "1 credit", "3 кредита", "11 кредитов"."""
    return f"{n} {choose(language, n, forms)}"


def _whole(value: Any) -> int | None:
    """A count as an int: ints, integral floats and digit strings; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        return int(value)
    return None


class _Formatter(string.Formatter):
    def __init__(self, language: str) -> None:
        self.language = language

    def format_field(self, value: Any, format_spec: str) -> str:
        if not format_spec.startswith(SPEC):
            formatted: str = super().format_field(value, format_spec)
            return formatted
        forms = format_spec[len(SPEC) :].split(_SEPARATOR)
        n = _whole(value)
        if n is None:  # not a count (a missing value): shown as it is, in the last form
            return f"{value} {forms[-1]}"
        return count(self.language, n, forms)


class Template(str):
    """A text with counts in it: ``.format()`` (and ``format_map``) fill ``{name:#forms}``
    with the number and its plural form in the template's language; everything else is
    ``str.format``. Callers pass plain numbers and need not know."""

    language: str

    def __new__(cls, text: str, language: str) -> Template:
        self = super().__new__(cls, text)
        self.language = language
        return self

    def format(self, *args: object, **kwargs: object) -> str:
        return _Formatter(self.language).vformat(str(self), args, kwargs)

    def format_map(self, mapping: Any) -> str:
        return _Formatter(self.language).vformat(str(self), (), mapping)

    def __reduce__(self) -> tuple[Any, ...]:
        return (Template, (str(self), self.language))


def plural_specs(text: str) -> list[tuple[str, list[str]]]:
    """The ``{name:#forms}`` fields of a template: (name, forms) each."""
    found = []
    for _, name, spec, _ in string.Formatter().parse(text):
        if name is not None and spec and spec.startswith(SPEC):
            found.append((name, spec[len(SPEC) :].split(_SEPARATOR)))
    return found


def check(language: str, text: str, where: str) -> None:
    """Refuse a template whose counts do not list one form per category."""
    order = CATEGORIES[language]
    for name, forms in plural_specs(text):
        if len(forms) != len(order) or not all(forms):
            raise ValueError(
                f"{where}: {{{name}}} needs {len(order)} forms ({'|'.join(order)}) "
                f"in {language!r}, got {forms!r}"
            )
