"""The fake Telegram Bot API, driven by aiogram's real client and by raw HTTP."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiogram import Bot, Dispatcher, F, Router
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramConflictError,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.types import (
    BotCommand,
    BufferedInputFile,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    MessageEntity,
    ReplyParameters,
)
from aiohttp import web

from tests.doubles.base import DoubleServer
from tests.doubles.telegram import (
    BOT_ID,
    DEFAULT_TOKEN,
    NOT_MODIFIED,
    QUERY_TOO_OLD,
    TelegramDouble,
    button_labels,
)
from tests.doubles.telegram_validation import (
    count_entities,
    parse_text,
    utf16_len,
    validate_caption,
    validate_text,
)

# --- fixtures -----------------------------------------------------------------------


@pytest.fixture(scope="module")
async def shared_bot() -> AsyncIterator[Bot]:
    """One aiogram Bot for the module (closing a session costs 250 ms)."""
    session = AiohttpSession()
    bot = Bot(DEFAULT_TOKEN, session=session)
    yield bot
    await session.close()


@pytest.fixture
async def tg() -> AsyncIterator[TelegramDouble]:
    async with TelegramDouble() as double:
        yield double


@pytest.fixture
def bot(shared_bot: Bot, tg: TelegramDouble) -> Bot:
    """The shared Bot, pointed at this test's double."""
    shared_bot.session.api = TelegramAPIServer.from_base(tg.url)
    return shared_bot


def keyboard(*labels: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [InlineKeyboardButton(text=label, callback_data=f"pick:{label.lower()}")]
            for label in labels
        ]
    )


# --- the bot's side through aiogram -------------------------------------------------


async def test_get_me_describes_the_bot(bot: Bot) -> None:
    me = await bot.get_me()
    assert (me.id, me.is_bot, me.username) == (BOT_ID, True, "manymodels_bot")


async def test_long_polling_returns_an_update_as_soon_as_it_arrives(
    bot: Bot, tg: TelegramDouble
) -> None:
    ann = tg.user(id=42, first_name="Ann", username="ann")
    started = time.monotonic()
    polling = asyncio.create_task(bot.get_updates(timeout=30))
    await asyncio.sleep(0.05)
    assert not polling.done()
    await ann.send("hi")
    updates = await asyncio.wait_for(polling, 2)
    assert time.monotonic() - started < tg.max_poll_wait
    assert len(updates) == 1
    message = updates[0].message
    assert message is not None and message.from_user is not None
    assert (message.text, message.from_user.id, message.chat.type) == ("hi", 42, "private")


async def test_get_updates_honours_offset_and_limit(bot: Bot, tg: TelegramDouble) -> None:
    ann = tg.user(id=7)
    for text in ("one", "two", "three"):
        await ann.send(text)
    first = await bot.get_updates(limit=2)
    assert [u.message.text for u in first if u.message] == ["one", "two"]
    again = await bot.get_updates()
    assert [u.update_id for u in again[:2]] == [u.update_id for u in first]
    rest = await bot.get_updates(offset=first[-1].update_id + 1)
    assert [u.message.text for u in rest if u.message] == ["three"]
    assert rest[0].update_id > first[-1].update_id
    tg.max_poll_wait = 0.1
    assert await bot.get_updates(offset=rest[0].update_id + 1, timeout=5) == []


async def test_long_poll_waits_at_most_the_cap(bot: Bot, tg: TelegramDouble) -> None:
    tg.max_poll_wait = 0.15
    started = time.monotonic()
    assert await bot.get_updates(timeout=50) == []
    assert 0.1 <= time.monotonic() - started < 1.0


async def test_allowed_updates_filters_update_types(bot: Bot, tg: TelegramDouble) -> None:
    ann = tg.user()
    sent = await bot.send_message(ann.id, "choose", reply_markup=keyboard("Yes"))
    await ann.send("text that is filtered out")
    await ann.click("Yes")
    updates = await bot.get_updates(allowed_updates=["callback_query"])
    assert [u.event_type for u in updates] == ["callback_query"]
    query = updates[0].callback_query
    assert query is not None and query.message is not None
    assert (query.data, query.message.message_id) == ("pick:yes", sent.message_id)


async def test_a_second_poll_ends_the_first_with_a_conflict(bot: Bot, tg: TelegramDouble) -> None:
    first = asyncio.create_task(bot.get_updates(timeout=30))
    await asyncio.sleep(0.05)
    second = asyncio.create_task(bot.get_updates(timeout=0))
    with pytest.raises(TelegramConflictError, match="terminated by other getUpdates"):
        await asyncio.wait_for(first, 2)
    assert await second == []


@pytest.mark.parametrize(
    ("kwargs", "description"),
    [
        ({"text": ""}, "Bad Request: message text is empty"),
        ({"text": " \n "}, "Bad Request: text must be non-empty"),
        (
            {"text": "<script>alert(1)</script>", "parse_mode": "HTML"},
            'Bad Request: can\'t parse entities: Unsupported start tag "script" at byte offset 0',
        ),
        (
            {"text": "<b>bold", "parse_mode": "HTML"},
            "Bad Request: can't parse entities: "
            'Can\'t find end tag corresponding to start tag "b"',
        ),
        ({"text": "x" * 4097}, "Bad Request: message is too long"),
        (
            {"text": "hello", "entities": [MessageEntity(type="bold", offset=3, length=5)]},
            "Bad Request: entity beginning at UTF-16 offset 3 ends after the end of the text "
            "at UTF-16 offset 8",
        ),
        ({"text": "hi", "parse_mode": "XML"}, "Bad Request: unsupported parse_mode"),
    ],
)
async def test_send_message_refusals_have_telegrams_wording(
    bot: Bot, tg: TelegramDouble, kwargs: dict[str, Any], description: str
) -> None:
    ann = tg.user()
    with pytest.raises(TelegramBadRequest) as refused:
        await bot.send_message(ann.id, **kwargs)
    assert refused.value.message == description
    assert tg.calls("sendMessage")[-1].status == 400
    assert ann.messages() == []


async def test_send_message_stores_parsed_text_and_entities(bot: Bot, tg: TelegramDouble) -> None:
    ann = tg.user()
    sent = await bot.send_message(ann.id, "<b>Hi</b> 😀 <i>there</i>\n\n", parse_mode="HTML")
    assert sent.text == "Hi 😀 there"
    assert [(e.type, e.offset, e.length) for e in sent.entities or []] == [
        ("bold", 0, 2),
        ("italic", 6, 5),
    ]
    [stored] = ann.messages()
    assert stored["entities"][1] == {"type": "italic", "offset": 6, "length": 5}
    assert stored["from"]["id"] == BOT_ID


async def test_unknown_chat_is_not_found(bot: Bot, tg: TelegramDouble) -> None:
    with pytest.raises(TelegramBadRequest, match="chat not found"):
        await bot.send_message(999, "hello")


async def test_edit_that_changes_nothing_is_not_modified(bot: Bot, tg: TelegramDouble) -> None:
    ann = tg.user()
    sent = await bot.send_message(ann.id, "draft", reply_markup=keyboard("Stop"))
    with pytest.raises(TelegramBadRequest) as refused:
        await bot.edit_message_text(
            "draft", chat_id=ann.id, message_id=sent.message_id, reply_markup=keyboard("Stop")
        )
    assert refused.value.message == NOT_MODIFIED

    await bot.edit_message_text(
        "final answer", chat_id=ann.id, message_id=sent.message_id, reply_markup=keyboard("Stop")
    )
    assert button_labels(ann.messages()[0]) == [["Stop"]]
    await bot.edit_message_text(text="final answer", chat_id=ann.id, message_id=sent.message_id)
    [shown] = ann.messages()
    assert shown["text"] == "final answer" and "reply_markup" not in shown
    assert "edit_date" in shown


async def test_edits_of_missing_or_foreign_messages_fail(bot: Bot, tg: TelegramDouble) -> None:
    ann = tg.user()
    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await bot.edit_message_text(text="x", chat_id=ann.id, message_id=77)
    mine = await ann.send("my own words")
    with pytest.raises(TelegramBadRequest, match="message can't be edited"):
        await bot.edit_message_text(text="x", chat_id=ann.id, message_id=mine["message_id"])


async def test_drafts_work_in_private_chats_only(bot: Bot, tg: TelegramDouble) -> None:
    ann = tg.user()
    group = tg.group(title="Friends")
    with pytest.raises(TelegramBadRequest) as refused:
        await bot.send_message_draft(chat_id=group.id, draft_id=1, text="thinking")
    assert refused.value.message == "Bad Request: TEXTDRAFT_PEER_INVALID"

    assert await bot.send_message_draft(chat_id=ann.id, draft_id=5, text="*Hel*", parse_mode="")
    assert ann.draft() == {"draft_id": 5, "text": "*Hel*", "entities": []}
    with pytest.raises(LookupError, match="Stop button"):
        await ann.press_stop()
    await bot.send_message_draft(chat_id=ann.id, draft_id=5, text="Hello", can_stop=True)
    stopped = await ann.press_stop()
    assert stopped["draft_id"] == 5
    [update] = await bot.get_updates()
    assert update.stopped_message_generation is not None
    assert update.stopped_message_generation.draft_id == 5
    assert ann.messages() == []
    await bot.send_message(ann.id, "Hello")
    assert ann.draft() is None
    assert [call.text for call in tg.drafts(ann.id)] == ["*Hel*", "Hello"]


async def test_injected_rate_limit_surfaces_as_retry_after(bot: Bot, tg: TelegramDouble) -> None:
    ann = tg.user()
    tg.fail_next("sendMessage", retry_after=3)
    with pytest.raises(TelegramRetryAfter) as limited:
        await bot.send_message(ann.id, "hello")
    assert limited.value.retry_after == 3
    assert "Too Many Requests: retry after 3" in limited.value.message
    assert (await bot.send_message(ann.id, "hello")).text == "hello"
    assert [call.status for call in tg.calls("sendMessage")] == [429, 200]


async def test_injected_server_error_and_repeated_failures(bot: Bot, tg: TelegramDouble) -> None:
    ann = tg.user()
    tg.fail_next("sendChatAction", 500, times=2)
    for _ in range(2):
        with pytest.raises(TelegramServerError):
            await bot.send_chat_action(ann.id, "typing")
    assert await bot.send_chat_action(ann.id, "typing")


async def test_flood_control_limits_sends_per_chat(bot: Bot, tg: TelegramDouble) -> None:
    ann, bob = tg.user(), tg.user()
    tg.limit_rate(calls=1, per_seconds=10, retry_after=7)
    await bot.send_message(ann.id, "one")
    await bot.send_message(bob.id, "other chat is fine")
    with pytest.raises(TelegramRetryAfter) as limited:
        await bot.send_message(ann.id, "two")
    assert limited.value.retry_after == 7


async def test_wrong_token_is_unauthorized(bot: Bot, tg: TelegramDouble) -> None:
    with pytest.raises(TelegramUnauthorizedError, match="Unauthorized"):
        await Bot("123:wrong", session=bot.session).get_me()
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{tg.url}/bot123:wrong/getMe") as response,
    ):
        assert response.status == 401
        assert await response.json() == {
            "ok": False,
            "error_code": 401,
            "description": "Unauthorized",
        }


async def test_clicking_a_button_delivers_its_callback_data(bot: Bot, tg: TelegramDouble) -> None:
    ann = tg.user(id=31, first_name="Ann", language_code="ru")
    await bot.send_message(ann.id, "old", reply_markup=keyboard("GPT", "Llama"))
    latest = await bot.send_message(ann.id, "new", reply_markup=keyboard("Llama"))
    query = await ann.click("Llama")
    assert query["data"] == "pick:llama"
    assert query["message"]["message_id"] == latest.message_id
    updates = await bot.get_updates()
    callback = updates[-1].callback_query
    assert callback is not None
    assert (callback.from_user.id, callback.from_user.language_code) == (31, "ru")

    assert await bot.answer_callback_query(callback.id, text="Switched")
    answer = await tg.wait_callback_answer(callback.id)
    assert answer.params["text"] == "Switched"
    with pytest.raises(TelegramBadRequest) as refused:
        await bot.answer_callback_query(callback.id)
    assert refused.value.message == QUERY_TOO_OLD
    with pytest.raises(LookupError, match="Mistral"):
        await ann.click("Mistral")


async def test_next_message_and_the_chat_as_the_user_sees_it(bot: Bot, tg: TelegramDouble) -> None:
    ann = tg.user()
    question = await ann.send("What is 2+2?")
    first = await bot.send_message(ann.id, "Thinking…")
    await bot.send_message(
        ann.id, "4", reply_parameters=ReplyParameters(message_id=question["message_id"])
    )
    await bot.edit_message_text(text="Let me see", chat_id=ann.id, message_id=first.message_id)
    assert (await ann.next_message())["text"] == "Let me see"
    reply = await ann.next_message()
    assert reply["text"] == "4" and reply["reply_to_message"]["text"] == "What is 2+2?"
    assert [m["text"] for m in ann.messages()] == ["What is 2+2?", "Let me see", "4"]
    waiting = asyncio.create_task(ann.wait_message(contains="done"))
    await bot.edit_message_text("all done", chat_id=ann.id, message_id=first.message_id)
    assert (await asyncio.wait_for(waiting, 2))["message_id"] == first.message_id
    with pytest.raises(TimeoutError, match="a new bot message"):
        await ann.next_message(timeout=0.05)


async def test_wait_for_sees_calls_made_later(bot: Bot, tg: TelegramDouble) -> None:
    ann = tg.user()
    mark = tg.mark()
    waiting = asyncio.create_task(
        tg.wait_for("SENDMESSAGE", lambda c: c.text == "second", since=mark)
    )
    await bot.send_message(ann.id, "first")
    await bot.send_message(ann.id, "second")
    call = await asyncio.wait_for(waiting, 2)
    assert (call.chat_id, call.ok) == (ann.id, True)
    with pytest.raises(TimeoutError, match="deleteMessage"):
        await tg.wait_for("deleteMessage", timeout=0.05)


async def test_groups_mentions_replies_and_edits(bot: Bot, tg: TelegramDouble) -> None:
    ann = tg.user(id=5)
    group = tg.group(id=-100500, title="Team")
    answer = await bot.send_message(group.id, "earlier answer")
    asked = await ann.send(
        "@manymodels_bot /help@manymodels_bot 😀", chat=group, reply_to=answer.message_id
    )
    assert [(e["type"], e["offset"], e["length"]) for e in asked["entities"]] == [
        ("mention", 0, 15),
        ("bot_command", 16, 20),
    ]
    await ann.edit(asked, "never mind")
    updates = await bot.get_updates()
    first, edited = updates[-2].message, updates[-1].edited_message
    assert first is not None and first.reply_to_message is not None
    assert (first.chat.type, first.reply_to_message.text) == ("supergroup", "earlier answer")
    assert edited is not None and edited.text == "never mind"
    assert group.messages()[-1]["text"] == "never mind"


async def test_photos_voice_and_file_downloads(bot: Bot, tg: TelegramDouble) -> None:
    ann = tg.user()
    sent = await bot.send_photo(
        ann.id,
        BufferedInputFile(b"\x89PNG-picture", filename="cat.png"),
        caption="<b>Cat</b>",
        parse_mode="HTML",
    )
    assert sent.photo is not None and sent.caption == "Cat"
    assert tg.file_bytes(sent.photo[-1].file_id) == b"\x89PNG-picture"
    with pytest.raises(TelegramBadRequest, match="message caption is too long"):
        await bot.send_photo(ann.id, sent.photo[-1].file_id, caption="x" * 1025)

    voice = await ann.send_voice(b"OggS-hello", duration=3)
    file = await bot.get_file(voice["voice"]["file_id"])
    assert file.file_path is not None and file.file_path.endswith(".oga")
    downloaded = await bot.download_file(file.file_path)
    assert downloaded is not None and downloaded.read() == b"OggS-hello"
    with pytest.raises(TelegramBadRequest, match="invalid file_id"):
        await bot.get_file("nope")


async def test_other_content_kinds_reach_the_bot(bot: Bot, tg: TelegramDouble) -> None:
    ann = tg.user()
    await ann.send_sticker("🔥")
    await ann.send_photo(caption="what is this?")
    await ann.send_document(file_name="report.pdf")
    await ann.send_location(1.5, 2.5)
    messages = [u.message for u in await bot.get_updates() if u.message]
    assert [m.content_type for m in messages] == ["sticker", "photo", "document", "location"]
    assert messages[0].sticker is not None and messages[0].sticker.emoji == "🔥"
    assert messages[1].caption == "what is this?"
    assert messages[2].document is not None and messages[2].document.file_name == "report.pdf"


async def test_commands_round_trip_and_are_checked(bot: Bot, tg: TelegramDouble) -> None:
    commands = [BotCommand(command="model", description="Pick a model")]
    assert await bot.set_my_commands(commands)
    assert [(c.command, c.description) for c in await bot.get_my_commands()] == [
        ("model", "Pick a model")
    ]
    assert await bot.get_my_commands(language_code="ru") == []
    with pytest.raises(TelegramBadRequest, match="BOT_COMMAND_INVALID"):
        await bot.set_my_commands([BotCommand(command="Model", description="x")])


async def test_blocked_user_gets_forbidden(bot: Bot, tg: TelegramDouble) -> None:
    ann = tg.user()
    ann.block()
    with pytest.raises(Exception, match="bot was blocked by the user") as refused:
        await bot.send_message(ann.id, "hello")
    assert tg.calls("sendMessage")[-1].status == 403
    assert type(refused.value).__name__ == "TelegramForbiddenError"


async def test_long_callback_data_is_refused(bot: Bot, tg: TelegramDouble) -> None:
    ann = tg.user()
    markup = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="x", callback_data="d" * 65)]]
    )
    with pytest.raises(TelegramBadRequest, match="BUTTON_DATA_INVALID"):
        await bot.send_message(ann.id, "pick", reply_markup=markup)


# --- raw HTTP -----------------------------------------------------------------------


async def test_raw_requests_in_every_encoding(tg: TelegramDouble) -> None:
    ann = tg.user()
    base = f"{tg.url}/bot{tg.token}"
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/getMe") as response:
            assert (await response.json())["result"]["username"] == "manymodels_bot"
        payload = {
            "chat_id": ann.id,
            "text": "json",
            "entities": [{"type": "bold", "offset": 0, "length": 4}],
        }
        async with http.post(f"{base}/sendMessage", json=payload) as response:
            body = await response.json()
            assert body["ok"] is True
            assert body["result"]["entities"] == [{"type": "bold", "offset": 0, "length": 4}]
        async with http.post(
            f"{base}/sendmessage", data={"chat_id": ann.id, "text": "form"}
        ) as response:
            assert (await response.json())["result"]["text"] == "form"
        async with http.post(f"{base}/sendMessage", data={"chat_id": ann.id}) as response:
            assert response.status == 400
            assert await response.json() == {
                "ok": False,
                "error_code": 400,
                "description": "Bad Request: message text is empty",
            }
    assert [call.method for call in tg.calls()] == [
        "getMe",
        "sendMessage",
        "sendMessage",
        "sendMessage",
    ]
    assert tg.calls("sendMessage", chat_id=ann.id, ok=True)[1].params["text"] == "form"


async def test_webhook_delivery_with_the_secret_header(tg: TelegramDouble) -> None:
    received: list[tuple[dict[str, Any], str | None]] = []
    arrived = asyncio.Event()

    async def hook(request: web.Request) -> web.Response:
        received.append(
            (await request.json(), request.headers.get("X-Telegram-Bot-Api-Secret-Token"))
        )
        arrived.set()
        return web.json_response({"method": "sendMessage", "chat_id": 9, "text": "from webhook"})

    receiver = DoubleServer()
    receiver.app.router.add_post("/hook", hook)
    async with receiver:
        base = f"{tg.url}/bot{tg.token}"
        ann = tg.user(id=9)
        async with aiohttp.ClientSession() as http:
            form = {"url": f"{receiver.url}/hook", "secret_token": "s3cret"}
            async with http.post(f"{base}/setWebhook", data=form) as response:
                assert await response.json() == {
                    "ok": True,
                    "result": True,
                    "description": "Webhook was set",
                }
            async with http.post(f"{base}/getUpdates") as response:
                assert response.status == 409
            await ann.send("via webhook")
            await asyncio.wait_for(arrived.wait(), 2)
            await tg.wait_for("sendMessage", lambda c: c.text == "from webhook")
            async with http.post(
                f"{base}/setWebhook", data={"url": "http://example.com/hook"}
            ) as response:
                assert (await response.json())["description"] == (
                    "Bad Request: bad webhook: An HTTPS URL must be provided for webhook"
                )
            async with http.post(f"{base}/getWebhookInfo") as response:
                assert (await response.json())["result"]["pending_update_count"] == 0
    update, secret = received[0]
    assert (update["message"]["text"], secret) == ("via webhook", "s3cret")
    assert [m["text"] for m in ann.messages()] == ["via webhook", "from webhook"]


# --- validation as pure functions ---------------------------------------------------


@pytest.mark.parametrize(
    ("html", "text", "entities"),
    [
        ("<b>b</b><strong>s</strong>", "bs", [("bold", 0, 1), ("bold", 1, 1)]),
        ("<i>i</i> <em>e</em>", "i e", [("italic", 0, 1), ("italic", 2, 1)]),
        ("<u>u</u><ins>n</ins>", "un", [("underline", 0, 1), ("underline", 1, 1)]),
        (
            "<s>s</s><strike>t</strike><del>d</del>",
            "std",
            [("strikethrough", i, 1) for i in range(3)],
        ),
        (
            '<span class="tg-spoiler">s</span><tg-spoiler>t</tg-spoiler>',
            "st",
            [("spoiler", 0, 1), ("spoiler", 1, 1)],
        ),
        ('<a href="https://example.com">link</a>', "link", [("text_link", 0, 4)]),
        ("<code>x</code>", "x", [("code", 0, 1)]),
        ('<pre><code class="language-python">x = 1</code></pre>', "x = 1", [("pre", 0, 5)]),
        ("<blockquote expandable>q</blockquote>", "q", [("expandable_blockquote", 0, 1)]),
        ('<tg-emoji emoji-id="5368324170671202286">👍</tg-emoji>', "👍", [("custom_emoji", 0, 2)]),
        (
            "&lt;tag&gt; &amp; &quot;q&quot; &#128512; &#x41; &copy; a & b",
            '<tag> & "q" 😀 A &copy; a & b',
            [],
        ),
        ("<B>caps</B>", "caps", [("bold", 0, 4)]),
    ],
)
def test_html_tags_become_entities(
    html: str, text: str, entities: list[tuple[str, int, int]]
) -> None:
    parsed = parse_text(html, parse_mode="HTML")
    assert parsed.text == text
    assert [(e["type"], e["offset"], e["length"]) for e in parsed.entities] == entities


def test_html_link_and_code_language_details() -> None:
    link = parse_text('<a href="example.com?a=1&amp;b=2">x</a>', parse_mode="html").entities[0]
    assert link["url"] == "http://example.com/?a=1&b=2"
    pre = parse_text('<pre><code class="language-python">x</code></pre>', parse_mode="HTML")
    assert pre.entities[0]["language"] == "python"


@pytest.mark.parametrize(
    ("html", "error"),
    [
        ("<script>x</script>", 'Unsupported start tag "script" at byte offset 0'),
        ("1 < 2", 'Unsupported start tag "" at byte offset 2'),
        ("😀 <br/>", 'Unsupported start tag "br/" at byte offset 5'),
        ("<b>bold", 'Can\'t find end tag corresponding to start tag "b"'),
        ("<b><i>x</b></i>", 'Unmatched end tag at byte offset 7, expected "</i>", found "</b>"'),
        ("x</b>", "Unexpected end tag at byte offset 1"),
        ("<b", "Unclosed start tag at byte offset 0"),
        ('<a href="x>t</a>', "Unclosed start tag at byte offset 0"),
        ("<span>s</span>", 'Tag "span" must have class "tg-spoiler" at byte offset 0'),
        ('<tg-emoji emoji-id="abc">👍</tg-emoji>', "Invalid custom emoji identifier specified"),
        (
            "&#xD83D;",
            "Text contains invalid Unicode characters after decoding HTML entities, "
            "check for unmatched surrogate code units",
        ),
    ],
)
def test_html_refusals(html: str, error: str) -> None:
    assert validate_text(html, parse_mode="HTML") == f"Bad Request: can't parse entities: {error}"


@pytest.mark.parametrize(
    ("text", "entities", "error"),
    [
        (
            "hello",
            [{"type": "bold", "offset": 5, "length": 1}],
            "entity beginning at UTF-16 offset 5 ends after the end of the text at UTF-16 offset 6",
        ),
        (
            "hello",
            [{"type": "bold", "offset": 6, "length": 1}],
            "entity begins after the end of the text at UTF-16 offset 6",
        ),
        (
            "hello",
            [{"type": "bold", "offset": -1, "length": 2}],
            "receive an entity with incorrect offset -1",
        ),
        (
            "hello",
            [{"type": "italic", "offset": 0, "length": -2}],
            "receive an entity with incorrect length -2",
        ),
        (
            "😀x",
            [{"type": "bold", "offset": 1, "length": 2}],
            "entity begins in a middle of a UTF-16 symbol at byte offset 4",
        ),
        (
            "😀x",
            [{"type": "bold", "offset": 0, "length": 1}],
            "entity beginning at UTF-16 offset 0 ends in a middle of a UTF-16 symbol "
            "at byte offset 4",
        ),
        (
            "hello",
            [{"type": "sparkle", "offset": 0, "length": 1}],
            "can't parse MessageEntity: Unsupported type specified",
        ),
        (
            "hello",
            [{"type": "text_link", "offset": 0, "length": 1}],
            "can't parse MessageEntity: Can't find field \"url\"",
        ),
        (
            "hello",
            [{"type": "text_link", "offset": 0, "length": 1, "url": "localhost"}],
            "entity URL 'localhost' is invalid: Wrong HTTP URL",
        ),
        (
            "hello",
            [{"type": "bold", "length": 1}],
            "can't parse MessageEntity: Can't find field \"offset\"",
        ),
    ],
)
def test_entity_refusals(text: str, entities: list[dict[str, Any]], error: str) -> None:
    assert validate_text(text, entities) == f"Bad Request: {error}"


def test_valid_entities_and_ignored_ones_are_accepted() -> None:
    entities = [
        {"type": "bold", "offset": 0, "length": 2},  # the whole emoji
        {"type": "pre", "offset": 3, "length": 5, "language": "py"},
        {"type": "url", "offset": 0, "length": 99},  # found by Telegram itself: ignored
        {"type": "italic", "offset": 1, "length": 0},  # empty: dropped
    ]
    assert validate_text("😀 print", entities) is None
    parsed = parse_text("😀 print", entities)
    assert parsed.entities == [
        {"type": "bold", "offset": 0, "length": 2},
        {"type": "pre", "offset": 3, "length": 5, "language": "py"},
    ]


def test_lengths_count_utf16_code_units_after_parsing() -> None:
    assert utf16_len("a😀é") == 4
    assert validate_text("😀" * 2048) is None
    assert validate_text("😀" * 2049) == "Bad Request: message is too long"
    assert validate_text("x" * 4096) is None
    assert validate_text("<b>" + "x" * 4096 + "</b>", parse_mode="HTML") is None
    assert validate_text("&amp;" * 4096, parse_mode="HTML") is None
    assert validate_text("x" * 4096 + "\n\n  ") is None  # trimmed before it is measured
    assert validate_caption("x" * 1024) is None
    assert validate_caption("x" * 1025) == "Bad Request: message caption is too long"
    assert validate_caption("") is None


def test_text_is_cleaned_and_trimmed_like_telegram() -> None:
    parsed = parse_text("\n  <b>Hi</b>\r\n\tthere \n", parse_mode="HTML")
    assert parsed.text == "Hi\n there"
    assert parsed.entities == [{"type": "bold", "offset": 0, "length": 2}]
    assert validate_text("<b> </b>", parse_mode="HTML") == "Bad Request: text must be non-empty"


def test_more_than_a_hundred_entities_are_counted_and_capped() -> None:
    html = " ".join(f"<b>{i}</b>" for i in range(150))
    assert validate_text(html, parse_mode="HTML") is None
    assert count_entities(html, parse_mode="HTML") == 150
    assert len(parse_text(html, parse_mode="HTML").entities) == 100
    assert count_entities("plain") == 0


@pytest.mark.parametrize(
    ("markdown", "result"),
    [
        (
            "*bold* _it_ __u__ ~s~ ||sp||",
            ("bold it u s sp", ["bold", "italic", "underline", "strikethrough", "spoiler"]),
        ),
        ("[link](https://example.com) `code`", ("link code", ["text_link", "code"])),
        ("```python\nprint(1)\n```", ("print(1)", ["pre"])),
        (">quoted\n>lines", ("quoted\nlines", ["blockquote"])),
        ("1\\+1 \\= 2\\!", ("1+1 = 2!", [])),
    ],
)
def test_markdown_v2(markdown: str, result: tuple[str, list[str]]) -> None:
    parsed = parse_text(markdown, parse_mode="MarkdownV2")
    assert (parsed.text, [e["type"] for e in parsed.entities]) == result


@pytest.mark.parametrize(
    ("markdown", "error"),
    [
        ("Done.", "Character '.' is reserved and must be escaped with the preceding '\\'"),
        ("a - b", "Character '-' is reserved and must be escaped with the preceding '\\'"),
        ("😀 *bold", "Can't find end of Bold entity at byte offset 5"),
        ("_it", "Can't find end of Italic entity at byte offset 0"),
        ("[x](http://a.b", "Can't find end of a URL at byte offset 4"),
    ],
)
def test_markdown_v2_refusals(markdown: str, error: str) -> None:
    assert (
        validate_text(markdown, parse_mode="MarkdownV2")
        == f"Bad Request: can't parse entities: {error}"
    )


def test_legacy_markdown() -> None:
    parsed = parse_text("*bold* _it_ `c` [l](http://x.org)", parse_mode="Markdown")
    assert parsed.text == "bold it c l"
    assert validate_text("*open", parse_mode="Markdown") == (
        "Bad Request: can't parse entities: Can't find end of the entity starting at byte offset 0"
    )


async def test_a_real_dispatcher_polls_the_double(bot: Bot, tg: TelegramDouble) -> None:
    router = Router()

    @router.message(F.text)
    async def echo(message: Message) -> None:
        await message.answer(f"echo: {message.text}", reply_markup=keyboard("Again"))

    @router.callback_query(F.data == "pick:again")
    async def again(query: CallbackQuery) -> None:
        await query.answer("once more")

    dispatcher = Dispatcher()
    dispatcher.include_router(router)
    polling = asyncio.create_task(
        dispatcher.start_polling(bot, handle_signals=False, close_bot_session=False)
    )
    try:
        ann = tg.user()
        await ann.send("hello")
        reply = await ann.next_message()
        assert reply["text"] == "echo: hello"
        query = await ann.click("Again")
        answer = await tg.wait_callback_answer(query["id"])
        assert answer.params["text"] == "once more"
    finally:
        await dispatcher.stop_polling()
        await asyncio.wait_for(polling, 2)
    offsets = [c.params.get("offset") for c in tg.calls("getUpdates")]
    assert offsets[-1] is not None  # the dispatcher confirmed what it handled
