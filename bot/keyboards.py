"""Inline keyboards and their callback data (short model ids, never provider names)."""

from __future__ import annotations

from collections.abc import Sequence

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.catalog import Catalog, ModelSpec
from bot.texts import LANGUAGES, Texts


class PickModel(CallbackData, prefix="m"):
    id: str


def model_keyboard(
    catalog: Catalog, current: str, texts: Texts, image: str | None = None
) -> InlineKeyboardMarkup:
    """The chat models, two a row; then, in rows of their own, the image models for
    /image (marked 🎨), ``image`` being the user's."""
    builder = InlineKeyboardBuilder()
    for model in catalog.models.values():
        mark = texts.model_current_mark if model.id == current else ""
        builder.button(text=f"{mark}{model.title}", callback_data=PickModel(id=model.id))
    builder.adjust(2)
    if catalog.image_models:
        images = InlineKeyboardBuilder()
        for model in catalog.image_models.values():
            mark = texts.model_current_mark if model.id == image else ""
            label = f"{mark}{texts.model_image_mark}{model.title}"
            images.button(text=label, callback_data=PickModel(id=model.id))
        images.adjust(2)
        builder.attach(images)
    return builder.as_markup()


class PickLanguage(CallbackData, prefix="lg"):
    code: str  # a LANGUAGES key, or AUTO


AUTO = "auto"  # follow the Telegram app's language


def language_keyboard(current: str | None, texts: Texts) -> InlineKeyboardMarkup:
    """Each language under its own name, then "as in Telegram"; the user's choice marked
    (``current`` None: no choice, Telegram's)."""
    builder = InlineKeyboardBuilder()
    for code, language in LANGUAGES.items():
        mark = texts.model_current_mark if code == current else ""
        builder.button(
            text=f"{mark}{language.language_name}", callback_data=PickLanguage(code=code)
        )
    mark = texts.model_current_mark if current is None else ""
    builder.button(text=f"{mark}{texts.language_auto}", callback_data=PickLanguage(code=AUTO))
    builder.adjust(len(LANGUAGES), 1)
    return builder.as_markup()


class ToggleCompare(CallbackData, prefix="ct"):
    id: str


class ContinueWith(CallbackData, prefix="cc"):
    cid: str  # the comparison
    id: str  # the model


class VoteBest(CallbackData, prefix="cv"):
    cid: str
    id: str


def compare_set_keyboard(
    catalog: Catalog, chosen: Sequence[str], texts: Texts, merge: str | None = None
) -> InlineKeyboardMarkup:
    """The chat models to toggle in or out of the set, two a row; then the model that
    merges compared answers (``merge``), pressed to move to the next one."""
    builder = InlineKeyboardBuilder()
    for model in catalog.models.values():
        mark = texts.model_current_mark if model.id in chosen else ""
        builder.button(text=f"{mark}{model.title}", callback_data=ToggleCompare(id=model.id))
    builder.adjust(2)
    merger = catalog.get(merge or "") or catalog.get(catalog.default_merge)
    if merger is not None:
        label = texts.merge_with.format(model=merger.title)
        builder.row(InlineKeyboardButton(text=label, callback_data=CycleMerge(id=merger.id).pack()))
    return builder.as_markup()


class MergeAnswers(CallbackData, prefix="mg"):
    cid: str  # the comparison or battle whose answers are merged


class CycleMerge(CallbackData, prefix="mc"):
    id: str  # the merge model shown now: a press moves to the next one


def compare_answer_keyboard(cid: str, model: ModelSpec, texts: Texts) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            _buttons(
                (
                    texts.compare_continue.format(model=model.title),
                    ContinueWith(cid=cid, id=model.id),
                ),
                (texts.compare_best, VoteBest(cid=cid, id=model.id)),
            ),
            _buttons((texts.merge_button, MergeAnswers(cid=cid))),
        ]
    )


class ArenaVote(CallbackData, prefix="av"):
    bid: str  # the battle: an opaque id, nothing that names a model
    c: str  # "a", "b", "t" (tie) or "x" (both bad)


def arena_vote_keyboard(battle_id: str, texts: Texts) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            _buttons(
                (texts.arena_a_better, ArenaVote(bid=battle_id, c="a")),
                (texts.arena_b_better, ArenaVote(bid=battle_id, c="b")),
            ),
            _buttons(
                (texts.arena_tie, ArenaVote(bid=battle_id, c="t")),
                (texts.arena_both_bad, ArenaVote(bid=battle_id, c="x")),
            ),
        ]
    )


def revealed_keyboard(battle_id: str, model: ModelSpec, texts: Texts) -> InlineKeyboardMarkup:
    """Under a battle's answer once its model is known: continue with it, or merge."""
    return _row(
        (
            texts.compare_continue.format(model=model.title),
            ContinueWith(cid=battle_id, id=model.id),
        ),
        (texts.merge_button, MergeAnswers(cid=battle_id)),
    )


class StopAnswer(CallbackData, prefix="st"):
    gen: int
    part: int | None = None  # one model of a /compare; None: the whole answer


class RetryAnswer(CallbackData, prefix="rt"):
    gen: int


def stop_keyboard(gen_id: int, texts: Texts, part: int | None = None) -> InlineKeyboardMarkup:
    return _row((texts.stop_button, StopAnswer(gen=gen_id, part=part)))


def retry_keyboard(gen_id: int, texts: Texts) -> InlineKeyboardMarkup:
    return _row((texts.retry_button, RetryAnswer(gen=gen_id)))


def _row(*buttons: tuple[str, CallbackData]) -> InlineKeyboardMarkup:
    """One row of buttons, built directly: the builder deep-copies its rows, a cost every
    answer's Stop and Retry buttons would pay."""
    return InlineKeyboardMarkup(inline_keyboard=[_buttons(*buttons)])


def _buttons(*buttons: tuple[str, CallbackData]) -> list[InlineKeyboardButton]:
    return [InlineKeyboardButton(text=text, callback_data=data.pack()) for text, data in buttons]
