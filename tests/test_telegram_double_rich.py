"""The fake Telegram Bot API's rich messages (Bot API 10.1), driven by aiogram's real
client: what is stored, and each refusal Telegram would make."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramBadRequest, TelegramNotFound, TelegramRetryAfter
from aiogram.types import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputMediaPhoto,
    InputRichBlockBlockQuotation,
    InputRichBlockDetails,
    InputRichBlockDivider,
    InputRichBlockList,
    InputRichBlockListItem,
    InputRichBlockMathematicalExpression,
    InputRichBlockParagraph,
    InputRichBlockPhoto,
    InputRichBlockPreformatted,
    InputRichBlockSectionHeading,
    InputRichBlockTable,
    InputRichBlockThinking,
    InputRichBlockUnion,
    InputRichMessage,
    MessageEntity,
    ReplyParameters,
    RichBlockCaption,
    RichBlockTableCell,
    RichTextBold,
    RichTextCode,
    RichTextItalic,
    RichTextMathematicalExpression,
    RichTextUrl,
)

from tests.doubles.telegram import DEFAULT_TOKEN, NOT_MODIFIED, TelegramDouble, button_labels
from tests.doubles.telegram_rich import (
    MAX_RICH_BLOCKS,
    MAX_RICH_TEXT_LENGTH,
    RICH_EMPTY,
    RICH_ONE_SOURCE,
    RICH_THINKING,
    RICH_TOO_DEEP,
    RICH_TOO_LONG,
    RICH_TOO_MANY_BLOCKS,
    RICH_TOO_MANY_COLUMNS,
    RICH_TOO_MANY_MEDIA,
    TEXT_AND_RICH,
    RichStats,
    flatten,
    measure,
    validate_rich_message,
)

# --- fixtures and builders ----------------------------------------------------------


@pytest.fixture(scope="module")
async def shared_bot() -> AsyncIterator[Bot]:
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
    shared_bot.session.api = TelegramAPIServer.from_base(tg.url)
    return shared_bot


def keyboard(*labels: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [InlineKeyboardButton(text=label, callback_data=f"pick:{label.lower()}")]
            for label in labels
        ]
    )


def rich(*blocks: InputRichBlockUnion) -> InputRichMessage:
    return InputRichMessage(blocks=list(blocks))


def para(text: Any) -> InputRichBlockParagraph:
    return InputRichBlockParagraph(text=text)


def cell(text: str | None = "x", **more: Any) -> RichBlockTableCell:
    return RichBlockTableCell(align="left", valign="top", text=text, **more)


def table(*rows: list[RichBlockTableCell]) -> InputRichBlockTable:
    return InputRichBlockTable(cells=list(rows))


def item(*blocks: InputRichBlockUnion) -> InputRichBlockListItem:
    return InputRichBlockListItem(blocks=list(blocks))


def quote(*blocks: InputRichBlockUnion) -> InputRichBlockBlockQuotation:
    return InputRichBlockBlockQuotation(blocks=list(blocks))


def nested(depth: int) -> InputRichBlockUnion:
    """A paragraph at ``depth``, inside alternating block quotes, list items and
    details blocks (each one level deeper)."""
    block: InputRichBlockUnion = para(f"at depth {depth}")
    for level in range(depth - 1, 0, -1):
        match level % 3:
            case 0:
                block = quote(block)
            case 1:
                block = InputRichBlockList(items=[item(block)])
            case _:
                block = InputRichBlockDetails(summary=f"level {level}", blocks=[block])
    return block


def photo(number: int) -> InputRichBlockPhoto:
    return InputRichBlockPhoto(photo=InputMediaPhoto(media=f"https://example.com/{number}.jpg"))


def blocks_counted(list_items: int, table_rows: int) -> InputRichMessage:
    """A list whose items each hold a quote holding a paragraph (1 + 3 per item) and
    a table of ``table_rows`` rows (1 + 1 per row)."""
    return rich(
        InputRichBlockList(items=[item(quote(para(f"p{n}"))) for n in range(list_items)]),
        table(*[[cell(f"r{n}")] for n in range(table_rows)]),
    )


def texts_of_every_kind(total: int) -> InputRichMessage:
    """``total`` UTF-16 code units of text spread over a heading, code, a formula, a
    table cell, a details summary, a list item, a caption and a custom emoji."""
    parts = 8
    size, last = divmod(total - 2, parts - 1)  # the custom emoji counts its 2 units
    heading = "h" * size
    return rich(
        InputRichBlockSectionHeading(text=heading, size=1),
        InputRichBlockPreformatted(text="c" * size, language="python"),
        InputRichBlockMathematicalExpression(expression="m" * size),
        table([cell("t" * size)]),
        InputRichBlockDetails(summary="s" * size, blocks=[]),
        InputRichBlockList(items=[item(para("l" * size))]),
        InputRichBlockTable(cells=[[cell("")]], caption="k" * (size + last)),
        para([RichTextUrl(text="", url="https://example.com/" + "u" * 500), "😀"]),
    )


# --- sending: what is stored ---------------------------------------------------------


EVERYTHING = rich(
    InputRichBlockSectionHeading(text="Answer", size=2),
    para(["Hello ", RichTextBold(text="bold"), " and ", RichTextItalic(text="it")]),
    para(
        [
            "See ",
            RichTextUrl(text="the docs", url="https://example.com/docs"),
            " or run ",
            RichTextCode(text="pip"),
            ", where ",
            RichTextMathematicalExpression(expression="x^2"),
            " grows",
        ]
    ),
    InputRichBlockList(
        items=[
            item(para("first")),
            item(para("second"), InputRichBlockList(items=[item(para("inner"))])),
        ]
    ),
    InputRichBlockPreformatted(text="print(1)\nprint(2)", language="python"),
    InputRichBlockMathematicalExpression(expression=r"\int_0^1 x\,dx"),
    InputRichBlockDivider(),
    table(
        [cell("Model", is_header=True), cell("Score", is_header=True)],
        [cell("A"), cell("1", colspan=1)],
    ),
    quote(para("quoted")),
    InputRichBlockDetails(summary="Thought for 3 s", blocks=[para("hidden")]),
)
EVERYTHING_TEXT = (
    "Answer\n"
    "Hello bold and it\n"
    "See the docs or run pip, where x^2 grows\n"
    "first\n"
    "second\n"
    "inner\n"
    "print(1)\n"
    "print(2)\n"
    "\\int_0^1 x\\,dx\n"
    "Model | Score\n"
    "A | 1\n"
    "quoted\n"
    "Thought for 3 s\n"
    "hidden"
)


async def test_a_rich_message_is_stored_with_its_flattened_text(
    bot: Bot, tg: TelegramDouble
) -> None:
    ann = tg.user()
    question = await ann.send("explain")
    sent = await bot.send_rich_message(
        chat_id=ann.id,
        rich_message=EVERYTHING,
        reply_markup=keyboard("Retry"),
        reply_parameters=ReplyParameters(message_id=question["message_id"]),
    )
    assert sent.text == EVERYTHING_TEXT
    assert sent.rich_message is not None  # aiogram parsed what the double returned
    assert [block.type for block in sent.rich_message.blocks][:4] == [
        "heading",
        "paragraph",
        "paragraph",
        "list",
    ]
    [stored] = tg.rich_messages(ann.id)
    assert stored["message_id"] == sent.message_id
    assert stored["text"] == EVERYTHING_TEXT == flatten(stored["rich_message"])
    assert stored["entities"] == []
    assert stored["reply_to_message"]["text"] == "explain"
    assert button_labels(stored) == [["Retry"]]
    sent_blocks = tg.calls("sendRichMessage")[0].params["rich_message"]["blocks"]
    assert stored["rich_message"]["blocks"][1] == sent_blocks[1]  # as sent
    assert [i["label"] for i in stored["rich_message"]["blocks"][3]["items"]] == ["•", "•"]
    assert (await ann.next_message())["text"] == EVERYTHING_TEXT
    assert ann.rich_messages() == [stored]
    assert tg.calls("sendRichMessage")[0].text == EVERYTHING_TEXT


async def test_a_plain_message_is_not_a_rich_one(bot: Bot, tg: TelegramDouble) -> None:
    ann = tg.user()
    await bot.send_message(ann.id, "plain")
    await bot.send_rich_message(chat_id=ann.id, rich_message=rich(para("rich")))
    assert [m["text"] for m in ann.bot_messages()] == ["plain", "rich"]
    assert [m["text"] for m in tg.rich_messages(ann.id)] == ["rich"]


async def test_a_button_under_a_rich_message_reaches_the_bot(bot: Bot, tg: TelegramDouble) -> None:
    ann = tg.user()
    content = rich(InputRichBlockList(items=[item(para("one")), item(para("two"))]))
    await bot.send_rich_message(chat_id=ann.id, rich_message=content, reply_markup=keyboard("Stop"))
    await ann.click("Stop")
    [update] = await bot.get_updates()
    query = update.callback_query
    assert query is not None and query.message is not None
    shown = getattr(query.message, "rich_message", None)
    assert shown is not None and shown.blocks[0].items[1].label == "•"


async def test_ordered_items_get_numbers_and_media_blocks_get_files(
    bot: Bot, tg: TelegramDouble
) -> None:
    ann = tg.user()
    content = rich(
        InputRichBlockList(
            items=[
                InputRichBlockListItem(blocks=[para("a")], value=3, type="1"),
                InputRichBlockListItem(blocks=[para("b")], type="1"),
            ]
        ),
        InputRichBlockPhoto(
            photo=InputMediaPhoto(media="https://example.com/cat.jpg"),
            caption=RichBlockCaption(text="A cat", credit="me"),
        ),
    )
    sent = await bot.send_rich_message(chat_id=ann.id, rich_message=content)
    assert sent.text == "a\nb\nA cat\nme"
    assert sent.rich_message is not None
    labels = [i["label"] for i in tg.rich_messages(ann.id)[0]["rich_message"]["blocks"][0]["items"]]
    assert labels == ["3.", "2."]
    picture = sent.rich_message.blocks[1].photo
    assert picture[0].file_id and picture[0].width > 0


async def test_markdown_or_html_alone_is_accepted(bot: Bot, tg: TelegramDouble) -> None:
    ann = tg.user()
    md = await bot.send_rich_message(chat_id=ann.id, rich_message=InputRichMessage(markdown="*Hi*"))
    assert md.text == "*Hi*"
    page = await bot.send_rich_message(
        chat_id=ann.id, rich_message=InputRichMessage(html="<p>A &amp; <b>B</b></p>")
    )
    assert page.text == "A & B"
    assert page.rich_message is not None and len(page.rich_message.blocks) == 1


async def test_the_limits_themselves_are_accepted(bot: Bot, tg: TelegramDouble) -> None:
    ann = tg.user()
    emoji = await bot.send_rich_message(
        chat_id=ann.id, rich_message=rich(para("😀" * (MAX_RICH_TEXT_LENGTH // 2)))
    )
    assert emoji.text == "😀" * 16384
    spread = texts_of_every_kind(MAX_RICH_TEXT_LENGTH)
    assert measure(spread.model_dump(exclude_none=True)).text_length == MAX_RICH_TEXT_LENGTH
    await bot.send_rich_message(chat_id=ann.id, rich_message=spread)
    many = blocks_counted(list_items=165, table_rows=3)  # 1 + 3*165 + 1 + 3 = 500
    await bot.send_rich_message(chat_id=ann.id, rich_message=many)
    await bot.send_rich_message(chat_id=ann.id, rich_message=rich(nested(16)))
    wide = table([cell(str(n)) for n in range(18)] + [cell("wide", colspan=2)])
    await bot.send_rich_message(chat_id=ann.id, rich_message=rich(wide))
    await bot.send_rich_message(chat_id=ann.id, rich_message=rich(*[photo(n) for n in range(50)]))
    assert len(tg.rich_messages(ann.id)) == 6


# --- refusals --------------------------------------------------------------------------


REFUSALS: list[tuple[str, InputRichMessage, str]] = [
    ("utf16", rich(para("😀" * 16384 + "x")), RICH_TOO_LONG),
    ("spread", texts_of_every_kind(MAX_RICH_TEXT_LENGTH + 1), RICH_TOO_LONG),
    ("blocks", blocks_counted(list_items=165, table_rows=4), RICH_TOO_MANY_BLOCKS),
    ("depth", rich(nested(17)), RICH_TOO_DEEP),
    (
        "columns",
        rich(table([cell(str(n)) for n in range(19)] + [cell("wide", colspan=2)])),
        RICH_TOO_MANY_COLUMNS,
    ),
    ("media", rich(*[photo(n) for n in range(51)]), RICH_TOO_MANY_MEDIA),
    ("thinking", rich(InputRichBlockThinking(text="Thinking…"), para("x")), RICH_THINKING),
    ("deep thinking", rich(quote(InputRichBlockThinking(text="hm"))), RICH_THINKING),
    ("mix", InputRichMessage(markdown="*x*", blocks=[para("x")]), RICH_ONE_SOURCE),
    ("none", InputRichMessage(is_rtl=True), RICH_ONE_SOURCE),
    ("no blocks", InputRichMessage(blocks=[]), RICH_EMPTY),
    (
        "javascript",
        rich(para([RichTextUrl(text="x", url="javascript:alert(1)")])),
        "Bad Request: rich message URL 'javascript:alert(1)' is invalid: Unsupported URL protocol",
    ),
    (
        "no host",
        rich(table([cell([RichTextUrl(text="x", url="http://localhost/")])])),
        "Bad Request: rich message URL 'http://localhost/' is invalid: Wrong HTTP URL",
    ),
    (
        "empty paragraph",
        rich(para("ok"), para([" ", RichTextBold(text="\n")])),
        "Bad Request: rich message paragraph text must be non-empty",
    ),
    (
        "empty heading",
        rich(InputRichBlockSectionHeading(text="", size=1)),
        "Bad Request: rich message heading text must be non-empty",
    ),
    (
        "align",
        rich(table([RichBlockTableCell(align="justify", valign="top", text="x")])),
        "Bad Request: rich message table cell align 'justify' is invalid",
    ),
    (
        "valign",
        rich(table([RichBlockTableCell(align="left", valign="center", text="x")])),
        "Bad Request: rich message table cell valign 'center' is invalid",
    ),
]


@pytest.mark.parametrize(
    ("content", "description"),
    [(content, description) for _, content, description in REFUSALS],
    ids=[name for name, _, _ in REFUSALS],
)
async def test_send_rich_message_refusals(
    bot: Bot, tg: TelegramDouble, content: InputRichMessage, description: str
) -> None:
    ann = tg.user()
    with pytest.raises(TelegramBadRequest) as refused:
        await bot.send_rich_message(chat_id=ann.id, rich_message=content)
    assert refused.value.message == description
    assert tg.calls("sendRichMessage")[-1].status == 400
    assert ann.messages() == []


async def test_a_payload_aiogram_could_not_read_is_refused(tg: TelegramDouble) -> None:
    ann = tg.user()
    url = f"{tg.url}/bot{tg.token}/sendRichMessage"
    cases = [
        ({"blocks": [{"type": "paragraph"}]}, 'field "blocks.0.paragraph.text": Field required'),
        ({"blocks": [{"type": "sparkles", "text": "x"}]}, 'field "blocks.0"'),
        ({"blocks": [{"type": "paragraph", "text": 5}]}, 'field "blocks.0.paragraph.text"'),
    ]
    async with aiohttp.ClientSession() as http:
        for payload, problem in cases:
            body = {"chat_id": ann.id, "rich_message": payload}
            async with http.post(url, json=body) as response:
                assert response.status == 400
                answer = await response.json()
            assert answer["description"].startswith(
                f"Bad Request: can't parse rich message: {problem}"
            )
        async with http.post(url, json={"chat_id": ann.id}) as response:
            assert (await response.json())["description"] == RICH_EMPTY
    assert ann.messages() == []


async def test_scripted_failures_and_flood_control_apply(bot: Bot, tg: TelegramDouble) -> None:
    ann = tg.user()
    tg.fail_next("sendRichMessage", 400, "Bad Request: injected")
    with pytest.raises(TelegramBadRequest, match="injected"):
        await bot.send_rich_message(chat_id=ann.id, rich_message=rich(para("x")))
    tg.limit_rate(calls=1, per_seconds=10, retry_after=4)
    await bot.send_rich_message(chat_id=ann.id, rich_message=rich(para("x")))
    with pytest.raises(TelegramRetryAfter, match="retry after 4"):
        await bot.send_rich_message_draft(chat_id=ann.id, draft_id=1, rich_message=rich(para("y")))


# --- drafts --------------------------------------------------------------------------


async def test_rich_drafts_show_thinking_and_can_be_stopped(bot: Bot, tg: TelegramDouble) -> None:
    ann = tg.user()
    await bot.send_message_draft(chat_id=ann.id, draft_id=7, text="plain start")
    thinking = rich(InputRichBlockThinking(text="Thinking about it"), para("Partial"))
    assert await bot.send_rich_message_draft(
        chat_id=ann.id, draft_id=7, rich_message=thinking, can_stop=True, keep_on_stop=True
    )
    draft = ann.draft()
    assert draft is not None
    assert draft["text"] == "Thinking about it\nPartial"
    assert draft["rich_message"] == thinking.model_dump(exclude_none=True)
    assert (draft["draft_id"], draft["can_stop"], draft["keep_on_stop"]) == (7, True, True)
    assert [call.text for call in tg.drafts(ann.id)] == [
        "plain start",
        "Thinking about it\nPartial",
    ]
    assert [call.method for call in tg.drafts(ann.id)] == [
        "sendMessageDraft",
        "sendRichMessageDraft",
    ]

    stopped = await ann.press_stop()
    assert stopped["draft_id"] == 7
    [update] = await bot.get_updates()
    assert update.stopped_message_generation is not None
    assert update.stopped_message_generation.draft_id == 7

    await bot.send_rich_message(chat_id=ann.id, rich_message=rich(para("Final")))
    assert ann.draft() is None  # the draft ends when the bot sends


async def test_rich_draft_refusals(bot: Bot, tg: TelegramDouble) -> None:
    ann = tg.user()
    group = tg.group()
    cases: list[tuple[int, int, InputRichMessage, str]] = [
        (group.id, 1, rich(para("x")), "Bad Request: TEXTDRAFT_PEER_INVALID"),
        (ann.id, 0, rich(para("x")), "Bad Request: RANDOM_ID_INVALID"),
        (ann.id, 1, rich(nested(17)), RICH_TOO_DEEP),
        (ann.id, 1, InputRichMessage(blocks=[]), RICH_EMPTY),
        (
            ann.id,
            1,
            rich(InputRichBlockThinking(text=" ")),
            "Bad Request: rich message thinking text must be non-empty",
        ),
    ]
    for chat_id, draft_id, content, description in cases:
        with pytest.raises(TelegramBadRequest) as refused:
            await bot.send_rich_message_draft(
                chat_id=chat_id, draft_id=draft_id, rich_message=content
            )
        assert refused.value.message == description
    assert ann.draft() is None
    with pytest.raises(LookupError, match="Stop button"):
        await ann.press_stop()


# --- edits ---------------------------------------------------------------------------


async def test_edit_message_text_with_rich_content(bot: Bot, tg: TelegramDouble) -> None:
    ann = tg.user()
    sent = await bot.send_message(
        ann.id, "draft", entities=[MessageEntity(type="bold", offset=0, length=5)]
    )
    first = rich(InputRichBlockSectionHeading(text="Title", size=1), para("Body"))
    edited = await bot.edit_message_text(
        chat_id=ann.id, message_id=sent.message_id, rich_message=first
    )
    assert not isinstance(edited, bool) and edited.text == "Title\nBody"
    [shown] = tg.rich_messages(ann.id)
    assert shown["text"] == "Title\nBody" and shown["entities"] == []
    assert shown["rich_message"] == first.model_dump(exclude_none=True)
    assert "edit_date" in shown

    with pytest.raises(TelegramBadRequest) as refused:
        await bot.edit_message_text(chat_id=ann.id, message_id=sent.message_id, rich_message=first)
    assert refused.value.message == NOT_MODIFIED
    await bot.edit_message_text(
        chat_id=ann.id,
        message_id=sent.message_id,
        rich_message=first,
        reply_markup=keyboard("Stop"),
    )
    assert button_labels(ann.messages()[0]) == [["Stop"]]
    await bot.edit_message_text(
        chat_id=ann.id,
        message_id=sent.message_id,
        rich_message=rich(para("Body"), para("more")),
        reply_markup=keyboard("Stop"),
    )
    assert ann.messages()[0]["text"] == "Body\nmore"

    await bot.edit_message_text("plain again", chat_id=ann.id, message_id=sent.message_id)
    assert tg.rich_messages(ann.id) == []
    assert ann.messages()[0]["text"] == "plain again"


async def test_edit_message_text_rich_refusals(bot: Bot, tg: TelegramDouble) -> None:
    ann = tg.user()
    sent = await bot.send_rich_message(chat_id=ann.id, rich_message=rich(para("kept")))
    cases: list[tuple[dict[str, Any], str]] = [
        ({"text": "both", "rich_message": rich(para("x"))}, TEXT_AND_RICH),
        ({}, "Bad Request: message text is empty"),
        ({"rich_message": rich(InputRichBlockThinking(text="hm"))}, RICH_THINKING),
        (
            {"rich_message": rich(para(""))},
            "Bad Request: rich message paragraph text must be non-empty",
        ),
        ({"rich_message": blocks_counted(list_items=200, table_rows=0)}, RICH_TOO_MANY_BLOCKS),
    ]
    for kwargs, description in cases:
        with pytest.raises(TelegramBadRequest) as refused:
            await bot.edit_message_text(chat_id=ann.id, message_id=sent.message_id, **kwargs)
        assert refused.value.message == description
    assert ann.messages()[0]["text"] == "kept"
    assert "edit_date" not in ann.messages()[0]


# --- an older Bot API server -----------------------------------------------------------


async def test_an_older_server_does_not_know_rich_messages(bot: Bot, tg: TelegramDouble) -> None:
    ann = tg.user()
    sent = await bot.send_message(ann.id, "text")
    tg.rich = False
    with pytest.raises(TelegramNotFound) as missing:
        await bot.send_rich_message(chat_id=ann.id, rich_message=rich(para("x")))
    assert missing.value.message == "Not Found"
    with pytest.raises(TelegramNotFound):
        await bot.send_rich_message_draft(chat_id=ann.id, draft_id=1, rich_message=rich(para("x")))
    with pytest.raises(TelegramBadRequest) as refused:
        await bot.edit_message_text(
            chat_id=ann.id, message_id=sent.message_id, rich_message=rich(para("x"))
        )
    assert refused.value.message == "Bad Request: message text is empty"
    # text and rich_message: the unknown field is ignored, the text is edited
    await bot.edit_message_text(
        "new text", chat_id=ann.id, message_id=sent.message_id, rich_message=rich(para("x"))
    )
    assert ann.messages()[0]["text"] == "new text" and tg.rich_messages(ann.id) == []
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{tg.url}/bot{tg.token}/sendRichMessage",
            json={"chat_id": ann.id, "rich_message": {"blocks": []}},
        ) as response,
    ):
        assert response.status == 404
        assert await response.json() == {
            "ok": False,
            "error_code": 404,
            "description": "Not Found",
        }
    tg.rich = True
    assert (await bot.send_rich_message(chat_id=ann.id, rich_message=rich(para("x")))).text == "x"


async def test_the_constructor_flag_plays_an_older_server(shared_bot: Bot) -> None:
    async with TelegramDouble(rich=False) as old:
        shared_bot.session.api = TelegramAPIServer.from_base(old.url)
        ann = old.user()
        with pytest.raises(TelegramNotFound):
            await shared_bot.send_rich_message(chat_id=ann.id, rich_message=rich(para("x")))
        assert old.rich is False
        assert [call.status for call in old.calls("sendRichMessage")] == [404]


# --- the pure functions ----------------------------------------------------------------


def test_flatten_puts_each_block_on_its_own_lines() -> None:
    payload = {
        "blocks": [
            {"type": "thinking", "text": "hmm"},
            {"type": "heading", "size": 1, "text": ["A ", {"type": "bold", "text": "title"}]},
            {"type": "divider"},
            {
                "type": "list",
                "items": [
                    {"blocks": [{"type": "paragraph", "text": "one"}]},
                    {"blocks": [{"type": "pre", "text": "x = 1\ny = 2"}]},
                ],
            },
            {
                "type": "table",
                "caption": "Scores",
                "cells": [
                    [
                        {"align": "left", "valign": "top", "text": "a"},
                        {"align": "left", "valign": "top"},
                    ],
                    [
                        {"align": "left", "valign": "top", "text": {"type": "code", "text": "b"}},
                        {"align": "left", "valign": "top", "text": "c"},
                    ],
                ],
            },
            {"type": "details", "summary": "More", "blocks": [{"type": "paragraph", "text": "in"}]},
            {"type": "blockquote", "blocks": [{"type": "paragraph", "text": "q"}], "credit": "me"},
            {"type": "mathematical_expression", "expression": "E=mc^2"},
            {
                "type": "paragraph",
                "text": [
                    {"type": "custom_emoji", "custom_emoji_id": "1", "alternative_text": "👍"},
                    {"type": "mathematical_expression", "expression": "x"},
                    {"type": "anchor", "name": "top"},
                ],
            },
        ]
    }
    assert flatten(payload).split("\n") == [
        "hmm",
        "A title",
        "one",
        "x = 1",
        "y = 2",
        "Scores",
        "a | ",
        "b | c",
        "More",
        "in",
        "q",
        "me",
        "E=mc^2",
        "👍x",
    ]


def test_measure_counts_like_telegram() -> None:
    payload = {
        "blocks": [
            {
                "type": "paragraph",
                "text": ["ab", {"type": "url", "text": "c", "url": "https://e.x/long"}],
            },
            {
                "type": "list",
                "items": [
                    {
                        "blocks": [
                            {"type": "blockquote", "blocks": [{"type": "paragraph", "text": "😀"}]}
                        ]
                    },
                    {"blocks": []},
                ],
            },
            {
                "type": "table",
                "cells": [
                    [{"align": "left", "valign": "top", "text": "t", "colspan": 3}],
                    [{"align": "left", "valign": "top"}, {"align": "left", "valign": "top"}],
                ],
            },
            {"type": "photo", "photo": {"type": "photo", "media": "https://e.x/p.jpg"}},
            {"type": "mathematical_expression", "expression": "xy"},
        ]
    }
    # text: "ab" + "c" + "😀"(2) + "t" + "xy" = 8; blocks: paragraph, list, 2 items, quote,
    # paragraph, table, 2 rows, photo, formula = 11; depth: the quoted paragraph is at 3
    assert measure(payload) == RichStats(text_length=8, blocks=11, depth=3, columns=3, media=1)


def test_validate_rich_message_reads_the_wire_form() -> None:
    assert validate_rich_message({"blocks": [{"type": "paragraph", "text": "x"}]}) is None
    assert validate_rich_message({"markdown": "# x"}) is None
    thinking = {"blocks": [{"type": "thinking", "text": "hm"}]}
    assert validate_rich_message(thinking) == RICH_THINKING
    assert validate_rich_message(thinking, draft=True) is None
    assert validate_rich_message({"html": " \n"}) == RICH_EMPTY
    assert (
        validate_rich_message("blocks")
        == "Bad Request: can't parse rich message: expected an Object"
    )
    tg_link = {
        "blocks": [
            {"type": "paragraph", "text": [{"type": "url", "text": "u", "url": "tg://user?id=1"}]}
        ]
    }
    assert validate_rich_message(tg_link) is None
    too_many = {"blocks": [{"type": "divider"}] * (MAX_RICH_BLOCKS + 1)}
    assert validate_rich_message(too_many) == RICH_TOO_MANY_BLOCKS
