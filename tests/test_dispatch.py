"""Every filter and handler runs on the event loop: aiogram hands a plain (not ``async``)
callback, a magic filter (``F.successful_payment``) among them, to a worker thread, a
thread hop per update that passes it (bot.app.on_the_loop)."""

from __future__ import annotations

import datetime

from aiogram import Dispatcher, F, Router
from aiogram.types import Chat, Message, User

from bot.app import on_the_loop
from bot.handlers import get_routers


def _message(text: str) -> Message:
    return Message(
        message_id=1,
        date=datetime.datetime.now(datetime.UTC),
        chat=Chat(id=1, type="private"),
        from_user=User(id=1, is_bot=False, first_name="A"),
        text=text,
    )


def test_no_filter_or_handler_of_the_bot_runs_in_a_thread() -> None:
    dispatcher = Dispatcher()
    dispatcher.include_routers(*get_routers())
    on_the_loop(dispatcher)
    for router in dispatcher.chain_tail:
        for observer in router.observers.values():
            for handler in observer.handlers:
                for callable_ in (handler, *(handler.filters or ())):
                    assert callable_.awaitable, (router.name, callable_.callback)


async def test_a_plain_filter_still_decides_on_the_loop() -> None:
    async def handler(message: Message) -> None:
        return None

    router = Router()
    router.message.register(handler, F.text == "yes", lambda message: message.chat.id == 1)
    dispatcher = Dispatcher()
    dispatcher.include_router(router)
    on_the_loop(dispatcher)
    registered = router.message.handlers[0]
    assert await registered.check(_message("yes")) == (True, {})
    passed, _ = await registered.check(_message("no"))
    assert not passed
