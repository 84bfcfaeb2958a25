"""End to end: Stop (the draft's own Stop, the "⏹ Stop" button, /stop, from any replica),
Retry, one answer at a time per chat, and the maximum prompt length, through the real
app, the fake Bot API, the model doubles and a real Redis."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bot.services.generations import LOCK_PATIENCE
from bot.texts import EN
from tests import support
from tests.doubles.base import Reply
from tests.doubles.telegram import FakeUser, button_labels
from tests.harness import Harness, running_bot, running_webhook_bot
from tests.support import Script, long_script

pytestmark = pytest.mark.asyncio

DAILY = 10
SLACK = 0.05


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait until a double's state satisfies ``condition``."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


def asked(double: Any) -> list[list[str]]:
    return [
        [m["content"] for m in r.json["messages"]]
        for r in double.requests
        if r.method == "POST" and r.json
    ]


async def credits_left(user: FakeUser) -> int:
    return await support.credits_left(user, DAILY)


def stopped_text(partial: str) -> str:
    return f"{partial.rstrip()}\n\n{EN.stopped}"


async def first_text_shown(h: Harness, chat_id: int) -> str:
    """The first streamed text the chat showed (a draft, or an edit in groups)."""
    private = chat_id > 0
    call = await h.tg.wait_for(
        "sendMessageDraft" if private else "editMessageText",
        lambda c: c.chat_id == chat_id and bool(c.text),
        ok=True,
    )
    assert call.text is not None
    return call.text


# --- Stop -----------------------------------------------------------------------------


async def test_draft_stop_mid_stream_keeps_the_text_closes_the_stream_and_counts(
    redis_url: str, tmp_path: Path
) -> None:
    async with running_bot(redis_url, tmp_path, daily_limit=DAILY) as h:
        script = long_script()
        h.openai.queue.append(Reply(chunks=script, chunk_delay=0.1))
        ann = h.tg.user(first_name="Ann")
        await ann.send("tell me a long story")
        shown = await first_text_shown(h, ann.id)
        draft = ann.draft()
        assert draft is not None and draft.get("can_stop")
        stopped = await ann.press_stop()
        assert stopped["draft_id"] == draft["draft_id"]

        final = await ann.next_message(timeout=5)
        text = final["text"]
        assert text.endswith(f"\n\n{EN.stopped}"), text
        partial = text.removesuffix(f"\n\n{EN.stopped}")
        assert partial.startswith(shown.rstrip()) and script.text.startswith(partial), text
        assert len(partial) < len(script.text.rstrip())
        italic = [e for e in final["entities"] if e["type"] == "italic"]
        assert [text[e["offset"] : e["offset"] + e["length"]] for e in italic] == [EN.stopped]
        assert button_labels(final) == [[EN.retry_button]]
        # the upstream stream was closed: the double stopped sending long before the end
        await until(lambda: script.done)
        assert script.taken < len(script) // 2, script.taken
        assert len(ann.bot_messages()) == 1
        # the user saw text: the request counts
        assert await credits_left(ann) == DAILY - 1
        # and a stopped answer is not part of the conversation
        await ann.send("next")
        assert (await ann.next_message())["text"] == "echo: next"
        assert asked(h.openai)[-1] == ["next"]


async def test_stop_before_any_text_says_stopped_and_still_counts(
    redis_url: str, tmp_path: Path
) -> None:
    async with running_bot(redis_url, tmp_path, daily_limit=DAILY) as h:
        script = long_script()
        h.openai.queue.append(Reply(chunks=script, first_delay=1.0))
        ann = h.tg.user(first_name="Ann")
        await ann.send("think hard")
        await h.tg.wait_for("sendMessageDraft", lambda c: c.params.get("can_stop") is not None)
        await ann.press_stop()
        final = await ann.next_message(timeout=5)
        assert final["text"] == EN.stopped
        assert button_labels(final) == [[EN.retry_button]]
        assert h.tg.drafts(ann.id)[-1].text is None  # no text had been shown
        # the provider was working on it: a Stop is no way to free requests
        assert await credits_left(ann) == DAILY - 1


async def test_stop_button_in_a_group_stops_the_edited_answer(
    redis_url: str, tmp_path: Path
) -> None:
    async with running_bot(redis_url, tmp_path, daily_limit=DAILY) as h:
        group = h.tg.group()
        ann = h.tg.user(first_name="Ann")
        script = long_script()
        h.openai.queue.append(Reply(chunks=script, chunk_delay=0.1))
        await ann.send(f"@{h.tg.username} a long story please", chat=group)
        placeholder = await h.tg.wait_for("sendMessage", lambda c: c.chat_id == group.id)
        assert button_labels(placeholder.result) == [[EN.stop_button]]
        shown = await first_text_shown(h, group.id)

        # another member's press does not stop Ann's answer
        bob = h.tg.user(first_name="Bob")
        query = await bob.click(EN.stop_button, chat=group)
        answered = await h.tg.wait_callback_answer(query["id"])
        assert answered.params.get("text") == EN.not_your_button
        taken = script.taken
        await until(lambda: script.taken >= taken + 2)  # the model is still being read
        assert EN.stopped not in group.messages()[-1]["text"]

        query = await ann.click(EN.stop_button, chat=group)
        answered = await h.tg.wait_callback_answer(query["id"])
        assert answered.ok and answered.params.get("text") is None
        final = await ann.wait_message(lambda m: EN.stopped in m["text"], chat=group)
        # the streamed message itself became the stopped answer, with Retry under it
        assert final["message_id"] == placeholder.result["message_id"]
        partial = final["text"].removesuffix(f"\n\n{EN.stopped}")
        assert partial.startswith(shown.rstrip()) and script.text.startswith(partial)
        assert button_labels(final) == [[EN.retry_button]]
        assert [m["message_id"] for m in ann.bot_messages(chat=group)] == [final["message_id"]]
        await until(lambda: script.done)
        assert script.taken < len(script) // 2, script.taken
        assert await credits_left(ann) == DAILY - 1


async def test_stop_command_stops_the_answer_and_says_when_nothing_runs(
    redis_url: str, tmp_path: Path
) -> None:
    async with running_bot(redis_url, tmp_path) as h:
        ann = h.tg.user(first_name="Ann")
        await ann.send("/stop")
        assert (await ann.next_message())["text"] == EN.nothing_to_stop

        script = long_script()
        h.openai.queue.append(Reply(chunks=script, chunk_delay=0.1))
        await ann.send("a long one")
        await first_text_shown(h, ann.id)
        await ann.send("/stop")
        final = await ann.next_message(timeout=5)
        assert final["text"].endswith(f"\n\n{EN.stopped}"), final["text"]
        assert button_labels(final) == [[EN.retry_button]]
        await until(lambda: script.done)
        assert script.taken < len(script) // 2, script.taken

        await ann.send("/stop")
        assert (await ann.next_message())["text"] == EN.nothing_to_stop
        assert [m["text"] for m in ann.bot_messages()] == [
            EN.nothing_to_stop,
            final["text"],
            EN.nothing_to_stop,
        ]


async def test_stop_pressed_on_the_other_replica_stops_the_answer(
    redis_url: str, tmp_path: Path
) -> None:
    async with running_webhook_bot(redis_url, tmp_path, replicas=2) as h:
        assert h.balancer is not None
        group = h.tg.group()
        ann = h.tg.user(first_name="Ann")
        script = long_script()
        h.openai.queue.append(Reply(chunks=script, chunk_delay=0.1))
        await ann.send(f"@{h.tg.username} a long story please", chat=group)
        await first_text_shown(h, group.id)

        query = await ann.click(EN.stop_button, chat=group)
        await h.tg.wait_callback_answer(query["id"])
        final = await ann.wait_message(lambda m: EN.stopped in m["text"], chat=group)
        # the message went to one replica, the Stop press to the other
        assert [replica for _, replica in h.balancer.routed] == [0, 1]
        assert button_labels(final) == [[EN.retry_button]]
        await until(lambda: script.done)
        assert script.taken < len(script) // 2, script.taken
        await h.idle()
        assert len(h.openai.calls("/chat/completions")) == 1


# --- one answer at a time -------------------------------------------------------------


async def test_a_message_while_answering_is_told_to_wait_and_the_history_stays_clean(
    redis_url: str, tmp_path: Path
) -> None:
    async with running_bot(redis_url, tmp_path) as h:
        ann = h.tg.user(first_name="Ann")
        script = long_script(30)
        h.openai.queue.append(Reply(chunks=script, chunk_delay=0.1))
        await ann.send("first")
        await first_text_shown(h, ann.id)
        sent_at = time.monotonic()
        await ann.send("second")
        busy = await ann.next_message(timeout=5)
        assert busy["text"] == EN.still_answering
        told = h.tg.calls("sendMessage", ann.id)[0]
        assert told.time - sent_at >= LOCK_PATIENCE - SLACK  # it waited for a while first
        full = await ann.next_message(timeout=10)
        assert full["text"] == script.text.rstrip()
        assert told.time < h.tg.calls("sendMessage", ann.id)[1].time

        await ann.send("third")
        assert (await ann.next_message())["text"] == "echo: third"
        assert asked(h.openai) == [["first"], ["first", script.text, "third"]]


# --- Retry ----------------------------------------------------------------------------


async def test_retry_asks_again_and_a_second_press_is_too_old(
    redis_url: str, tmp_path: Path
) -> None:
    async with running_bot(redis_url, tmp_path, daily_limit=DAILY) as h:
        ann = h.tg.user(first_name="Ann")
        h.openai.queue.extend([Reply(status=503), Reply(status=503)])
        await ann.send("what is the answer?")
        failed = await ann.next_message(timeout=10)
        assert failed["text"] == EN.error_unavailable.format(model="GPT Test")
        assert button_labels(failed) == [[EN.retry_button]]
        assert await credits_left(ann) == DAILY

        # Telegram refuses to take the button away (the message is too old to edit, say):
        # it stays under the failed answer
        h.tg.fail_next("editMessageReplyMarkup", 400, "Bad Request: message can't be edited")
        query = await ann.click(EN.retry_button)
        assert (await h.tg.wait_callback_answer(query["id"])).params.get("text") is None
        answer = await ann.next_message(timeout=10)
        assert answer["text"] == "echo: what is the answer?"
        assert asked(h.openai) == [["what is the answer?"]] * 3
        assert await credits_left(ann) == DAILY - 1

        again = await ann.click(EN.retry_button)
        refused = await h.tg.wait_callback_answer(again["id"])
        assert refused.params["text"] == EN.retry_expired
        assert str(refused.params.get("show_alert")).lower() == "true"
        assert len(asked(h.openai)) == 3
        # the retried exchange is the conversation; nothing was asked twice
        await ann.send("and then?")
        await ann.next_message()
        assert asked(h.openai)[-1] == [
            "what is the answer?",
            "echo: what is the answer?",
            "and then?",
        ]
        assert await credits_left(ann) == DAILY - 2


async def test_retry_tapped_twice_at_once_asks_once(redis_url: str, tmp_path: Path) -> None:
    async with running_bot(redis_url, tmp_path, daily_limit=DAILY) as h:
        ann = h.tg.user(first_name="Ann")
        h.openai.queue.extend([Reply(status=500), Reply(status=500)])
        await ann.send("again?")
        failed = await ann.next_message(timeout=10)
        assert button_labels(failed) == [[EN.retry_button]]
        first = await ann.click(EN.retry_button)
        second = await ann.click(EN.retry_button)  # before the bot saw the first
        answers = [await h.tg.wait_callback_answer(q["id"]) for q in (first, second)]
        # one of the two taps (whichever the bot handled first) asks again
        assert sorted(str(a.params.get("text")) for a in answers) == sorted(
            ["None", EN.retry_expired]
        )
        assert (await ann.next_message(timeout=10))["text"] == "echo: again?"
        # the button is gone from the failed answer
        await ann.wait_message(
            lambda m: m["message_id"] == failed["message_id"] and not button_labels(m)
        )
        assert len(asked(h.openai)) == 3
        assert await credits_left(ann) == DAILY - 1


# --- input bounds ---------------------------------------------------------------------


async def test_a_prompt_over_the_maximum_gets_the_limit_and_is_not_sent(
    redis_url: str, tmp_path: Path
) -> None:
    async with running_bot(redis_url, tmp_path, daily_limit=DAILY, max_prompt_chars=100) as h:
        ann = h.tg.user(first_name="Ann")
        await ann.send("x" * 101)
        refused = (await ann.next_message())["text"]
        assert refused == EN.prompt_too_long.format(length=101, limit=100)
        assert h.llm_requests() == []
        assert await credits_left(ann) == DAILY

        await ann.send("y" * 100)
        assert (await ann.next_message())["text"] == "echo: " + "y" * 100
        assert asked(h.openai) == [["y" * 100]]


# --- a user who blocked the bot ---------------------------------------------------------


async def test_a_user_who_blocked_the_bot_ends_the_answer(redis_url: str, tmp_path: Path) -> None:
    async with running_bot(redis_url, tmp_path, daily_limit=DAILY) as h:
        ann, bob = h.tg.user(first_name="Ann"), h.tg.user(first_name="Bob")
        await ann.send("/model mistral")
        await ann.next_message()
        script = long_script()  # Ann's model would stream it; Bob's answers at once
        h.mistral.replies["mistral-test"] = Reply(chunks=script, chunk_delay=0.1)
        ann.block()
        mark = h.tg.mark()
        await ann.send("you can't answer me")
        refused = await h.tg.wait_for("sendMessageDraft", lambda c: c.chat_id == ann.id)
        assert refused.status == 403
        # others are served meanwhile
        await bob.send("hi from Bob")
        assert (await bob.next_message(timeout=10))["text"] == "echo: hi from Bob"
        # the 403 ended the answer: the model was not asked, or its stream was closed at
        # once (streamed on, it would be 10 pieces further by now)
        await asyncio.sleep(1.0)
        assert script.taken <= 5, script.taken
        # no final message was tried, and nothing more went to the chat
        tried = [c for c in h.tg.api_calls[mark:] if c.chat_id == ann.id]
        assert tried and all(c.status == 403 for c in tried)
        assert "sendMessage" not in {c.method for c in tried}

        # once unblocked, the user is served again (no chat left locked); the answer
        # nobody saw is not kept in the conversation, but the request the provider was
        # given counts: only a provider's own failure gives a request back
        ann.block(False)
        assert await credits_left(ann) == DAILY - 1
        h.mistral.replies.clear()
        await ann.send("back again")
        assert (await ann.next_message(timeout=10))["text"] == "echo: back again"
        assert asked(h.mistral)[-1] == ["back again"]


async def test_a_block_during_the_final_message_still_counts_the_answer(
    redis_url: str, tmp_path: Path
) -> None:
    async with running_bot(redis_url, tmp_path, daily_limit=DAILY) as h:
        ann = h.tg.user(first_name="Ann")
        h.tg.fail_next("sendMessage", 403, description="Forbidden: bot was blocked by the user")
        await ann.send("quick question")
        refused = await h.tg.wait_for("sendMessage", lambda c: c.chat_id == ann.id)
        assert refused.status == 403
        assert await credits_left(ann) == DAILY - 1  # the provider answered: it counts


# --- Stop in /compare -----------------------------------------------------------------


async def compare_streaming(
    h: Harness, user: FakeUser, others: Reply
) -> tuple[Script, dict[str, int]]:
    """/compare with Mistral streaming a long answer and the others ``others``; once
    Mistral's text shows: its script, and each model's message id by title."""
    slow = long_script(80)
    h.mistral.replies["mistral-test"] = Reply(chunks=slow, chunk_delay=0.1)
    h.openai.replies["gpt-test"] = h.llama.replies["Llama-Test"] = others
    await user.send("/compare which is best?")
    await h.tg.wait_message(user.id, lambda m: m["text"].startswith("Mistral Test\nw00"))

    def ids() -> dict[str, int]:
        return {m["text"].split("\n")[0]: m["message_id"] for m in user.bot_messages()}

    # Llama's placeholder follows Mistral's; on a busy machine Mistral's first text may
    # show before it lands
    await until(lambda: len(ids()) == 3)
    return slow, ids()


async def finished(h: Harness, user: FakeUser, message_id: int) -> dict[str, Any]:
    """The message once its buttons are no longer a Stop."""
    return await h.tg.wait_message(
        user.id,
        lambda m: m["message_id"] == message_id and EN.stop_button not in str(button_labels(m)),
        timeout=10,
    )


async def test_stop_under_one_compare_answer_stops_that_model_only(
    redis_url: str, tmp_path: Path
) -> None:
    async with running_bot(redis_url, tmp_path) as h:
        ann = h.tg.user(first_name="Ann")
        short = Reply(text="a short answer", first_delay=0.5, chunk_delay=0.1)
        slow, ids = await compare_streaming(h, ann, short)
        at_stop = slow.taken
        query = await ann.click(EN.stop_button, message_id=ids["Mistral Test"])
        assert (await h.tg.wait_callback_answer(query["id"])).params.get("text") is None

        stopped = await finished(h, ann, ids["Mistral Test"])
        assert stopped["text"].startswith("Mistral Test\nw00")
        assert stopped["text"].endswith(EN.stopped)
        await until(lambda: slow.done)  # its stream was closed at once
        assert slow.taken - at_stop <= 10 and slow.taken < len(slow), (at_stop, slow.taken)
        for title in ("GPT Test", "Llama Test"):  # the others answered in full
            answer = await finished(h, ann, ids[title])
            assert answer["text"].startswith(f"{title}\na short answer"), answer["text"]
            assert f"Continue with {title}" in str(button_labels(answer))


async def test_slash_stop_stops_every_model_of_a_compare(redis_url: str, tmp_path: Path) -> None:
    async with running_bot(redis_url, tmp_path) as h:
        ann = h.tg.user(first_name="Ann")
        others = long_script(80)  # both other models stream it
        slow, ids = await compare_streaming(h, ann, Reply(chunks=others, chunk_delay=0.1))
        at_stop = slow.taken + others.taken
        await ann.send("/stop")
        for message_id in ids.values():
            stopped = await finished(h, ann, message_id)
            assert stopped["text"].endswith(EN.stopped), stopped["text"]
        await until(lambda: slow.done and others.done)  # every stream was closed at once
        assert slow.taken + others.taken - at_stop <= 20, (at_stop, slow.taken, others.taken)
        assert slow.taken < len(slow)
