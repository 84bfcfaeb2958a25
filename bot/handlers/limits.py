"""/limits (and /usage): what is left today, per model and overall, and when it resets."""

from __future__ import annotations

from datetime import UTC, datetime

from aiogram import Router
from aiogram.filters import Command
from aiogram.types import Message

from bot.catalog import Catalog, ModelSpec
from bot.services.payments import Payments
from bot.services.quota import Quota
from bot.texts import Texts
from bot.texts.base import html, reset_time


def router() -> Router:
    r = Router(name=__name__)
    r.message.register(limits, Command("limits", "usage"))
    return r


async def limits(
    message: Message, texts: Texts, quota: Quota, catalog: Catalog, payments: Payments
) -> None:
    assert message.from_user is not None
    if quota.is_exempt(message.from_user.id):
        await message.answer(texts.limits_admin)
        return
    usage = await quota.usage(message.from_user.id)
    balance = await payments.balance(message.from_user.id) if catalog.sells else None
    cap = quota.overall_cap
    if balance is not None and cap and balance.plan_daily > cap:  # an active plan's allowance
        cap = balance.plan_daily
    overall_left = max(0, cap - usage.total) if cap else None
    lines = [
        html(texts.limits_overall, left=overall_left, limit=cap)
        if overall_left is not None
        else texts.limits_no_overall
    ]
    for model in catalog.usable.values():  # chat, image and transcription models
        lines.append(
            f"• {model_line(texts, model, usage.per_model.get(model.id, 0), overall_left)}"
        )
    lines.append("")
    lines.append(html(texts.limits_resets, **reset_time(texts, usage.resets_at, quota.clock())))
    if balance is not None:
        lines.append(html(texts.limits_paid, credits=balance.credits))
        if balance.plan is not None:
            plan = catalog.plans.get(balance.plan)
            lines.append(
                html(
                    texts.limits_plan,
                    title=plan.title if plan else balance.plan,
                    limit=balance.plan_daily,
                    date=datetime.fromtimestamp(balance.plan_end, UTC).strftime("%Y-%m-%d"),
                )
            )
    await message.answer("\n".join(lines), parse_mode="HTML")


def model_line(texts: Texts, model: ModelSpec, used: int, overall_left: int | None) -> str:
    """One model's line: its cost, and what is left of its own cap, never more than the
    overall allowance (``overall_left`` credits, None without one) still lets through."""
    own_left = max(0, model.daily_limit - used) if model.daily_limit else None
    affordable = None  # requests to this model the overall allowance still covers
    if overall_left is not None and model.cost > 0:
        affordable = overall_left // model.cost
    if own_left != 0 and affordable == 0:  # the overall allowance is what stops it
        return html(texts.limits_model_blocked, model=model.title, cost=model.cost)
    if own_left is None:
        return html(texts.limits_model, model=model.title, cost=model.cost)
    left = own_left if affordable is None else min(own_left, affordable)
    return html(
        texts.limits_model_capped,
        model=model.title,
        cost=model.cost,
        left=left,
        limit=model.daily_limit,
    )
