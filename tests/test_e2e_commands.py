"""End to end: commands through the fake Bot API and a real Redis. /limits never
promises more than the overall allowance lets through; a press in /model keeps the
whole menu; unknown commands are called that; long arguments are never echoed in full;
admin commands stay out of groups."""

from __future__ import annotations

import asyncio
from pathlib import Path

from redis.asyncio import Redis

from bot.texts import EN, RU
from tests.doubles.telegram import FakeUser, button_labels
from tests.harness import running_bot
from tests.test_e2e_limits import CAPPED

IMAGES = """
[[models]]
id = "painter"
title = "Painter Test"
provider = "openai"
name = "gpt-image-test"
type = "image"

[[models]]
id = "painter2"
title = "Painter Two"
provider = "openai"
name = "gpt-image-two"
type = "image"
"""

ADMIN = 4242


async def limits_of(user: FakeUser) -> str:
    await user.send("/limits")
    return str((await user.next_message())["text"])


async def test_limits_per_model_never_exceed_the_overall_allowance(
    redis_url: str, tmp_path: Path
) -> None:
    async with running_bot(redis_url, tmp_path, daily_limit=5, extra_catalog=CAPPED) as h:
        ann = h.tg.user(first_name="Ann")
        await ann.send("/model dear")
        await ann.next_message()
        await ann.send("one")  # 4 credits of 5
        assert (await ann.next_message())["text"] == "echo: one"
        text = await limits_of(ann)
        assert "Today: 1 of 5 credits left." in text
        assert "Capped Test: 1 credit a request, 1 of 3 requests left" in text
        assert "Dear Test: 4 credits a request, more than you have left today" in text

        await ann.send("/model gpt")
        await ann.next_message()
        await ann.send("two")  # 5 of 5: the allowance is spent
        assert (await ann.next_message())["text"] == "echo: two"
        text = await limits_of(ann)
        assert "Today: 0 of 5 credits left." in text
        assert "Capped Test: 1 credit a request, more than you have left today" in text
        assert "3 of 3" not in text and "requests left" not in text
        assert "GPT Test: 1 credit a request, more than you have left today" in text

        ivan = h.tg.user(first_name="Иван", language_code="ru")
        text = await limits_of(ivan)
        assert "осталось 5 из 5 кредитов" in text
        assert "Capped Test: 1 кредит за запрос, осталось 3 из 3 запросов" in text
        assert "Dear Test: 4 кредита за запрос" in text


async def test_a_press_in_model_keeps_the_whole_menu_and_says_what_changed(
    redis_url: str, tmp_path: Path
) -> None:
    async with running_bot(redis_url, tmp_path, extra_catalog=IMAGES) as h:
        ann = h.tg.user(first_name="Ann")
        await ann.send("/model")
        menu = await ann.next_message()
        assert menu["text"] == (
            "Choose a model. Now: GPT Test\nPictures for /image: Painter Test (🎨 below)"
        )

        mark = h.tg.mark()
        query = await ann.click("Mistral Test")
        answered = await h.tg.wait_callback_answer(query["id"])
        assert answered.params["text"] == "Now talking to Mistral Test."
        await h.tg.wait_for("editMessageText", since=mark, ok=True)
        edited = ann.messages()[-1]
        assert edited["message_id"] == menu["message_id"]
        assert edited["text"] == (
            "Choose a model. Now: Mistral Test\nPictures for /image: Painter Test (🎨 below)"
            "\n\nNow talking to Mistral Test."
        )
        bold = [e for e in edited["entities"] if e["type"] == "bold"]
        assert len(bold) == 2  # the chat model and the image model, as in /model
        assert ["✅ 🎨 Painter Test", "🎨 Painter Two"] in button_labels(edited)

        mark = h.tg.mark()
        await ann.click("🎨 Painter Two")
        await h.tg.wait_for("editMessageText", since=mark, ok=True)
        edited = ann.messages()[-1]
        assert edited["text"] == (
            "Choose a model. Now: Mistral Test\nPictures for /image: Painter Two (🎨 below)"
            "\n\n/image now draws with Painter Two."
        )
        assert h.tg.calls(ok=False) == []


async def test_unknown_commands_are_called_that(redis_url: str, tmp_path: Path) -> None:
    async with running_bot(redis_url, tmp_path) as h:
        ann = h.tg.user(first_name="Ann")
        await ann.send("/foo")
        assert (await ann.next_message())["text"] == (
            "I don't know the command /foo. /help lists what I can do."
        )
        await ann.send("/stats")  # not an admin: a command like any other unknown one
        assert (await ann.next_message())["text"] == EN.unknown_command.format(command="/stats")
        await ann.send("/" + "z" * 4000 + " and more")
        said = (await ann.next_message())["text"]
        assert said == EN.unknown_command.format(command="/" + "z" * 62 + "…")
        ivan = h.tg.user(first_name="Иван", language_code="ru")
        await ivan.send(f"/bar@{h.tg.username} x")
        assert (await ivan.next_message())["text"] == "Я не знаю команды /bar. /help — что я умею."
        assert h.llm_requests() == []


async def test_unknown_commands_in_groups_only_when_addressed(
    redis_url: str, tmp_path: Path
) -> None:
    async with running_bot(redis_url, tmp_path) as h:
        group = h.tg.group()
        ann = h.tg.user(first_name="Ann")
        await ann.send("/foo", chat=group)  # for any bot, or none: not answered
        await ann.send("/foo@some_other_bot", chat=group)  # another bot's
        await ann.send(f"/bar@{h.tg.username}", chat=group)
        reply = await ann.next_message(chat=group)
        assert reply["text"] == EN.unknown_command.format(command="/bar")
        await ann.send("/baz", chat=group, reply_to=reply)  # a reply to the bot
        answer = await ann.next_message(chat=group)
        assert answer["text"] == EN.unknown_command.format(command="/baz")
        await asyncio.sleep(0.2)
        assert len(h.tg.calls("sendMessage", group.id)) == 2


async def test_long_arguments_are_shortened_when_said_back(redis_url: str, tmp_path: Path) -> None:
    async with running_bot(redis_url, tmp_path) as h:
        ann = h.tg.user(first_name="Ann")
        await ann.send("/model " + "x" * 4090)
        said = (await ann.next_message())["text"]
        assert said.startswith(f"There is no model “{'x' * 63}…”. Available: gpt, ")
        assert len(said) < 200
        await ann.send("/language " + "y" * 4090)
        said = (await ann.next_message())["text"]
        assert said == EN.language_unknown.format(code="y" * 63 + "…", codes="en, ru, auto")
        await ann.send("/model gpt")  # nothing changed
        assert (await ann.next_message())["text"] == EN.model_switched.format(model="GPT Test")
        assert h.tg.calls(ok=False) == []


async def wait_for_key(redis_url: str, pattern: str) -> None:
    client = Redis.from_url(redis_url)
    try:
        async with asyncio.timeout(5):
            while not [k async for k in client.scan_iter(pattern)]:
                await asyncio.sleep(0.02)
    finally:
        await client.aclose()


async def test_admin_commands_answer_only_in_private(redis_url: str, tmp_path: Path) -> None:
    async with running_bot(redis_url, tmp_path, admin_ids=frozenset({ADMIN})) as h:
        group = h.tg.group()
        boss = h.tg.user(id=ADMIN, first_name="Boss")
        ann = h.tg.user(first_name="Ann")
        await ann.send("hello")
        assert (await ann.next_message())["text"] == "echo: hello"
        await wait_for_key(redis_url, "stats:*:users")

        for command in ("/stats", "/reload", f"/stats@{h.tg.username}"):
            await boss.send(command, chat=group)
            said = await boss.next_message(chat=group)
            assert said["text"] == EN.admin_private_only
        mark = h.tg.mark()
        await ann.send("/stats", chat=group)  # not an admin, not addressed: nothing
        await ann.send(f"/stats@{h.tg.username}", chat=group)  # not an admin: unknown
        said = await h.tg.wait_for("sendMessage", since=mark, ok=True)
        assert said.params["text"] == EN.unknown_command.format(command="/stats")
        await asyncio.sleep(0.2)
        assert len(h.tg.calls("sendMessage", group.id)) == 4
        assert all(m["text"] != "echo: hello" for m in group.messages())

        await boss.send("/stats")
        stats = (await boss.next_message())["text"]
        lines = stats.splitlines()
        assert lines[0].endswith(": 1 user")
        assert "• GPT Test: 1 request" in lines
        ivan = h.tg.user(id=ADMIN, first_name="Boss", language_code="ru")
        await ivan.send("/stats")
        stats = (await ivan.next_message())["text"]
        assert stats.splitlines()[0].endswith(": 1 пользователь")
        assert "• GPT Test: 1 запрос" in stats.splitlines()
        assert RU.admin_private_only != EN.admin_private_only
