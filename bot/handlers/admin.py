"""Admin commands (ADMIN_IDS only): /stats, /reload and /refund, answered in a private chat
only: in a group an admin is told to ask in private, and nothing about the bot is
posted there. For anyone else they are unknown commands."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiogram import Bot, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command, CommandObject, Filter
from aiogram.types import Message

from bot.catalog import Catalog
from bot.filters import private
from bot.services.payments import Payments
from bot.services.quota import Quota
from bot.services.stats import Stats
from bot.settings import Settings
from bot.texts import Texts
from bot.texts.base import html


class IsAdmin(Filter):
    async def __call__(self, message: Message, settings: Settings) -> bool:
        return message.from_user is not None and settings.is_admin(message.from_user.id)


def router() -> Router:
    r = Router(name=__name__)
    r.message.register(stats, Command("stats"), IsAdmin(), private)
    r.message.register(reload, Command("reload"), IsAdmin(), private)
    r.message.register(refund, Command("refund"), IsAdmin(), private)
    r.message.register(not_here, Command("stats", "reload", "refund"), IsAdmin())
    return r


async def not_here(message: Message, texts: Texts) -> None:
    """An admin command in a group: say where it works, and nothing else."""
    await message.answer(texts.admin_private_only)


async def stats(
    message: Message,
    texts: Texts,
    stats: Stats,
    quota: Quota,
    catalog: Catalog,
    payments: Payments,
) -> None:
    date, _ = quota.day()
    day = await stats.day(date)
    lines = [html(texts.stats_title, date=date, users=day.users)]
    for model_id, count in sorted(day.requests.items(), key=lambda kv: -kv[1]):
        model = catalog.all_models.get(model_id)
        lines.append(
            f"• {html(texts.stats_model, model=model.title if model else model_id, count=count)}"
        )
    if day.failures:
        lines.append("")
        for provider, count in sorted(day.failures.items(), key=lambda kv: -kv[1]):
            lines.append(f"• {html(texts.stats_failures, provider=provider, count=count)}")
    if catalog.sells:
        stars, spent = await payments.today_totals()
        lines.append("")
        lines.append(html(texts.stats_payments, stars=stars, spent=spent))
    await message.answer("\n".join(lines), parse_mode="HTML")


async def refund(
    message: Message, command: CommandObject, bot: Bot, texts: Texts, payments: Payments
) -> None:
    """/refund <user id> <charge id>: Telegram gives the Stars back, and what is left of
    that pack's credits is taken back (never below zero)."""
    args = (command.args or "").split()
    if len(args) != 2 or not args[0].isdigit():
        await message.answer(texts.refund_usage)
        return
    user_id, charge = int(args[0]), args[1]
    record = await payments.charge(user_id, charge)
    if record is None:
        await message.answer(texts.refund_unknown)
        return
    if record.endswith("|r"):
        await message.answer(texts.refund_already)
        return
    try:
        await bot.refund_star_payment(user_id=user_id, telegram_payment_charge_id=charge)
    except TelegramBadRequest as exc:
        await message.answer(texts.refund_refused.format(problem=exc.message))
        return
    removed, spent = await payments.take_back(user_id, charge)
    await message.answer(texts.refund_done.format(removed=max(removed, 0), spent=spent))


async def reload(
    message: Message, texts: Texts, reload_catalog: Callable[[], Awaitable[str | None]]
) -> None:
    problem = await reload_catalog()
    if problem is None:
        await message.answer(texts.reload_done)
    else:
        await message.answer(texts.reload_refused.format(problem=problem[:3500]))
