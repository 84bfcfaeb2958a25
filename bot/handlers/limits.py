"""/limits (and /usage): what is left today, per model and overall, and when it resets."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command
from aiogram.types import Message

from bot.catalog import Catalog
from bot.services.quota import Quota
from bot.texts import Texts
from bot.texts.base import html, reset_time


def router() -> Router:
    r = Router(name=__name__)
    r.message.register(limits, Command("limits", "usage"))
    return r


async def limits(message: Message, texts: Texts, quota: Quota, catalog: Catalog) -> None:
    assert message.from_user is not None
    if quota.is_exempt(message.from_user.id):
        await message.answer(texts.limits_admin)
        return
    usage = await quota.usage(message.from_user.id)
    cap = quota.overall_cap
    lines = [
        html(texts.limits_overall, left=max(0, cap - usage.total), limit=cap)
        if cap
        else texts.limits_no_overall
    ]
    for model in catalog.usable.values():  # chat, image and transcription models
        if model.daily_limit:
            used = usage.per_model.get(model.id, 0)
            left = max(0, model.daily_limit - used)
            line = html(
                texts.limits_model_capped,
                model=model.title,
                cost=model.cost,
                left=left,
                limit=model.daily_limit,
            )
        else:
            line = html(texts.limits_model, model=model.title, cost=model.cost)
        lines.append(f"• {line}")
    lines.append("")
    lines.append(html(texts.limits_resets, **reset_time(texts, usage.resets_at, quota.clock())))
    await message.answer("\n".join(lines), parse_mode="HTML")
