"""End to end: paid credits with Telegram Stars through the fake Bot API, the model
doubles and a real Redis (SPEC "Paid credits with Telegram Stars")."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from bot.app import App
from bot.services.payments import Payments
from tests.doubles.base import Reply
from tests.doubles.telegram import FakeUser, button_labels
from tests.harness import KEYS, Harness, running_bot, running_webhook_bot
from tests.redis_server import RedisServer

PAID = """
[[models]]
id = "dear"
title = "Dear Test"
provider = "mistral"
name = "dear-test"
cost = 4

[[packs]]
id = "s10"
title = "10 credits"
stars = 5
credits = 10

[[plans]]
id = "plus"
title = "Plus"
stars = 250
daily_limit = 3
"""

PACK_BUTTON = "10 credits · 5 ⭐"


def payments(h: Harness) -> Payments:
    service: Payments = h.app.services["payments"]
    return service


async def paid_hash(url: str, user_id: int) -> dict[str, str]:
    client = Redis.from_url(url, decode_responses=True)
    try:
        raw = await client.hgetall(f"paid:{{{user_id}}}")
        return {str(k): str(v) for k, v in raw.items()}
    finally:
        await client.aclose()


async def buy_pack(h: Harness, user: FakeUser) -> tuple[str, str]:
    """/buy, press the pack, confirm: returns (payload, charge id) once credited."""
    await user.send("/buy")
    menu = await user.next_message()
    assert PACK_BUTTON in [label for row in button_labels(menu) for label in row]
    mark = h.tg.mark()
    await user.click(PACK_BUTTON)
    invoice = await h.tg.wait_for("sendInvoice", since=mark)
    assert invoice.params["currency"] == "XTR"
    assert invoice.params.get("provider_token", "") == ""
    payload, amount = h.tg.stars.last_invoice_payload()
    assert amount == 5 and len(payload.encode()) <= 128
    query = h.tg.pre_checkout(user.info, payload, amount)
    answer = await h.tg.wait_pre_checkout_answer(query)
    assert answer["ok"] is True
    charge = h.tg.charge(user.info, payload, amount)
    return payload, charge


async def test_purchase_is_credited_once_and_shown(redis_url: str, tmp_path: Path) -> None:
    async with running_bot(redis_url, tmp_path, daily_limit=5, extra_catalog=PAID) as h:
        ann = h.tg.user(first_name="Ann")
        payload, charge = await buy_pack(h, ann)
        done = await ann.next_message()
        assert done["text"] == "Thank you! 10 credits added. Paid balance: 10 credits."
        for _ in range(2):  # Telegram delivers it again: nothing more
            h.tg.deliver_payment(ann.info, payload, 5, charge)
        await ann.send("/limits")
        limits = (await ann.next_message())["text"]
        assert "Paid balance: 10 credits." in limits
        assert (await paid_hash(redis_url, ann.id))["balance"] == "10"
        texts = [m.get("text") for m in ann.bot_messages()]
        assert texts.count(done["text"]) == 1
        ledger = await payments(h).ledger(ann.id)
        assert [(e["kind"], e["charge"], e["credits"]) for e in ledger] == [("pack", charge, "10")]
        commands = {c["command"] for c in h.tg.calls("setMyCommands")[0].params["commands"]}
        assert "buy" in commands
        await ann.send("/help")
        assert "/buy — buy credits with Telegram Stars" in (await ann.next_message())["text"]


async def test_no_buy_without_packs(redis_url: str, tmp_path: Path) -> None:
    async with running_bot(redis_url, tmp_path) as h:
        ann = h.tg.user(first_name="Ann")
        await ann.send("/buy")
        assert "/buy" in (await ann.next_message())["text"]  # an unknown command
        assert not h.tg.calls("sendInvoice")
        commands = {c["command"] for c in h.tg.calls("setMyCommands")[0].params["commands"]}
        assert "buy" not in commands
        await ann.send("/help")
        assert "/buy" not in (await ann.next_message())["text"]
        assert not h.tg.calls("getStarTransactions")


async def test_forged_stale_foreign_and_mispriced_checkouts_are_refused(
    redis_url: str, tmp_path: Path
) -> None:
    async with running_bot(redis_url, tmp_path, extra_catalog=PAID) as h:
        ann, bob = h.tg.user(first_name="Ann"), h.tg.user(first_name="Bob")
        service = payments(h)
        good = service.payload_for(h.app.catalog.packs["s10"], ann.id)
        kind, product, _, user, issued, nonce, sig = good.split(".")
        forged = ".".join([kind, product, "1", user, issued, nonce, sig])  # cheaper
        stale = service.signer.make("pack", "s10", 5, ann.id, time.time() - 3 * 86400)
        cases: list[tuple[dict[str, Any], str, int]] = [
            (ann.info, forged, 1),
            (ann.info, good + "x", 5),
            (bob.info, good, 5),  # someone else's invoice
            (ann.info, good, 6),  # not the price of the pack
            (ann.info, stale, 5),
        ]
        for sender, payload, amount in cases:
            answer = await h.tg.wait_pre_checkout_answer(h.tg.pre_checkout(sender, payload, amount))
            assert answer["ok"] is False
            assert answer["error_message"].startswith("This invoice is no longer valid")
        ok = await h.tg.wait_pre_checkout_answer(h.tg.pre_checkout(ann.info, good, 5))
        assert ok["ok"] is True


async def test_paid_credits_pay_when_the_free_allowance_refuses_and_refunds_return_there(
    redis_url: str, tmp_path: Path
) -> None:
    async with running_bot(redis_url, tmp_path, daily_limit=1, extra_catalog=PAID) as h:
        ann = h.tg.user(first_name="Ann")
        await ann.send("free")  # the free allowance: 1 credit
        assert (await ann.next_message())["text"] == "echo: free"
        await ann.send("refused")
        assert "free allowance of 1 credit" in (await ann.next_message())["text"]
        await buy_pack(h, ann)
        await ann.next_message()
        await ann.send("/model dear")
        await ann.next_message()
        await ann.send("paid")  # 4 of the 10 paid credits
        assert (await ann.next_message())["text"] == "echo: paid"
        assert (await paid_hash(redis_url, ann.id))["balance"] == "6"
        h.mistral.replies["dear-test"] = Reply(status=503)
        await ann.send("fails")  # paid, then given back to the paid balance
        assert "unavailable" in (await ann.next_message())["text"]
        assert (await paid_hash(redis_url, ann.id))["balance"] == "6"
        del h.mistral.replies["dear-test"]
        await ann.send("paid again")  # 6 -> 2
        assert (await ann.next_message())["text"] == "echo: paid again"
        await ann.send("too dear")  # 2 < 4: all or nothing, refused
        assert "free allowance" in (await ann.next_message())["text"]
        assert (await paid_hash(redis_url, ann.id))["balance"] == "2"
        # paid, fails (tried twice: max_retries = 1), paid again; "too dear" never asked
        assert len(h.mistral.calls("/chat/completions")) == 4
        assert len(h.openai.calls("/chat/completions")) == 1
        kinds = [e["kind"] for e in reversed(await payments(h).ledger(ann.id))]
        assert kinds == ["pack", "debit", "debit", "refund", "debit"]


async def test_a_plan_raises_the_allowance_and_renews(redis_url: str, tmp_path: Path) -> None:
    async with running_bot(redis_url, tmp_path, daily_limit=1, extra_catalog=PAID) as h:
        ann = h.tg.user(first_name="Ann")
        await ann.send("/buy")
        await ann.next_message()
        mark = h.tg.mark()
        await ann.click("Plus: 3 credits a day · 250 ⭐ / 30 days")
        link = await h.tg.wait_for("createInvoiceLink", since=mark)
        assert int(link.params["subscription_period"]) == 2592000
        offer = await ann.next_message()
        assert "Plus" in offer["text"]
        payload, amount = h.tg.stars.last_link_payload()
        answer = await h.tg.wait_pre_checkout_answer(h.tg.pre_checkout(ann.info, payload, amount))
        assert answer["ok"] is True
        ends = int(time.time()) + 30 * 86400
        h.tg.charge(ann.info, payload, amount, subscription_expiration_date=ends)
        assert "Plus is active until" in (await ann.next_message())["text"]
        for i in range(3):  # the plan's 3 a day, not the free 1
            await ann.send(f"q{i}")
            assert (await ann.next_message())["text"] == f"echo: q{i}"
        await ann.send("q3")
        assert "free allowance" in (await ann.next_message())["text"]
        renewed = ends + 30 * 86400
        h.tg.charge(
            ann.info, payload, amount, subscription_expiration_date=renewed, is_recurring=True
        )
        await ann.next_message()
        assert (await paid_hash(redis_url, ann.id))["plan_end"] == str(renewed)
        await ann.send("/limits")
        assert "Plan Plus: 3 credits a day, until" in (await ann.next_message())["text"]
        h.tg.subscription_update(ann.info, payload, "canceled")
        assert "canceled" in (await ann.next_message())["text"]


async def test_admin_refund_takes_back_what_is_left(redis_url: str, tmp_path: Path) -> None:
    async with running_bot(
        redis_url, tmp_path, daily_limit=1, extra_catalog=PAID, admin_ids=frozenset({4242})
    ) as h:
        boss = h.tg.user(id=4242, first_name="Boss")
        ann = h.tg.user(first_name="Ann")
        await ann.send("free")
        await ann.next_message()
        _, charge = await buy_pack(h, ann)
        await ann.next_message()
        await ann.send("/model dear")
        await ann.next_message()
        await ann.send("paid")
        await ann.next_message()
        await boss.send(f"/refund {ann.id} {charge}")
        said = (await boss.next_message())["text"]
        assert said == "Refunded. 6 credits taken back; 4 credits had been spent."
        assert h.tg.stars.refunded == {charge}
        assert (await paid_hash(redis_url, ann.id))["balance"] == "0"
        await boss.send(f"/refund {ann.id} {charge}")
        assert (await boss.next_message())["text"] == "That payment was refunded already."
        await boss.send(f"/refund {ann.id} nosuch")
        assert (await boss.next_message())["text"] == "No such payment of that user."
        await boss.send("/stats")
        assert "Stars received: 5; paid credits spent: 4" in (await boss.next_message())["text"]
        await ann.send("/refund 1 2")  # not an admin: an unknown command
        assert "/refund" in (await ann.next_message())["text"]
        assert len(h.tg.calls("refundStarPayment")) == 1


async def test_paysupport_and_terms(redis_url: str, tmp_path: Path) -> None:
    async with running_bot(
        redis_url, tmp_path, extra_catalog=PAID, terms_text="Our own terms."
    ) as h:
        ann = h.tg.user(first_name="Ann")
        await ann.send("/paysupport")
        assert "Payment questions" in (await ann.next_message())["text"]
        await ann.send("/terms")
        assert (await ann.next_message())["text"] == "Our own terms."


async def test_redis_down_at_checkout_says_no_and_at_payment_waits(
    redis_url: str, redis_server: RedisServer, tmp_path: Path
) -> None:
    async with running_bot(redis_url, tmp_path, extra_catalog=PAID) as h:
        ann = h.tg.user(first_name="Ann")
        payload = payments(h).payload_for(h.app.catalog.packs["s10"], ann.id)
        redis_server.stop()
        try:
            answer = await h.tg.wait_pre_checkout_answer(
                h.tg.pre_checkout(ann.info, payload, 5), timeout=10
            )
            assert answer["ok"] is False
            assert answer["error_message"].startswith("Payments are temporarily unavailable")
            h.tg.charge(ann.info, payload, 5)  # charged anyway (an earlier yes, say)
            await asyncio.sleep(2.0)  # the payment waits for Redis
            assert not ann.bot_messages()
        finally:
            redis_server.start()
        done = await ann.next_message(timeout=15)
        assert done["text"] == "Thank you! 10 credits added. Paid balance: 10 credits."
        assert (await paid_hash(redis_url, ann.id))["balance"] == "10"


async def test_start_up_reconciliation_credits_a_charge_the_bot_died_before_storing(
    redis_url: str, tmp_path: Path
) -> None:
    async with running_bot(redis_url, tmp_path, extra_catalog=PAID) as h:
        await h.tg.wait_for("getStarTransactions")  # asked at start: nothing missed
        ann = h.tg.user(first_name="Ann")
        payload = payments(h).payload_for(h.app.catalog.packs["s10"], ann.id)
        # the bot dies; Telegram takes the Stars, and the successful_payment is lost
        await h.app.dispatcher.stop_polling()
        await asyncio.wait_for(h.task, 5)
        charge = h.tg.charge(ann.info, payload, 5, deliver=False)
        mark = h.tg.mark()
        restarted = App.build(h.settings, h.catalog, KEYS)
        task = asyncio.create_task(restarted.run_polling(handle_signals=False))
        try:
            await h.tg.wait_for("getStarTransactions", since=mark, timeout=10)
            told = await ann.next_message(timeout=10)  # the user hears of it now
            assert told["text"] == "Thank you! 10 credits added. Paid balance: 10 credits."
            assert (await paid_hash(redis_url, ann.id))["balance"] == "10"
            h.tg.deliver_payment(ann.info, payload, 5, charge)  # a late delivery after all
            await ann.send("/limits")
            assert "Paid balance: 10 credits." in (await ann.next_message())["text"]
            await restarted.reconcile_payments()  # and again: nothing more
            assert (await paid_hash(redis_url, ann.id))["balance"] == "10"
            thanks = [m for m in ann.bot_messages() if "Thank you" in (m.get("text") or "")]
            assert len(thanks) == 1
        finally:
            await restarted.dispatcher.stop_polling()
            await asyncio.wait_for(task, 5)
            await restarted.close()


async def test_two_replicas_credit_a_duplicate_delivery_once(
    redis_url: str, tmp_path: Path
) -> None:
    async with running_webhook_bot(redis_url, tmp_path, replicas=2, extra_catalog=PAID) as h:
        ann = h.tg.user(first_name="Ann")
        payload = payments(h).payload_for(h.app.catalog.packs["s10"], ann.id)
        assert h.balancer is not None
        h.balancer.duplicate_next(2)
        charge = h.tg.charge(ann.info, payload, 5)
        h.tg.deliver_payment(ann.info, payload, 5, charge)
        await ann.next_message(timeout=10)
        await asyncio.sleep(0.5)
        await h.idle()
        assert (await paid_hash(redis_url, ann.id))["balance"] == "10"
        confirmations = [m for m in ann.bot_messages() if "Thank you" in (m.get("text") or "")]
        assert len(confirmations) == 1


async def test_webhook_payment_waits_out_a_redis_outage(
    redis_url: str, redis_server: RedisServer, tmp_path: Path
) -> None:
    async with running_webhook_bot(redis_url, tmp_path, extra_catalog=PAID) as h:
        ann = h.tg.user(first_name="Ann")
        payload = payments(h).payload_for(h.app.catalog.packs["s10"], ann.id)
        redis_server.stop()
        try:
            h.tg.charge(ann.info, payload, 5)
            await asyncio.sleep(2.0)
            assert not ann.bot_messages()
        finally:
            redis_server.start()
        done = await ann.next_message(timeout=15)
        assert done["text"] == "Thank you! 10 credits added. Paid balance: 10 credits."
        await h.idle(10)
        assert (await paid_hash(redis_url, ann.id))["balance"] == "10"
