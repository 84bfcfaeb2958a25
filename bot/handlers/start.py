"""/start and /help: what the bot does, the current model, the commands."""

from __future__ import annotations

from html import escape

from aiogram import Router
from aiogram.filters import Command, CommandStart
from aiogram.types import Message

from bot.catalog import Catalog
from bot.services.prefs import Prefs
from bot.texts import Texts
from bot.texts.base import html


def router() -> Router:
    r = Router(name=__name__)
    r.message.register(help_, CommandStart())
    r.message.register(help_, Command("help"))
    return r


async def help_(message: Message, texts: Texts, prefs: Prefs, catalog: Catalog) -> None:
    assert message.from_user is not None
    current = (await prefs.get(message.from_user.id)).model
    listed = {**texts.commands, "buy": texts.buy_command} if catalog.sells else texts.commands
    commands = "\n".join(f"/{name} — {escape(about)}" for name, about in listed.items())
    text = html(texts.help, model=catalog.models[current].title, commands="{commands}")
    await message.answer(text.format(commands=commands), parse_mode="HTML")
