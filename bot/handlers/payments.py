"""/buy, the invoices, pre-checkout, successful payments, subscription changes,
/paysupport and /terms (SPEC "Paid credits with Telegram Stars")."""

from __future__ import annotations

import asyncio
import logging

from aiogram import Bot, F, Router
from aiogram.filters import Command
from aiogram.types import (
    BotSubscriptionUpdated,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    LabeledPrice,
    Message,
    PreCheckoutQuery,
)
from redis.exceptions import RedisError

from bot.catalog import Catalog, PackSpec
from bot.services.payments import (
    CURRENCY,
    SUBSCRIPTION_PERIOD,
    PayloadError,
    Payments,
)
from bot.settings import Settings
from bot.texts import Texts, texts_for
from bot.texts.base import html

log = logging.getLogger(__name__)

PRE_CHECKOUT_BUDGET = 6.0  # seconds to decide; Telegram gives up at 10


async def sells(_: object, catalog: Catalog) -> bool:
    return catalog.sells


def router() -> Router:
    r = Router(name=__name__)
    r.message.register(buy, Command("buy"), sells)
    r.callback_query.register(buy_pressed, F.data.startswith("buy:"))
    r.pre_checkout_query.register(pre_checkout)
    r.message.register(paid, F.successful_payment)
    r.subscription.register(subscription_changed)
    r.message.register(paysupport, Command("paysupport"))
    r.message.register(terms, Command("terms"))
    return r


async def buy(message: Message, texts: Texts, catalog: Catalog) -> None:
    rows = [
        [
            InlineKeyboardButton(
                text=texts.buy_pack_button.format(title=p.title, stars=p.stars),
                callback_data=f"buy:{p.id}",
            )
        ]
        for p in catalog.packs.values()
    ]
    rows += [
        [
            InlineKeyboardButton(
                text=texts.buy_plan_button.format(
                    title=p.title, stars=p.stars, limit=p.daily_limit
                ),
                callback_data=f"buy:{p.id}",
            )
        ]
        for p in catalog.plans.values()
    ]
    await message.answer(
        texts.buy_title, parse_mode="HTML", reply_markup=InlineKeyboardMarkup(inline_keyboard=rows)
    )


async def buy_pressed(query: CallbackQuery, bot: Bot, texts: Texts, payments: Payments) -> None:
    product = payments.product((query.data or "").removeprefix("buy:"))
    if product is None or query.message is None:
        await query.answer(texts.checkout_refused)
        return
    await query.answer()
    chat_id = query.message.chat.id
    payload = payments.payload_for(product, query.from_user.id)
    prices = [LabeledPrice(label=product.title, amount=product.stars)]
    if isinstance(product, PackSpec):
        await bot.send_invoice(
            chat_id,
            title=product.title,
            description=texts.invoice_pack_description.format(credits=product.credits),
            payload=payload,
            currency=CURRENCY,
            prices=prices,
            provider_token="",
        )
        return
    link = await bot.create_invoice_link(
        title=product.title,
        description=texts.invoice_plan_description.format(limit=product.daily_limit),
        payload=payload,
        currency=CURRENCY,
        prices=prices,
        provider_token="",
        subscription_period=SUBSCRIPTION_PERIOD,
    )
    button = InlineKeyboardButton(text=texts.plan_subscribe_button, url=link)
    await bot.send_message(
        chat_id,
        html(texts.plan_invoice_text, title=product.title),
        parse_mode="HTML",
        reply_markup=InlineKeyboardMarkup(inline_keyboard=[[button]]),
    )


async def pre_checkout(query: PreCheckoutQuery, texts: Texts, payments: Payments) -> None:
    """Always answered, within Telegram's 10 seconds: yes only when the payload checks
    out and Redis can take the credit; no, with the reason, otherwise."""
    reason: str | None = None
    try:
        payments.check(
            query.invoice_payload, query.from_user.id, query.total_amount, query.currency
        )
    except PayloadError as exc:
        log.warning("pre-checkout %s refused: %s", query.id, exc)
        reason = texts.checkout_refused
    else:
        try:
            reachable = await asyncio.wait_for(payments.reachable(), PRE_CHECKOUT_BUDGET)
        except TimeoutError:
            reachable = False
        if not reachable:
            reason = texts.checkout_unavailable
    if reason is None:
        await query.answer(ok=True)
    else:
        await query.answer(ok=False, error_message=reason)


async def paid(message: Message, bot: Bot, texts: Texts, payments: Payments) -> None:
    """Credit once per charge id; wait for Redis (with backoff) rather than drop it."""
    payment = message.successful_payment
    assert payment is not None and message.from_user is not None
    user_id = message.from_user.id
    charge = payment.telegram_payment_charge_id
    try:
        data = payments.signer.read(payment.invoice_payload)
    except PayloadError:
        data = None
    if data is None or data.user_id != user_id:
        log.error("payment %s by %s: payload not ours", charge, user_id)
        await message.answer(texts.paid_problem)
        return
    expires = payment.subscription_expiration_date
    try:
        done = await payments.credit_patiently(user_id, charge, data, expires)
    except RedisError:
        log.error("payment %s by %s NOT credited: reconciliation will", charge, user_id)
        raise
    if not done.new:
        log.info("payment %s: delivered again, credited before", charge)
        return
    await message.answer(payments.confirmation(texts, data, done))


async def subscription_changed(
    update: BotSubscriptionUpdated, bot: Bot, payments: Payments
) -> None:
    """Canceled, active again or failed: recorded in the ledger, and the user told."""
    user = update.user
    texts = texts_for(user.language_code)
    try:
        await payments.note_subscription(user.id, update.state, update.invoice_payload)
    except RedisError as exc:
        log.warning("subscription update of %s not recorded: %s", user.id, exc)
    said = {
        "canceled": texts.subscription_canceled,
        "active": texts.subscription_active,
        "failed": texts.subscription_failed,
    }.get(update.state)
    if said is not None:
        await bot.send_message(user.id, said)


async def paysupport(message: Message, texts: Texts) -> None:
    await message.answer(texts.paysupport)


async def terms(message: Message, texts: Texts, settings: Settings) -> None:
    await message.answer(settings.terms_text or texts.terms_default)
