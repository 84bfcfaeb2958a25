"""Inline keyboards and their callback data (short model ids, never provider names)."""

from __future__ import annotations

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.catalog import Catalog
from bot.texts import Texts


class PickModel(CallbackData, prefix="m"):
    id: str


def model_keyboard(catalog: Catalog, current: str, texts: Texts) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for model in catalog.models.values():
        mark = texts.model_current_mark if model.id == current else ""
        builder.button(text=f"{mark}{model.title}", callback_data=PickModel(id=model.id))
    builder.adjust(2)
    return builder.as_markup()
