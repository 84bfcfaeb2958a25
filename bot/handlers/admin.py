"""Admin commands (ADMIN_IDS only): /stats and /reload, answered in a private chat
only: in a group an admin is told to ask in private, and nothing about the bot is
posted there. For anyone else they are unknown commands."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiogram import Router
from aiogram.filters import Command, Filter
from aiogram.types import Message

from bot.catalog import Catalog
from bot.filters import private
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
    r.message.register(not_here, Command("stats", "reload"), IsAdmin())
    return r


async def not_here(message: Message, texts: Texts) -> None:
    """An admin command in a group: say where it works, and nothing else."""
    await message.answer(texts.admin_private_only)


async def stats(
    message: Message, texts: Texts, stats: Stats, quota: Quota, catalog: Catalog
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
    await message.answer("\n".join(lines), parse_mode="HTML")


async def reload(
    message: Message, texts: Texts, reload_catalog: Callable[[], Awaitable[str | None]]
) -> None:
    problem = await reload_catalog()
    if problem is None:
        await message.answer(texts.reload_done)
    else:
        await message.answer(texts.reload_refused.format(problem=problem[:3500]))
