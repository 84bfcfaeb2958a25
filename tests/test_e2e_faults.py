"""End to end: every fault a provider or Telegram can throw at the bot, through the real
app, the fake Bot API, the model doubles and a real Redis.

A provider fault gets the user one short sentence in their language (never a traceback,
an exception name, an HTTP status, the upstream body or a key) with a Retry button; the
allowance is given back when no text reached the user, and a partial answer is kept and
marked as interrupted. Telegram's 429s and 5xx are waited out and retried, a deleted
streaming message is replaced by a new one, a user who blocked the bot costs nothing
but their own answer, and no update, however bad, stops the dispatcher.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from bot.texts import EN, RU, Texts
from tests.doubles.base import Reply
from tests.doubles.telegram import DEFAULT_TOKEN, FakeUser, button_labels
from tests.harness import KEYS, running_bot

pytestmark = pytest.mark.asyncio

DAILY = 10
UPSTREAM = "Traceback (most recent call last): KeyError upstream-body-7731"
# What a fault message must never show a person.
LEAKS = (
    "Traceback",
    "Error",
    "Exception",
    "HTTP",
    "http",
    "7731",
    "upstream",
    "500",
    "503",
    "429",
    "401",
    "404",
    "{",
    DEFAULT_TOKEN,
    *KEYS.values(),
)
SLACK = 0.05


def asked(double: Any) -> list[list[str]]:
    """The message contents of every chat request a model double received."""
    return [
        [m["content"] for m in r.json["messages"]]
        for r in double.requests
        if r.method == "POST" and r.json
    ]


def check_sentence(text: str, expected: str) -> None:
    """The one short, clean sentence a fault gets."""
    assert text == expected, text
    assert "\n" not in text and len(text) < 160, text
    for leak in LEAKS:
        assert leak not in text, (leak, text)


async def credits_left(user: FakeUser) -> int:
    await user.send("/limits")
    text = (await user.next_message())["text"]
    found = re.search(r"(\d+) of (\d+) credits left", text) or re.search(
        r"осталось (\d+) из (\d+) кредитов", text
    )
    assert found is not None and int(found.group(2)) == DAILY, text
    return int(found.group(1))


async def ask(user: FakeUser, text: str) -> dict[str, Any]:
    await user.send(text)
    return await user.next_message(timeout=10)


async def fault_is_explained_and_free(
    user: FakeUser,
    double: Any,
    texts: Texts,
    expected: str,
    *,
    attempts: int,
    question: str,
    left: int,
) -> None:
    """One question that fails before any text: the sentence, the Retry button, the number
    of upstream attempts, and the allowance as it was (``left`` credits)."""
    before = len(asked(double))
    answer = await ask(user, question)
    check_sentence(answer["text"], expected)
    assert button_labels(answer) == [[texts.retry_button]]
    assert [sent[-1] for sent in asked(double)[before:]] == [question] * attempts
    assert await credits_left(user) == left


@pytest.mark.parametrize("model_id", ["gpt", "mistral", "llama"])
async def test_every_provider_fault_is_one_sentence_and_refunded(
    redis_url: str, tmp_path: Path, model_id: str
) -> None:
    async with running_bot(redis_url, tmp_path, daily_limit=DAILY, timeout=0.5) as h:
        model = h.catalog.models[model_id]
        double, name, title = h.llm(model_id), model.name, model.title
        ann = h.tg.user(first_name="Ann")
        await ann.send(f"/model {model_id}")
        await ann.next_message()
        unavailable = EN.error_unavailable.format(model=title)

        # 500 and 503: retried once (the catalog's max_retries), then explained
        for status in (500, 503):
            double.queue.extend([Reply(status=status, error=UPSTREAM)] * 2)
            await fault_is_explained_and_free(
                ann, double, EN, unavailable, attempts=2, question=f"q{status}", left=DAILY
            )

        # 429 asking for longer than the adapter waits: not retried, "busy"
        double.queue.append(Reply(status=429, retry_after=30, error=UPSTREAM))
        busy = EN.error_rate_limited.format(model=title)
        await fault_is_explained_and_free(
            ann, double, EN, busy, attempts=1, question="busy?", left=DAILY
        )

        # 429 asking for a short wait: waited out, retried, answered and counted
        double.queue.extend([Reply(status=429, retry_after=0.3, error=UPSTREAM), Reply()])
        before = len(double.requests)
        answer = await ask(ann, "patience")
        assert answer["text"] == "echo: patience"
        assert "reply_markup" not in answer
        requests = [r for r in double.requests[before:] if r.method == "POST"]
        assert len(requests) == 2
        assert requests[1].time - requests[0].time >= 0.3 - SLACK
        assert await credits_left(ann) == DAILY - 1

        # a model that never answers: the catalog's timeout (0.5 s here) ends it
        double.queue.append(Reply(hang=True))
        timeout = EN.error_timeout.format(model=title)
        await fault_is_explained_and_free(
            ann, double, EN, timeout, attempts=1, question="hello?", left=DAILY - 1
        )

        # a body that is not the API's JSON (retried: a broken proxy is transient)
        double.replies[name] = Reply(malformed=True)
        await fault_is_explained_and_free(
            ann, double, EN, unavailable, attempts=2, question="garbled", left=DAILY - 1
        )
        del double.replies[name]

        # a key the provider does not accept (rotated on the provider's side)
        key, double.key = double.key, "rotated-key-the-bot-does-not-have"
        refused = EN.error_auth.format(model=title)
        await fault_is_explained_and_free(
            ann, double, EN, refused, attempts=1, question="who am I?", left=DAILY - 1
        )
        double.key = key

        # a model the provider does not know (any more)
        double.known_models = {"some-other-model"}
        missing = EN.error_not_found.format(model=title)
        await fault_is_explained_and_free(
            ann, double, EN, missing, attempts=1, question="anyone?", left=DAILY - 1
        )
        double.known_models = None

        # the stream cut midway: the text so far stays, marked interrupted, and counts
        double.queue.append(
            Reply(text="one two three four five six", cut_after=3, chunk_delay=0.05)
        )
        answer = await ask(ann, "count")
        text = answer["text"]
        note = EN.interrupted.format(reason=unavailable)
        assert text == f"one two three\n\n{note}", text
        italic = [e for e in answer["entities"] if e["type"] == "italic"]
        assert [text[e["offset"] : e["offset"] + e["length"]] for e in italic] == [note]
        for leak in LEAKS:
            assert leak not in note, leak
        assert button_labels(answer) == [[EN.retry_button]]
        assert await credits_left(ann) == DAILY - 2

        # nothing that failed entered the history: only the one good exchange is sent
        answer = await ask(ann, "still there?")
        assert answer["text"] == "echo: still there?"
        assert asked(double)[-1] == ["patience", "echo: patience", "still there?"]
        assert await credits_left(ann) == DAILY - 3
        assert h.tg.calls(ok=False) == []


async def test_a_russian_user_gets_faults_in_russian(redis_url: str, tmp_path: Path) -> None:
    async with running_bot(redis_url, tmp_path, daily_limit=DAILY, timeout=0.5) as h:
        ivan = h.tg.user(first_name="Иван", language_code="ru")
        await ivan.send("/model mistral")
        await ivan.next_message()
        title = h.catalog.models["mistral"].title

        h.mistral.queue.append(Reply(status=429, retry_after=30, error=UPSTREAM))
        busy = RU.error_rate_limited.format(model=title)
        await fault_is_explained_and_free(
            ivan, h.mistral, RU, busy, attempts=1, question="занята?", left=DAILY
        )
        h.mistral.queue.append(Reply(hang=True))
        timeout = RU.error_timeout.format(model=title)
        await fault_is_explained_and_free(
            ivan, h.mistral, RU, timeout, attempts=1, question="алло?", left=DAILY
        )
        key, h.mistral.key = h.mistral.key, "someone-elses-key"
        refused = RU.error_auth.format(model=title)
        await fault_is_explained_and_free(
            ivan, h.mistral, RU, refused, attempts=1, question="кто я?", left=DAILY
        )
        h.mistral.key = key

        h.mistral.queue.append(Reply(text="раз два три четыре", cut_after=2, chunk_delay=0.05))
        text = (await ask(ivan, "считай"))["text"]
        reason = RU.error_unavailable.format(model=title)
        assert text == f"раз два\n\n{RU.interrupted.format(reason=reason)}", text
        assert await credits_left(ivan) == DAILY - 1


# --- Telegram's side ------------------------------------------------------------------


async def test_telegram_429_and_502_on_the_answer_are_waited_out_and_retried(
    redis_url: str, tmp_path: Path
) -> None:
    async with running_bot(redis_url, tmp_path) as h:
        ann = h.tg.user(first_name="Ann")

        h.tg.fail_next("sendMessage", 429, retry_after=1)
        answer = await ask(ann, "flooded")
        assert answer["text"] == "echo: flooded"
        sends = h.tg.calls("sendMessage", ann.id)
        assert [c.status for c in sends] == [429, 200]
        assert sends[1].time - sends[0].time >= 1.0 - SLACK
        assert sends[0].params["text"] == sends[1].params["text"]

        h.tg.fail_next("sendMessage", 502, times=2)
        answer = await ask(ann, "bad gateway")
        assert answer["text"] == "echo: bad gateway"
        sends = h.tg.calls("sendMessage", ann.id)[2:]
        assert [c.status for c in sends] == [502, 502, 200]
        assert {c.params["text"] for c in sends} == {"echo: bad gateway"}
        assert sends[1].time > sends[0].time and sends[2].time > sends[1].time
        assert [m["text"] for m in ann.bot_messages()] == ["echo: flooded", "echo: bad gateway"]

        # both answers were recorded: the conversation goes on
        await ask(ann, "and now?")
        assert asked(h.openai)[-1] == [
            "flooded",
            "echo: flooded",
            "bad gateway",
            "echo: bad gateway",
            "and now?",
        ]


async def test_a_deleted_streaming_message_in_a_group_is_replaced_by_a_new_one(
    redis_url: str, tmp_path: Path
) -> None:
    async with running_bot(redis_url, tmp_path) as h:
        group = h.tg.group()
        ann = h.tg.user(first_name="Ann")
        h.openai.replies["gpt-test"] = Reply(text="the whole answer", first_delay=1.0)
        question = await ann.send(f"@{h.tg.username} a question", chat=group)
        placeholder = await h.tg.wait_for("sendMessage", ok=True)
        assert placeholder.chat_id == group.id and placeholder.text == EN.thinking
        # someone deletes the bot's message while the answer is being written: Telegram
        # then answers every edit of it with "message to edit not found"
        del h.tg.chats[group.id].messages[placeholder.result["message_id"]]
        h.tg.fail_next("editMessageText", 400, "Bad Request: message to edit not found")

        answer = await ann.wait_message(
            lambda m: m["text"] == "the whole answer", chat=group, timeout=10
        )
        assert answer["reply_to_message"]["message_id"] == question["message_id"]
        assert [m["message_id"] for m in ann.bot_messages(chat=group)] == [answer["message_id"]]
        edits = h.tg.calls("editMessageText", group.id)
        assert edits and edits[-1].params["text"] == "the whole answer"
        assert {(e.status, e.description) for e in edits} == {
            (400, "Bad Request: message to edit not found")
        }
        assert [c.status for c in h.tg.calls("sendMessage", group.id)] == [200, 200]

        # the answer counted as delivered: it is in the history
        del h.openai.replies["gpt-test"]
        await ann.send(f"@{h.tg.username} next", chat=group)
        await ann.wait_message(lambda m: m["text"] == "echo: next", chat=group, timeout=10)
        assert asked(h.openai)[-1] == ["a question", "the whole answer", "next"]


async def test_one_bad_update_never_stops_the_dispatcher(redis_url: str, tmp_path: Path) -> None:
    async with running_bot(redis_url, tmp_path) as h:
        ann, bob = h.tg.user(first_name="Ann"), h.tg.user(first_name="Bob")
        # a handler that raises: Telegram refuses the reply to /stop
        h.tg.fail_next("sendMessage", 400, "Bad Request: chat not found")
        await ann.send("/stop")
        await h.tg.wait_for("sendMessage", ok=False)
        await ann.send("hello")
        assert (await ann.next_message(timeout=10))["text"] == "echo: hello"
        assert [c.status for c in h.tg.calls("sendMessage", ann.id)] == [400, 200]

        # garbage from the model: an emoji's two UTF-16 halves in separate pieces (JSON
        # escapes a proxy split), which no encoder accepts one by one
        h.openai.queue.append(Reply(chunks=["odd ", "\ud83d", "\ude00", " text"]))
        await bob.send("/model mistral")  # Bob's answers come from another double
        await bob.next_message()
        await ann.send("say something odd")
        await bob.send("hi from Bob")
        assert (await bob.next_message(timeout=10))["text"] == "echo: hi from Bob"
        assert (await ann.next_message(timeout=10))["text"] == "odd 😀 text"
        # the same user is answered next, with that exchange as the context
        assert (await ask(ann, "and now?"))["text"] == "echo: and now?"
        assert asked(h.openai)[-1] == [
            "hello",
            "echo: hello",
            "say something odd",
            "odd 😀 text",
            "and now?",
        ]
