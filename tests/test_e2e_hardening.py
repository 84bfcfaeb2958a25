"""End to end: the attacks a hostile user (or a hostile model answer) tried on the bot,
each replayed through the real app, the fake Bot API, the model doubles and a real Redis,
and what the bot does now instead.

- what a request costs: only a provider's failure before billable work is given back;
- forged "👍 Best" votes, Retry presses from another chat, Stop on another chat's draft;
- a lock freed by /stop belongs to the answer that takes it next;
- Redis going away mid-answer;
- oversized input: a /compare question, a photo whose size is missing or lies;
- a final edit Telegram refuses, answers too long (or too hostile) for ten messages, and
  other users served while one of those is rendered.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from bot.services.history import History
from bot.services.media import MAX_DOWNLOAD
from bot.services.notices import prompt_too_long
from bot.texts import EN
from tests import support
from tests.conftest import keys_without_expiry
from tests.doubles.base import Reply
from tests.doubles.telegram import FakeUser, button_labels
from tests.harness import Harness, running_bot
from tests.redis_server import RedisServer
from tests.support import long_script

pytestmark = pytest.mark.asyncio

DAILY = 20

MEDIA = """
[[models]]
id = "painter"
title = "Painter Test"
provider = "openai"
name = "gpt-image-test"
type = "image"
cost = 5

[[models]]
id = "ears"
title = "Ears Test"
provider = "openai"
name = "whisper-test"
type = "transcription"
cost = 2

[[models]]
id = "seer"
title = "Seer Test"
provider = "openai"
name = "gpt-vision-test"
vision = true
"""


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait until ``condition`` holds (it reads a double's state)."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def until_redis(url: str, condition: Callable[[Redis], Any], timeout: float = 15.0) -> None:
    """Wait until ``await condition(client)`` is true, for a client of the test Redis."""
    client = Redis.from_url(url)
    try:
        async with asyncio.timeout(timeout):
            while not await condition(client):
                await asyncio.sleep(0.05)
    finally:
        await client.aclose()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def with_button(label: str) -> Callable[[dict[str, Any]], bool]:
    """A message whose buttons include ``label``."""
    return lambda message: label in str(button_labels(message))


async def compared(user: FakeUser, *titles: str) -> dict[str, dict[str, Any]]:
    """Each model's finished /compare answer (its "Continue with" button marks it)."""
    return {
        title: await user.wait_message(with_button(f"Continue with {title}"), timeout=10)
        for title in titles
    }


def asked(double: Any) -> list[list[str]]:
    """The message contents of every chat request a model double received."""
    return [
        [m["content"] for m in r.json["messages"]]
        for r in double.requests
        if r.method == "POST" and r.json and "messages" in r.json
    ]


async def credits_left(user: FakeUser) -> int:
    return await support.credits_left(user, DAILY)


async def first_text_shown(h: Harness, chat_id: int, since: int = 0) -> str:
    """The first streamed text the chat showed (a draft, or an edit in groups)."""
    private = chat_id > 0
    call = await h.tg.wait_for(
        "sendMessageDraft" if private else "editMessageText",
        lambda c: c.chat_id == chat_id and bool(c.text),
        timeout=10,
        since=since,
        ok=True,
    )
    assert call.text is not None
    return call.text


def callback_data(message: dict[str, Any], prefix: str) -> str:
    """The callback data of the message's button whose data starts with ``prefix``."""
    rows = (message.get("reply_markup") or {}).get("inline_keyboard", [])
    found = [b["callback_data"] for row in rows for b in row if "callback_data" in b]
    matching = [data for data in found if data.startswith(prefix)]
    assert len(matching) == 1, found
    return str(matching[0])


async def redis_keys(url: str) -> dict[str, Any]:
    """Every key in the test Redis with its value (hashes, sorted sets and strings)."""
    client = Redis.from_url(url)
    try:
        found: dict[str, Any] = {}
        async for raw in client.scan_iter(count=1000):
            kind = _text(await client.type(raw))
            value: Any = None
            if kind == "hash":
                value = await client.hgetall(raw)
            elif kind == "zset":
                value = await client.zrange(raw, 0, -1, withscores=True)
            elif kind == "string":
                value = await client.get(raw)
            found[raw.decode()] = (kind, value)
        return found
    finally:
        await client.aclose()


async def unlocked(client: Redis) -> bool:
    """Whether no chat is locked (every answer has recorded its outcome)."""
    return not [key async for key in client.scan_iter("busy:*")]


async def delivered_and_recorded(
    h: Harness, user: FakeUser, since: int, timeout: float = 60
) -> None:
    """Wait until the user's answer (from ``since``) was delivered and its chat freed."""

    def delivered() -> bool:
        return any(
            c.chat_id == user.id and c.method in ("sendMessage", "sendDocument")
            for c in h.tg.api_calls[since:]
        )

    await until(delivered, timeout)
    await until_redis(h.settings.redis_url.get_secret_value(), unlocked, timeout)


# --- the refund rule ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "reply",
    [Reply(text=""), Reply(chunks=["  ", "\n\n", " \t "])],
    ids=["empty", "whitespace"],
)
async def test_an_empty_or_blank_answer_counts(
    redis_url: str, tmp_path: Path, reply: Reply
) -> None:
    """The provider answered (with nothing worth showing): it did the work, it counts."""
    async with running_bot(redis_url, tmp_path, daily_limit=DAILY) as h:
        ann = h.tg.user(first_name="Ann")
        h.openai.queue.append(reply)
        await ann.send("say nothing")
        answer = await ann.next_message(timeout=10)
        assert answer["text"] == EN.empty_answer.format(model="GPT Test")
        assert asked(h.openai) == [["say nothing"]]
        assert await credits_left(ann) == DAILY - 1
        # nor is the empty answer part of the conversation
        await ann.send("and now?")
        assert (await ann.next_message(timeout=10))["text"] == "echo: and now?"
        assert asked(h.openai)[-1] == ["and now?"]
        assert await credits_left(ann) == DAILY - 2


@pytest.mark.parametrize(
    ("replies", "attempts"),
    [
        ([Reply(status=503), Reply(status=503)], 2),  # retried once, then given up
        # an error event before any text: retried like a 5xx (the stream had not begun)
        ([Reply(text="never shown", error_after=0)] * 2, 2),
    ],
    ids=["http-503", "stream-error-before-text"],
)
async def test_a_provider_failure_before_the_first_text_is_refunded(
    redis_url: str, tmp_path: Path, replies: list[Reply], attempts: int
) -> None:
    async with running_bot(redis_url, tmp_path, daily_limit=DAILY) as h:
        ann = h.tg.user(first_name="Ann")
        h.openai.queue.extend(replies)
        await ann.send("are you there?")
        failed = await ann.next_message(timeout=10)
        assert failed["text"] == EN.error_unavailable.format(model="GPT Test")
        assert button_labels(failed) == [[EN.retry_button]]
        assert asked(h.openai) == [["are you there?"]] * attempts
        assert await credits_left(ann) == DAILY


async def test_a_silent_voice_message_counts_its_transcription(
    redis_url: str, tmp_path: Path
) -> None:
    async with running_bot(redis_url, tmp_path, daily_limit=DAILY, extra_catalog=MEDIA) as h:
        ann = h.tg.user(first_name="Ann")
        h.openai.replies["whisper-test"] = Reply(text="")  # the model heard nothing
        await ann.send_voice(b"OggS-silence", duration=3)
        assert (await ann.next_message(timeout=10))["text"] == EN.voice_empty
        assert len(h.openai.uploads) == 1
        assert h.openai.calls("/chat/completions") == []  # nothing to answer
        assert len(h.llm_requests()) == 1
        assert await credits_left(ann) == DAILY - 2  # the transcription model's cost


@pytest.mark.parametrize("where", ["private", "group"])
async def test_a_picture_telegram_refuses_still_counts(
    redis_url: str, tmp_path: Path, where: str
) -> None:
    """The provider drew it; Telegram would not take it (a group that forbids photos):
    the user is told, and the request counts."""
    async with running_bot(redis_url, tmp_path, daily_limit=DAILY, extra_catalog=MEDIA) as h:
        ann = h.tg.user(first_name="Ann")
        group = h.tg.group()
        chat = ann.id if where == "private" else group.id
        h.tg.fail_next(
            "sendPhoto",
            400,
            "Bad Request: not enough rights to send photos to the chat",
            when=lambda params: int(params["chat_id"]) == chat,
        )
        command = "/image" if where == "private" else f"/image@{h.tg.username}"
        await ann.send(f"{command} a fox in the snow", chat=chat)
        refused = await h.tg.wait_for("sendPhoto", lambda c: c.chat_id == chat)
        assert refused.status == 400
        told = await h.tg.next_bot_message(chat, timeout=10, reader=ann.id)
        assert told["text"] == EN.error_generic.format(model="Painter Test")
        assert len(h.openai.calls("/images/generations")) == 1
        assert h.llm_requests() == h.openai.calls("/images/generations")
        assert await credits_left(ann) == DAILY - 5  # the picture model's cost


# --- forged votes ------------------------------------------------------------------------


async def test_forged_votes_are_refused_and_leave_no_trace(redis_url: str, tmp_path: Path) -> None:
    async with running_bot(redis_url, tmp_path, extra_catalog=MEDIA) as h:
        ann, bob = h.tg.user(first_name="Ann"), h.tg.user(first_name="Bob")
        h.mistral.replies["mistral-test"] = Reply(status=500)  # no answer from Mistral
        await ann.send("/compare which is best?")
        gpt = (await compared(ann, "GPT Test", "Llama Test"))["GPT Test"]
        await ann.wait_message(
            lambda m: (
                m["text"].startswith("Mistral Test\n") and EN.retry_button in str(button_labels(m))
            ),
            timeout=10,
        )
        vote = callback_data(gpt, "cv:")
        _, cid, model = vote.split(":")
        assert model == "gpt" and cid
        await bob.send("/top")
        assert (await bob.next_message())["text"] == EN.top_empty
        await until_redis(redis_url, unlocked)  # the comparison has recorded everything
        before = await redis_keys(redis_url)

        forged = [
            (ann, "cv::gpt"),  # no comparison named
            (ann, "cv:00000000:gpt"),  # a comparison that never was
            (ann, f"cv:{cid}:local"),  # a model that was not in it
            (ann, f"cv:{cid}:painter"),  # an image model
            (ann, f"cv:{cid}:mistral"),  # in it, but without an answer
            (ann, f"cv:{cid}:no-such-model"),
            (bob, f"cv:{cid}:gpt"),  # Ann's comparison, Bob's vote
        ]
        for user, data in forged:
            query = await user.press_data(data)
            answer = await h.tg.wait_callback_answer(query["id"])
            assert answer.params.get("text") == EN.compare_expired, data
            assert str(answer.params.get("show_alert")).lower() == "true", data
        assert await redis_keys(redis_url) == before  # no key made, none changed
        await bob.send("/top")
        assert (await bob.next_message())["text"] == EN.top_empty

        # the real vote counts, once
        query = await ann.click(EN.compare_best, message_id=gpt["message_id"])
        answer = await h.tg.wait_callback_answer(query["id"])
        assert answer.params.get("text") == EN.vote_counted.format(model="GPT Test")
        query = await ann.click(EN.compare_best, message_id=gpt["message_id"])
        answer = await h.tg.wait_callback_answer(query["id"])
        assert answer.params.get("text") == EN.vote_already
        query = await ann.press_data(f"cv:{cid}:llama")  # another model of the same one
        answer = await h.tg.wait_callback_answer(query["id"])
        assert answer.params.get("text") == EN.vote_already
        await bob.send("/top")
        top = (await bob.next_message())["text"]
        assert re.search(r"1\. GPT Test: 1 vote\b", top), top
        assert "Llama" not in top


# --- locks belong to their owner -----------------------------------------------------------


@pytest.mark.parametrize("stop_with", ["button", "command"])
async def test_a_lock_freed_by_stop_belongs_to_the_answer_that_took_it(
    redis_url: str, tmp_path: Path, stop_with: str
) -> None:
    """/stop frees the chat and a new message takes it at once: the stopped answer,
    recording its outcome afterwards, must leave the new answer's lock alone."""
    async with running_bot(redis_url, tmp_path) as h:
        group = h.tg.group()
        ann = h.tg.user(first_name="Ann")
        bot = f"@{h.tg.username}"
        first, second = long_script(150, "a"), long_script(150, "b")
        h.openai.queue.extend(
            [Reply(chunks=first, chunk_delay=0.1), Reply(chunks=second, chunk_delay=0.1)]
        )
        await ann.send(f"{bot} the first story", chat=group)
        await first_text_shown(h, group.id)
        # the first answer's final (stopped) edit takes a while: the second answer has
        # long taken the chat by the time the first records its outcome
        h.tg.delay_next("editMessageText", 2.0, when=lambda p: EN.stopped in str(p.get("text")))
        mark = h.tg.mark()
        await ann.send(f"/stop@{h.tg.username}", chat=group)
        await ann.send(f"{bot} the second story", chat=group)

        placeholder = await h.tg.wait_for(
            "sendMessage",
            lambda c: c.chat_id == group.id and c.text == EN.thinking,
            timeout=10,
            since=mark,
            ok=True,
        )
        second_id = placeholder.result["message_id"]
        await h.tg.wait_for(  # the second answer streams
            "editMessageText",
            lambda c: c.chat_id == group.id and (c.text or "").startswith("b00"),
            timeout=10,
            since=mark,
            ok=True,
        )
        stopped = await ann.wait_message(
            lambda m: m["text"].startswith("a00") and EN.stopped in m["text"],
            chat=group,
            timeout=10,
        )
        assert button_labels(stopped) == [[EN.retry_button]]

        async def recorded(client: Redis) -> bool:  # the stopped answer kept its Retry
            return bool([key async for key in client.scan_iter("retry:*")])

        await until_redis(redis_url, recorded)

        # the chat is still the second answer's: a third message waits, then is told so
        await ann.send(f"{bot} a third one", chat=group)
        await ann.wait_message(lambda m: m["text"] == EN.still_answering, chat=group, timeout=10)
        assert not second.done
        assert len(asked(h.openai)) == 2

        if stop_with == "button":
            query = await ann.click(EN.stop_button, chat=group, message_id=second_id)
            answered = await h.tg.wait_callback_answer(query["id"])
            assert answered.ok and answered.params.get("text") is None  # not "nothing to stop"
        else:
            await ann.send(f"/stop@{h.tg.username}", chat=group)
        final = await ann.wait_message(
            lambda m: m["message_id"] == second_id and EN.stopped in m["text"],
            chat=group,
            timeout=10,
        )
        assert final["text"].startswith("b00")
        await until(lambda: second.done)
        assert second.taken < len(second), second.taken
        assert EN.nothing_to_stop not in [m["text"] for m in ann.bot_messages(chat=group)]

        # and then the chat is free
        await ann.send(f"{bot} a fourth one", chat=group)
        await ann.wait_message(lambda m: m["text"] == "echo: a fourth one", chat=group)
        assert asked(h.openai) == [["the first story"], ["the second story"], ["a fourth one"]]


async def test_a_draft_stop_forged_in_another_chat_stops_nothing(
    redis_url: str, tmp_path: Path
) -> None:
    async with running_bot(redis_url, tmp_path) as h:
        ann, bob = h.tg.user(first_name="Ann"), h.tg.user(first_name="Bob")
        script = long_script(30)
        h.openai.queue.append(Reply(chunks=script, chunk_delay=0.1))
        await ann.send("tell me a story")
        await first_text_shown(h, ann.id)
        draft = ann.draft()
        assert draft is not None and draft.get("can_stop")
        draft_id = int(draft["draft_id"])
        # Ann's draft id, claimed as stopped in Bob's chat; and a wrong id in Ann's chat
        h.tg.forge_stop_generation(bob.id, draft_id)
        h.tg.forge_stop_generation(ann.id, draft_id - 1 if draft_id > 1 else 2)

        final = await ann.next_message(timeout=15)
        assert final["text"] == script.text.rstrip()
        assert script.taken == len(script)
        assert bob.bot_messages() == []
        # the real Stop still works on the next answer
        h.openai.queue.append(Reply(chunks=long_script(30), chunk_delay=0.1))
        mark = h.tg.mark()
        await ann.send("another one")
        await first_text_shown(h, ann.id, since=mark)
        await ann.press_stop()
        assert (await ann.next_message(timeout=10))["text"].endswith(EN.stopped)


# --- Redis away mid-answer --------------------------------------------------------------


async def test_redis_down_mid_answer_delivers_it_and_records_it_once_back(
    redis_url: str, redis_server: RedisServer, tmp_path: Path
) -> None:
    async with running_bot(redis_url, tmp_path) as h:
        ann = h.tg.user(first_name="Ann")
        script = long_script(12)
        h.openai.queue.append(Reply(chunks=script, chunk_delay=0.1))
        await ann.send("first")
        await first_text_shown(h, ann.id)
        try:
            await asyncio.to_thread(redis_server.stop)
            stopped_at = time.monotonic()
            # the answer ends while Redis is away: it is delivered all the same
            final = await ann.next_message(timeout=10)
            assert final["text"] == script.text.rstrip()
            # and Redis stays away a while longer: the first try to record it fails
            await asyncio.sleep(max(0.0, stopped_at + 2.0 - time.monotonic()))
        finally:
            await asyncio.to_thread(redis_server.start)
        assert time.monotonic() - stopped_at < 10  # the outage was a short one

        # Redis restarted empty; the bot recorded the exchange once it was back
        history = History.key(ann.id, ann.id)

        async def kept(client: Redis) -> bool:
            return bool(await client.exists(history))

        await until_redis(redis_url, kept)
        await ann.send("next")
        assert (await ann.next_message(timeout=10))["text"] == "echo: next"
        assert asked(h.openai)[-1] == ["first", script.text, "next"]
        assert EN.still_answering not in [m["text"] for m in ann.bot_messages()]


# --- Retry from another chat --------------------------------------------------------------


async def test_a_retry_pressed_in_another_chat_is_too_old(redis_url: str, tmp_path: Path) -> None:
    async with running_bot(redis_url, tmp_path) as h:
        ann, bob = h.tg.user(first_name="Ann"), h.tg.user(first_name="Bob")
        group = h.tg.group()
        h.openai.queue.extend([Reply(status=503), Reply(status=503)])
        await ann.send("what failed?")
        failed = await ann.next_message(timeout=10)
        retry = callback_data(failed, "rt:")
        # a bot message in a group, answering Ann (so the button would be hers there)
        await ann.send(f"@{h.tg.username} hello group", chat=group)
        await ann.wait_message(lambda m: m["text"] == "echo: hello group", chat=group)
        await bob.send("/top")
        await bob.next_message()
        requests = len(h.llm_requests())
        sent = len(h.tg.calls("sendMessage"))

        for user, chat in ((ann, group.id), (bob, bob.id)):
            query = await user.press_data(retry, chat=chat)
            answer = await h.tg.wait_callback_answer(query["id"])
            assert answer.params.get("text") == EN.retry_expired
            assert str(answer.params.get("show_alert")).lower() == "true"
        await asyncio.sleep(0.5)  # anything it would have started would show by now
        assert len(h.llm_requests()) == requests
        assert len(h.tg.calls("sendMessage")) == sent
        assert h.tg.calls("sendMessageDraft", group.id) == []
        assert button_labels(ann.bot_messages()[-1]) == [[EN.retry_button]]  # not touched


# --- input bounds ----------------------------------------------------------------------


async def test_a_compare_question_over_the_maximum_is_refused(
    redis_url: str, tmp_path: Path
) -> None:
    async with running_bot(redis_url, tmp_path, daily_limit=DAILY, max_prompt_chars=100) as h:
        ann = h.tg.user(first_name="Ann")
        await ann.send("/compare " + "x" * 101)
        refused = await ann.next_message()
        assert refused["text"] == prompt_too_long(EN, 101, 100)
        assert h.llm_requests() == []
        assert await credits_left(ann) == DAILY
        # the chat was given back, and a question within bounds is asked
        await ann.send("/compare " + "y" * 100)
        await compared(ann, "GPT Test", "Mistral Test", "Llama Test")
        assert [r[-1] for r in asked(h.openai) + asked(h.mistral) + asked(h.llama)] == [
            "y" * 100
        ] * 3


@pytest.mark.parametrize("stated", [None, 1000], ids=["size-missing", "size-lies"])
async def test_a_photo_over_the_download_cap_is_not_read_whole(
    redis_url: str, tmp_path: Path, stated: int | None
) -> None:
    async with running_bot(redis_url, tmp_path, daily_limit=DAILY, extra_catalog=MEDIA) as h:
        ann = h.tg.user(first_name="Ann")
        await ann.send("/model seer")
        await ann.next_message()
        size = 64 * 2**20
        stored = h.tg.files[h.tg.add_file(b"\xff\xd8\xff" + bytes(size - 3), kind="photos")]
        stored.file_path += ".jpg"
        stored.stated_size = stated  # what getFile says
        ids = {"file_id": stored.file_id, "file_unique_id": stored.file_unique_id}
        sizes = [{**ids, "width": w, "height": w} for w in (90, 1280)]
        if stated is not None:
            sizes = [{**s, "file_size": stated} for s in sizes]
        h.tg.deliver_message(ann.info, ann.id, {"photo": sizes, "caption": "what is it?"})

        assert (await ann.next_message(timeout=20))["text"] == EN.download_failed
        assert h.llm_requests() == []
        assert await credits_left(ann) == DAILY
        # the bot stopped reading past the cap: what went out is the cap and what the
        # buffers on the way held (about 10 MB on loopback), far from the whole file
        assert MAX_DOWNLOAD < stored.served < 2 * MAX_DOWNLOAD, stored.served


# --- delivery -------------------------------------------------------------------------


async def test_a_refused_final_edit_in_a_group_sends_the_answer_anew_without_a_stop(
    redis_url: str, tmp_path: Path
) -> None:
    async with running_bot(redis_url, tmp_path) as h:
        group = h.tg.group()
        ann = h.tg.user(first_name="Ann")
        full = "one two three four five six seven"
        h.openai.replies["gpt-test"] = Reply(text=full, first_delay=0.5, chunk_delay=0.1)
        # the final edit (no buttons: a complete answer) is refused; streaming edits
        # (with their Stop button) go through
        h.tg.fail_next(
            "editMessageText",
            400,
            "Bad Request: message can't be edited",
            when=lambda p: not p.get("reply_markup"),
        )
        question = await ann.send(f"@{h.tg.username} count to seven", chat=group)
        placeholder = await h.tg.wait_for(
            "sendMessage", lambda c: c.chat_id == group.id, timeout=10, ok=True
        )
        streamed_id = placeholder.result["message_id"]
        assert button_labels(placeholder.result) == [[EN.stop_button]]

        answer = await ann.wait_message(lambda m: m["text"] == full, chat=group, timeout=15)
        assert answer["message_id"] != streamed_id
        assert answer["reply_to_message"]["message_id"] == question["message_id"]
        refused = [c for c in h.tg.calls("editMessageText", group.id) if not c.ok]
        assert len(refused) == 1 and refused[0].params["text"] == full
        # the streamed message lost its Stop button: nothing left to press there
        await ann.wait_message(
            lambda m: m["message_id"] == streamed_id and not button_labels(m), chat=group
        )
        assert "reply_markup" not in answer
        # the answer counted as delivered: it is in the history
        del h.openai.replies["gpt-test"]
        await ann.send(f"@{h.tg.username} and eight?", chat=group)
        await ann.wait_message(lambda m: m["text"] == "echo: and eight?", chat=group)
        assert asked(h.openai)[-1] == ["count to seven", full, "and eight?"]


def paragraphs(total: int) -> list[str]:
    """Markdown paragraphs (each ending in a blank line) of about ``total`` characters."""
    pieces, size, i = [], 0, 0
    while size < total:
        piece = f"Paragraph {i}: " + "lorem ipsum dolor sit amet " * 20 + "\n\n"
        pieces.append(piece)
        size += len(piece)
        i += 1
    return pieces


def final_messages(h: Harness, chat_id: int, since: int) -> list[Any]:
    """The answer's final messages in a private chat: texts, then a file."""
    return [
        c
        for c in h.tg.api_calls[since:]
        if c.chat_id == chat_id and c.ok and c.method in ("sendMessage", "sendDocument")
    ]


async def test_an_answer_over_ten_messages_comes_as_nine_and_a_file(
    redis_url: str, tmp_path: Path
) -> None:
    async with running_bot(redis_url, tmp_path) as h:
        ann = h.tg.user(first_name="Ann")
        script = paragraphs(60_000)
        text = "".join(script)
        h.openai.queue.append(Reply(chunks=script))
        mark = h.tg.mark()
        await ann.send("write me a book")
        document = await h.tg.wait_for("sendDocument", since=mark, timeout=30, ok=True)
        sent = final_messages(h, ann.id, mark)
        assert [c.method for c in sent] == ["sendMessage"] * 9 + ["sendDocument"]
        assert sent[0].text is not None and sent[0].text.startswith("Paragraph 0: lorem")
        assert all(c.text and len(c.text) <= 4096 for c in sent[:9])
        assert document.params["caption"] == EN.answer_in_file
        shown = document.result["document"]
        assert shown["file_name"] == f"{EN.answer_file_name}.md"
        assert h.tg.file_bytes(shown["file_id"]).decode() == text  # the whole answer


@pytest.mark.parametrize(
    "hostile",
    ["- " * 1000 + "x", "\u0301" * 12_000, "`a` " * 25_000],
    ids=["nested-list", "combining-marks", "100k-code-spans"],
)
async def test_a_hostile_answer_takes_at_most_ten_messages(
    redis_url: str, tmp_path: Path, hostile: str
) -> None:
    async with running_bot(redis_url, tmp_path) as h:
        ann, bob = h.tg.user(first_name="Ann"), h.tg.user(first_name="Bob")
        half = len(hostile) // 2
        h.openai.queue.append(Reply(chunks=[hostile[:half], hostile[half:]]))
        mark = h.tg.mark()
        await ann.send("say something strange")
        await delivered_and_recorded(h, ann, mark)
        sent = final_messages(h, ann.id, mark)
        assert 1 <= len(sent) <= 10, [c.method for c in sent]
        if sent[-1].method == "sendDocument":
            file_id = sent[-1].result["document"]["file_id"]
            assert h.tg.file_bytes(file_id).decode() == hostile
        # the bot goes on serving
        await bob.send("hello")
        assert (await bob.next_message(timeout=10))["text"] == "echo: hello"


async def test_a_run_of_combining_marks_fills_few_messages(redis_url: str, tmp_path: Path) -> None:
    """12,001 UTF-16 units take three messages, not one a mark (as they once did)."""
    async with running_bot(redis_url, tmp_path) as h:
        ann = h.tg.user(first_name="Ann")
        h.openai.queue.append(Reply(chunks=["a" + "\u0301" * 12_000]))
        mark = h.tg.mark()
        await ann.send("accents please")
        await delivered_and_recorded(h, ann, mark)
        sent = final_messages(h, ann.id, mark)
        assert 1 <= len(sent) <= 4 and {c.method for c in sent} == {"sendMessage"}


async def test_others_are_served_while_hostile_answers_are_rendered(
    redis_url: str, tmp_path: Path
) -> None:
    """Answers of 100,000 characters of the Markdown that costs the renderer most per
    character (a second or more each, here), three at once: meanwhile another user's
    /limits is answered at once. The rendering does not hold the event loop."""
    hostile = "# a\n" * 25_000
    async with running_bot(redis_url, tmp_path, daily_limit=DAILY) as h:
        bob = h.tg.user(first_name="Bob")
        users = [h.tg.user(first_name=name) for name in ("Ann", "Carol", "Dan")]
        h.openai.queue.extend(Reply(chunks=[hostile]) for _ in users)
        mark = h.tg.mark()
        for user in users:
            await user.send("something long and strange")

        def answered(user: FakeUser) -> bool:
            return any(
                c.chat_id == user.id and c.method in ("sendMessage", "sendDocument")
                for c in h.tg.api_calls[mark:]
            )

        # /limits after /limits, each sent as soon as the one before was answered, so one
        # is always waiting whenever the bot renders. Each wait in this process's CPU
        # time: the renders' work counts (a render that held the event loop would show),
        # the time the process waited for a core that other pytest-xdist workers held
        # does not.
        waits: list[float] = []
        async with asyncio.timeout(120):
            while not all(answered(user) for user in users) or not waits:
                sent_at = time.process_time()
                await bob.send("/limits")
                reply = await bob.next_message(timeout=60)
                waits.append(time.process_time() - sent_at)
                assert "credits left" in reply["text"]
        assert max(waits) < 2.0, (len(waits), sorted(waits)[-5:])
        for user in users:
            await delivered_and_recorded(h, user, mark, timeout=120)
            assert 1 <= len(final_messages(h, user.id, mark)) <= 10


# --- keys without expiry (the check tests/conftest.py runs after every test) --------------


async def test_keys_without_an_expiry_are_found(redis_url: str) -> None:
    client = Redis.from_url(redis_url)
    try:
        await client.set("busy:{1}:1", "7", ex=30)
        await client.zincrby("votes:7000000001", 1, "gpt")  # the leaderboard: on purpose
        await client.hset("history:{1}:1", "c", "no expiry")
        assert await keys_without_expiry(redis_url) == ["history:{1}:1"]
        await client.expire("history:{1}:1", 60)
        assert await keys_without_expiry(redis_url) == []
    finally:
        await client.aclose()
