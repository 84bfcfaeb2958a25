"""End to end: /language, the language the bot speaks to a user whatever their Telegram
app's is, stored with their preferences in Redis."""

from __future__ import annotations

from pathlib import Path

from bot.texts import EN, RU
from tests.doubles.base import Reply
from tests.doubles.telegram import button_labels
from tests.harness import running_bot


async def test_a_chosen_language_is_spoken_everywhere_until_auto(
    redis_url: str, tmp_path: Path
) -> None:
    async with running_bot(redis_url, tmp_path) as h:
        ann = h.tg.user(first_name="Ann", language_code="en")
        await ann.send("/language ru")
        assert (await ann.next_message())["text"] == RU.language_set
        await ann.send("/new")  # a command
        assert (await ann.next_message())["text"] == RU.new_done
        h.openai.queue.append(Reply(status=401, error="bad key"))
        await ann.send("hello?")  # a chat turn, which reads the choice with its prefs
        failed = await ann.next_message(timeout=10)
        assert failed["text"] == RU.error_auth.format(model="GPT Test")
        assert await h.app.redis.hget(f"prefs:{{{ann.id}}}", "lang") == b"ru"

        await ann.send("/language auto")
        assert (await ann.next_message())["text"] == EN.language_auto_set.format(language="English")
        await ann.send("/new")
        assert (await ann.next_message())["text"] == EN.new_done
        assert await h.app.redis.hget(f"prefs:{{{ann.id}}}", "lang") is None


async def test_the_language_keyboard_marks_the_choice_and_switches(
    redis_url: str, tmp_path: Path
) -> None:
    async with running_bot(redis_url, tmp_path) as h:
        ivan = h.tg.user(first_name="Иван", language_code="ru")
        await ivan.send("/language")
        menu = await ivan.next_message()
        assert menu["text"] == "Выберите язык, на котором я говорю. Сейчас: русский"
        assert button_labels(menu) == [["English", "Русский"], ["✅ 🌐 Как в Telegram"]]

        query = await ivan.click("English")
        assert (await h.tg.wait_callback_answer(query["id"])).params["text"] == EN.language_set
        await h.tg.wait_for("editMessageText")
        edited = ivan.messages()[-1]
        assert edited["text"] == "Choose the language I speak. Now: English"
        assert button_labels(edited) == [["✅ English", "Русский"], ["🌐 As in Telegram"]]

        await ivan.send("/help")
        assert (await ivan.next_message())["text"].startswith("I put several language models")
        menus = {c.params.get("language_code"): c.params for c in h.tg.calls("setMyCommands")}
        assert set(menus) == {None, "ru"}
        assert all("language" in str(params["commands"]) for params in menus.values())


async def test_an_unknown_language_lists_the_known_ones_and_changes_nothing(
    redis_url: str, tmp_path: Path
) -> None:
    async with running_bot(redis_url, tmp_path) as h:
        ann = h.tg.user(first_name="Ann")
        await ann.send("/language de")
        said = (await ann.next_message())["text"]
        assert said == EN.language_unknown.format(code="de", codes="en, ru, auto")
        await ann.send("/new")
        assert (await ann.next_message())["text"] == EN.new_done
        assert await h.app.redis.hget(f"prefs:{{{ann.id}}}", "lang") is None
