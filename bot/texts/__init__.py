"""Every user-facing string, one module per language, chosen from Telegram's language_code.

A new language is a new module with one ``Texts`` instance and one line in ``LANGUAGES``.
"""

from __future__ import annotations

from bot.texts.base import Texts
from bot.texts.en import EN
from bot.texts.ru import RU

LANGUAGES: dict[str, Texts] = {"en": EN, "ru": RU}


def texts_for(language_code: str | None) -> Texts:
    """The user's language when we have it (``ru``, ``ru-RU``), English otherwise."""
    if language_code:
        return LANGUAGES.get(language_code.split("-")[0].lower(), EN)
    return EN


__all__ = ["EN", "LANGUAGES", "RU", "Texts", "texts_for"]
