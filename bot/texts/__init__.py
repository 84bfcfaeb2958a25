"""Every user-facing string, one module per language: the one the user chose with
/language, else their Telegram app's (``language_code``), else English.

A new language is a new module with one ``Texts`` instance and one line in ``LANGUAGES``.
"""

from __future__ import annotations

from bot.texts.base import Texts
from bot.texts.en import EN
from bot.texts.ru import RU

LANGUAGES: dict[str, Texts] = {"en": EN, "ru": RU}


def texts_for(language_code: str | None, chosen: str | None = None) -> Texts:
    """The language the user ``chosen`` with /language, else their Telegram app's when
    we have it (``ru``, ``ru-RU``), else English."""
    if chosen in LANGUAGES:
        return LANGUAGES[chosen]
    if language_code:
        return LANGUAGES.get(language_code.split("-")[0].lower(), EN)
    return EN


__all__ = ["EN", "LANGUAGES", "RU", "Texts", "texts_for"]
