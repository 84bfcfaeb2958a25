"""The shared Bot API call budget and the start gate: a bound on Telegram calls a
second that finals get first, and a bound on updates starting at once that answers
waiting on their model don't hold."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from aiogram import Bot
from aiogram.client.session.middlewares.base import NextRequestMiddlewareType
from aiogram.methods import GetUpdates, TelegramMethod

from bot.services.gate import StartGate, started
from bot.telegram import CallBudget
from tests.doubles.base import Reply
from tests.harness import running_bot


def most_in_a_second(times: list[float]) -> int:
    ordered = sorted(times)
    return max(sum(1 for t in ordered if start <= t < start + 1.0) for start in ordered)


async def test_the_budget_spaces_calls_and_serves_the_urgent_first() -> None:
    budget = CallBudget(20)
    taken: list[tuple[float, int]] = []

    async def call(priority: int) -> None:
        await budget.take(priority)
        taken.append((time.monotonic(), priority))

    await asyncio.gather(*(call(2) for _ in range(15)), *(call(0) for _ in range(15)))
    assert most_in_a_second([t for t, _ in taken]) <= 20
    # after the first call (which found the budget free), every urgent one went first
    assert [p for _, p in taken[1:16]] == [0] * 15


async def test_a_cancelled_waiter_gives_its_turn_on() -> None:
    budget = CallBudget(10)
    await budget.take(0)
    cancelled = asyncio.create_task(budget.take(0))
    waiting = asyncio.create_task(budget.take(1))
    await asyncio.sleep(0)
    cancelled.cancel()
    await asyncio.wait_for(waiting, 1.0)


async def test_the_gate_is_held_only_while_starting() -> None:
    gate = StartGate(1)
    order: list[str] = []

    async def waits_on_a_model() -> None:
        async with gate.slot():
            order.append("asked")
            started()
            await asyncio.sleep(0.3)  # the model streams: no slot held
            order.append("answered")

    async def quick() -> None:
        await asyncio.sleep(0.05)
        async with gate.slot():
            order.append("quick")

    await asyncio.gather(waits_on_a_model(), quick())
    assert order == ["asked", "quick", "answered"]


async def test_with_a_budget_every_answer_arrives_and_no_second_exceeds_it(
    redis_url: str, tmp_path: Path
) -> None:
    async with running_bot(redis_url, tmp_path, telegram_calls_per_second=8) as h:
        sent: list[float] = []

        async def sending(
            make_request: NextRequestMiddlewareType[Any], bot: Bot, method: TelegramMethod[Any]
        ) -> Any:
            """Registered last, so innermost: a call as it leaves the bot, past its budget.
            (The fake Bot API shares the bot's event loop: on a busy machine it stamps
            requests late, several at once, whatever their spacing when sent.)"""
            if not isinstance(method, GetUpdates):
                sent.append(time.monotonic())
            return await make_request(bot, method)

        h.app.bot.session.middleware(sending)
        words = [f"w{i} " for i in range(30)]
        h.openai.default = Reply(chunks=words, chunk_delay=0.05)
        users = [h.tg.user(first_name=f"U{i}") for i in range(6)]
        mark = h.tg.mark()
        for user in users:
            await user.send("stream please")
        for user in users:
            answer = await user.next_message(timeout=30)
            assert answer["text"] == "".join(words).strip()
        calls = [c for c in h.tg.api_calls[mark:] if c.method != "getUpdates"]
        assert len(sent) >= len(calls)  # every call that arrived was timed as it left
        assert most_in_a_second(sent) <= 8


async def test_slow_answers_do_not_hold_new_updates_at_the_gate(
    redis_url: str, tmp_path: Path
) -> None:
    async with running_bot(redis_url, tmp_path, max_starting_updates=1) as h:
        h.openai.default = Reply(chunks=["slow ", "answer"], chunk_delay=1.5)
        ann, bob = h.tg.user(first_name="Ann"), h.tg.user(first_name="Bob")
        await ann.send("take your time")
        await h.tg.wait_for("sendMessageDraft", lambda c: c.chat_id == ann.id)  # streaming
        await bob.send("/help")
        helped = await bob.next_message(timeout=10)
        answered = await ann.next_message(timeout=10)
        assert answered["text"] == "slow answer"
        # Bob was served while Ann's answer still waited on its model
        assert helped["text"]
        help_call = h.tg.wait_for("sendMessage", lambda c: c.chat_id == bob.id)
        answer_call = h.tg.wait_for("sendMessage", lambda c: c.chat_id == ann.id)
        assert (await help_call).time < (await answer_call).time
