"""bot.json_session: calls without files go as JSON, and say what aiogram's form says."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramBadRequest, TelegramNetworkError, TelegramRetryAfter
from aiogram.methods import (
    AnswerCallbackQuery,
    EditMessageText,
    SendInvoice,
    SendMessage,
    SendMessageDraft,
    SetMyCommands,
    TelegramMethod,
)
from aiogram.types import (
    BotCommand,
    BufferedInputFile,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    LabeledPrice,
    LinkPreviewOptions,
    MessageEntity,
    ReplyParameters,
)

from bot.json_session import JsonSession
from tests.doubles.telegram import DEFAULT_TOKEN, TelegramDouble
from tests.redis_server import free_port

KEYBOARD = InlineKeyboardMarkup(
    inline_keyboard=[[InlineKeyboardButton(text="Stop", callback_data="stop:1")]]
)
METHODS: list[TelegramMethod[Any]] = [
    SendMessage(
        chat_id=5,
        text="hi *there*",
        entities=[MessageEntity(type="bold", offset=3, length=5)],
        reply_parameters=ReplyParameters(message_id=9, allow_sending_without_reply=True),
        link_preview_options=LinkPreviewOptions(is_disabled=True),
        reply_markup=KEYBOARD,
        disable_notification=False,
    ),
    SendMessageDraft(chat_id=5, draft_id=77, text="so far", message_thread_id=0),
    EditMessageText(chat_id=5, message_id=3, text="done", reply_markup=KEYBOARD),
    AnswerCallbackQuery(callback_query_id="q1", text="", show_alert=True),
    SetMyCommands(commands=[BotCommand(command="model", description="Pick a model")]),
    SendInvoice(
        chat_id=5,
        title="100 credits",
        description="For the paid models",
        payload="credits:100",
        currency="XTR",
        prices=[LabeledPrice(label="100 credits", amount=50)],
    ),
]


def form_fields(bot: Bot, method: TelegramMethod[Any]) -> dict[str, str]:
    """What aiogram's own session sends for ``method``: its form's fields."""
    form = AiohttpSession().build_form_data(bot, method)
    return {options["name"]: value for options, _, value in form._fields}


@pytest.mark.parametrize("method", METHODS, ids=lambda m: type(m).__name__)
async def test_the_json_body_says_what_the_form_says(method: TelegramMethod[Any]) -> None:
    bot = Bot(DEFAULT_TOKEN, default=DefaultBotProperties(parse_mode="HTML"))
    body = JsonSession().json_body(bot, method)
    assert body is not None
    sent = json.loads(body)
    form = form_fields(bot, method)
    assert sent.keys() == form.keys()
    for key, value in sent.items():  # the form holds nested values as JSON, and "true"
        assert (value if isinstance(value, str) else json.dumps(value)) == form[key], key
    if isinstance(method, SendMessage):
        assert sent["parse_mode"] == "HTML"  # the bot's default, filled in
        assert sent["reply_markup"]["inline_keyboard"][0][0]["text"] == "Stop"  # an object
        assert sent["disable_notification"] is False


async def test_a_call_goes_as_json_and_a_file_as_multipart() -> None:
    async with TelegramDouble() as tg:
        user = tg.user()
        bot = Bot(tg.token, session=JsonSession(api=TelegramAPIServer.from_base(tg.url)))
        try:
            sent = await bot.send_message(user.id, "hello", reply_markup=KEYBOARD)
            document = BufferedInputFile(b"# the answer\n", filename="answer.md")
            await bot.send_document(user.id, document, caption="in a file")
        finally:
            await bot.session.close()
        message, upload = (r for r in tg.requests if r.path.endswith(("/sendMessage", "Document")))
        assert message.headers["Content-Type"] == "application/json"
        assert message.json["chat_id"] == user.id and message.json["text"] == "hello"
        assert sent.reply_markup is not None  # Telegram read the keyboard as an object
        assert sent.reply_markup.inline_keyboard[0][0].callback_data == "stop:1"
        assert upload.headers["Content-Type"].startswith("multipart/form-data")
        documents = [m for m in tg.messages(user.id) if "document" in m]
        assert documents and documents[0]["caption"] == "in a file"


async def test_refusals_and_network_errors_are_aiogram_s_own() -> None:
    async with TelegramDouble() as tg:
        user = tg.user()
        bot = Bot(tg.token, session=JsonSession(api=TelegramAPIServer.from_base(tg.url)))
        try:
            tg.fail_next("sendMessage", 429, retry_after=3)
            with pytest.raises(TelegramRetryAfter) as flood:
                await bot.send_message(user.id, "one")
            assert flood.value.retry_after == 3
            with pytest.raises(TelegramBadRequest, match="chat not found"):
                await bot.send_message(424242, "nobody")
            tg.delay_next("sendMessage", 2.0)
            with pytest.raises(TelegramNetworkError, match="timeout"):
                await bot.send_message(user.id, "slow", request_timeout=1)
        finally:
            await bot.session.close()
    nowhere = Bot(
        DEFAULT_TOKEN,
        session=JsonSession(api=TelegramAPIServer.from_base(f"http://127.0.0.1:{free_port()}")),
    )
    try:
        with pytest.raises(TelegramNetworkError):
            await nowhere.send_message(1, "refused")
    finally:
        await nowhere.session.close()
