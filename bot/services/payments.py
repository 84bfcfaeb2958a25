"""Paid credits with Telegram Stars (SPEC "Paid credits with Telegram Stars").

- An invoice's payload names the product, its price, the user, when it was issued and a
  nonce, and is signed (HMAC-SHA256, truncated, with a key derived from PAYMENTS_SECRET
  or else the bot token): a forged or altered payload is refused at ``pre_checkout``.
- A payment is credited by one Lua script on the user's paid hash (``paid:{<user>}``,
  the same ``{user}`` hash tag as their quota, so one slot on a Redis Cluster): the
  charge id is recorded and the credits added (or the plan extended) in one atomic
  step, so redeliveries, replicas and retries credit it exactly once.
- Spending happens in the quota reservation itself (bot/services/quota.py); every paid
  credit, debit and refund goes to the user's ledger (``ledger:{<user>}``, a stream).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.types import StarTransaction, TransactionPartnerUser
from redis.asyncio import Redis
from redis.exceptions import RedisError

from bot.catalog import Catalog, PackSpec, PlanSpec
from bot.services.gate import started
from bot.services.quota import LEDGER_LENGTH, ledger_key, paid_key
from bot.texts import Texts, texts_for

log = logging.getLogger(__name__)

CURRENCY = "XTR"
SUBSCRIPTION_PERIOD = 2_592_000  # 30 days, the only period Telegram accepts
PAYLOAD_MAX_AGE = 48 * 3600  # an invoice older than this is refused at checkout
MAX_PAYLOAD = 128  # bytes, Telegram's limit
STATS_TTL = 40 * 86400  # /stats payment counters per day
RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0, 5.0)  # then every 5 s, up to CREDIT_PATIENCE
CREDIT_PATIENCE = 600.0  # seconds a successful payment waits for Redis before giving up

# KEYS[1]: the user's paid hash; KEYS[2]: their ledger. ARGV: charge id, kind ("pack" or
# "plan"), product id, credits (a pack) or daily allowance (a plan), stars, the plan's
# end (unix seconds; 0 for a pack), ledger length. Returns {new (1/0), balance, plan end}.
_CREDIT = """
local paid, ledger = KEYS[1], KEYS[2]
local charge, kind, product = ARGV[1], ARGV[2], ARGV[3]
local amount, stars, ends = tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6])
local field = 'c:' .. charge
if redis.call('HEXISTS', paid, field) == 1 then
  return {0, tonumber(redis.call('HGET', paid, 'balance') or '0'),
    tonumber(redis.call('HGET', paid, 'plan_end') or '0')}
end
redis.call('HSET', paid, field, kind .. '|' .. product .. '|' .. amount .. '|' .. stars)
if kind == 'pack' then
  redis.call('HINCRBY', paid, 'balance', amount)
else
  redis.call('HSET', paid, 'plan', product, 'plan_daily', amount)
  if ends > tonumber(redis.call('HGET', paid, 'plan_end') or '0') then
    redis.call('HSET', paid, 'plan_end', ends)
  end
end
redis.call('XADD', ledger, 'MAXLEN', '~', ARGV[7], '*', 'kind', kind, 'product', product,
  'credits', kind == 'pack' and amount or 0, 'stars', stars, 'charge', charge)
return {1, tonumber(redis.call('HGET', paid, 'balance') or '0'),
  tonumber(redis.call('HGET', paid, 'plan_end') or '0')}
"""

# KEYS as for _CREDIT. ARGV: charge id, now, ledger length. Takes back what is left of a
# refunded pack's credits (never below zero) or ends a refunded plan. Returns {removed,
# already spent}; {-1, 0} for an unknown charge, {-2, 0} for one refunded already.
_TAKE_BACK = """
local paid, ledger, charge = KEYS[1], KEYS[2], ARGV[1]
local field = 'c:' .. charge
local record = redis.call('HGET', paid, field)
if not record then return {-1, 0} end
if string.sub(record, -2) == '|r' then return {-2, 0} end
local kind, product, amount = string.match(record, '^(%a+)|([^|]*)|(%d+)|')
amount = tonumber(amount)
local removed, spent = 0, 0
if kind == 'pack' then
  local balance = tonumber(redis.call('HGET', paid, 'balance') or '0')
  removed = math.min(amount, math.max(balance, 0))
  spent = amount - removed
  redis.call('HINCRBY', paid, 'balance', -removed)
elseif redis.call('HGET', paid, 'plan') == product then
  redis.call('HSET', paid, 'plan_end', ARGV[2])
end
redis.call('HSET', paid, field, record .. '|r')
redis.call('XADD', ledger, 'MAXLEN', '~', ARGV[3], '*', 'kind', 'refund', 'product', product,
  'credits', -removed, 'charge', charge)
return {removed, spent}
"""


class PayloadError(ValueError):
    """A payload that is not ours, altered, or for another user, product or price."""


@dataclass(frozen=True)
class Payload:
    kind: str  # "pack" or "plan"
    product: str
    stars: int
    user_id: int
    issued: int  # unix seconds
    nonce: str


class Signer:
    """Invoice payloads: ``k.product.stars.user.issued.nonce.signature`` (≤ 128 bytes)."""

    def __init__(self, key: bytes) -> None:
        self.key = key

    @classmethod
    def for_bot(cls, bot_token: str, secret: str | None) -> Signer:
        material = secret if secret else "payments:" + bot_token
        return cls(hashlib.sha256(material.encode()).digest())

    def _sign(self, body: str) -> str:
        digest = hmac.new(self.key, body.encode(), hashlib.sha256).digest()[:16]
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def make(self, kind: str, product: str, stars: int, user_id: int, now: float) -> str:
        body = f"{kind[:2]}.{product}.{stars}.{user_id}.{int(now):x}.{secrets.token_hex(4)}"
        payload = f"{body}.{self._sign(body)}"
        assert len(payload.encode()) <= MAX_PAYLOAD
        return payload

    def read(self, payload: str) -> Payload:
        """The payload's contents if its signature holds; PayloadError otherwise."""
        body, _, signature = payload.rpartition(".")
        if not body or not hmac.compare_digest(self._sign(body), signature):
            raise PayloadError("bad signature")
        try:
            kind, product, stars, user, issued, nonce = body.split(".")
            kinds = {"pa": "pack", "pl": "plan"}
            return Payload(kinds[kind], product, int(stars), int(user), int(issued, 16), nonce)
        except (ValueError, KeyError):
            raise PayloadError("malformed") from None


@dataclass(frozen=True)
class Balance:
    credits: int
    plan: str | None  # the active plan's id
    plan_daily: int
    plan_end: int  # unix seconds; 0 without a plan


@dataclass(frozen=True)
class Credited:
    new: bool  # False: this charge was credited before (a redelivery)
    balance: int
    plan_end: int


class Payments:
    def __init__(
        self,
        redis: Redis,
        catalog: Catalog,
        signer: Signer,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.redis = redis
        self.catalog = catalog
        self.signer = signer
        self.clock = clock
        self._credit = redis.register_script(_CREDIT)
        self._take_back = redis.register_script(_TAKE_BACK)

    def product(self, product_id: str) -> PackSpec | PlanSpec | None:
        return self.catalog.packs.get(product_id) or self.catalog.plans.get(product_id)

    def payload_for(self, product: PackSpec | PlanSpec, user_id: int) -> str:
        kind = "pack" if isinstance(product, PackSpec) else "plan"
        return self.signer.make(kind, product.id, product.stars, user_id, self.clock())

    def check(self, payload: str, user_id: int, total: int, currency: str) -> Payload:
        """A checkout's payload, or PayloadError saying why it is refused."""
        data = self.signer.read(payload)
        product = self.product(data.product)
        kind = "pack" if isinstance(product, PackSpec) else "plan"
        if product is None or kind != data.kind:
            raise PayloadError("unknown product")
        if data.user_id != user_id:
            raise PayloadError("another user")
        if currency != CURRENCY or not data.stars == product.stars == total:
            raise PayloadError("price")
        if self.clock() - data.issued > PAYLOAD_MAX_AGE:
            raise PayloadError("stale")
        return data

    async def reachable(self) -> bool:
        try:
            await asyncio.wait_for(self.redis.ping(), 3)
        except (RedisError, OSError, TimeoutError):
            return False
        return True

    async def credit(
        self, user_id: int, charge_id: str, data: Payload, expires: int | None
    ) -> Credited:
        """Credit one payment, once per charge id (RedisError when Redis is away)."""
        if data.kind == "pack":
            pack = self.catalog.packs.get(data.product)
            amount, ends = (pack.credits if pack else 0), 0
            if pack is None:  # sold, then removed from the catalog: credit what was sold
                log.error("payment %s: pack %r is gone from the catalog", charge_id, data.product)
        else:
            plan = self.catalog.plans.get(data.product)
            amount = plan.daily_limit if plan else 0
            ends = expires or int(self.clock()) + SUBSCRIPTION_PERIOD
        keys = [paid_key(user_id), ledger_key(user_id)]
        args: list[Any] = [charge_id, data.kind, data.product, amount, data.stars, ends]
        args.append(LEDGER_LENGTH)
        new, balance, plan_end = await self._credit(keys=keys, args=args)
        if new:
            try:
                stats = self.stats_key(self.today())
                async with self.redis.pipeline(transaction=False) as pipe:
                    pipe.hincrby(stats, "stars", data.stars)
                    pipe.expire(stats, STATS_TTL)
                    await pipe.execute()
            except RedisError as exc:
                log.warning("payment %s: /stats not counted: %s", charge_id, exc)
        return Credited(bool(new), int(balance), int(plan_end))

    async def credit_patiently(
        self, user_id: int, charge_id: str, data: Payload, expires: int | None
    ) -> Credited:
        """Credit, retrying with backoff while Redis is away: a payment Telegram took is
        never dropped (past CREDIT_PATIENCE, start-up reconciliation credits it)."""
        deadline = time.monotonic() + CREDIT_PATIENCE
        attempt = 0
        while True:
            try:
                return await self.credit(user_id, charge_id, data, expires)
            except (RedisError, OSError) as exc:
                if time.monotonic() > deadline:
                    raise
                delay = RETRY_DELAYS[min(attempt, len(RETRY_DELAYS) - 1)]
                attempt += 1
                started()  # waiting on Redis: give the start gate's slot to other updates
                log.warning(
                    "payment %s not credited yet (%s): retry in %.1fs", charge_id, exc, delay
                )
                await asyncio.sleep(delay)

    async def take_back(self, user_id: int, charge_id: str) -> tuple[int, int]:
        """After a refund: (credits removed, already spent); (-1, 0) unknown charge,
        (-2, 0) refunded already."""
        keys = [paid_key(user_id), ledger_key(user_id)]
        removed, spent = await self._take_back(
            keys=keys, args=[charge_id, int(self.clock()), LEDGER_LENGTH]
        )
        return int(removed), int(spent)

    async def charge(self, user_id: int, charge_id: str) -> str | None:
        raw = await self.redis.hget(paid_key(user_id), f"c:{charge_id}")
        return raw.decode() if isinstance(raw, bytes) else raw

    async def balance(self, user_id: int) -> Balance:
        raw = await self.redis.hmget(paid_key(user_id), "balance", "plan", "plan_daily", "plan_end")
        credits, plan, daily, end = (v.decode() if isinstance(v, bytes) else v for v in raw)
        plan_end = int(end or 0)
        active = plan is not None and plan_end > self.clock()
        return Balance(
            int(credits or 0),
            plan if active else None,
            int(daily or 0) if active else 0,
            plan_end if active else 0,
        )

    async def note_subscription(self, user_id: int, state: str, payload: str) -> None:
        product = payload.split(".")[1] if payload.count(".") >= 6 else ""
        await self.redis.xadd(
            ledger_key(user_id),
            {"kind": "subscription", "state": state, "product": product},
            maxlen=LEDGER_LENGTH,
            approximate=True,
        )

    def today(self) -> str:
        return time.strftime("%Y-%m-%d", time.gmtime(self.clock()))

    @staticmethod
    def stats_key(date: str) -> str:
        return f"paystats:{date}"

    async def today_totals(self) -> tuple[int, int]:
        """/stats: Stars received today (UTC) and paid credits spent."""
        stars, spent = await self.redis.hmget(self.stats_key(self.today()), "stars", "spent")
        return int(stars or 0), int(spent or 0)

    async def ledger(self, user_id: int, count: int = 100) -> list[dict[str, str]]:
        entries: Any = await self.redis.xrevrange(ledger_key(user_id), count=count)
        return [{_text(k): _text(v) for k, v in fields.items()} for _, fields in entries]

    async def reconcile(self, bot: Bot, limit: int = 100) -> int:
        """Credit every recent Stars payment Telegram has that we never credited (a crash
        between Telegram's charge and our credit). Returns how many were credited."""
        found = await bot.get_star_transactions(offset=0, limit=limit)
        credited = 0
        for transaction in found.transactions:
            credited += await self._reconcile_one(bot, transaction)
        if credited:
            log.warning("reconciliation: %d missed payment(s) credited", credited)
        return credited

    def confirmation(self, texts: Texts, data: Payload, done: Credited) -> str:
        """What the user is told once a payment is credited: the new balance, or the plan
        and its end."""
        if data.kind == "pack":
            pack = self.catalog.packs.get(data.product)
            return texts.paid_pack.format(credits=pack.credits if pack else 0, balance=done.balance)
        plan = self.catalog.plans.get(data.product)
        ends = datetime.fromtimestamp(done.plan_end, UTC).strftime("%Y-%m-%d")
        return texts.paid_plan.format(title=plan.title if plan else data.product, date=ends)

    async def _reconcile_one(self, bot: Bot, transaction: StarTransaction) -> int:
        source = transaction.source
        if not isinstance(source, TransactionPartnerUser) or not source.invoice_payload:
            return 0
        try:
            data = self.signer.read(source.invoice_payload)
        except PayloadError:
            return 0  # not one of our invoices
        if data.user_id != source.user.id:
            return 0
        expires = None
        if data.kind == "plan":
            expires = _timestamp(transaction.date) + SUBSCRIPTION_PERIOD
        done = await self.credit(data.user_id, transaction.id, data, expires)
        if done.new:  # the user never heard of it: tell them now
            texts = texts_for(source.user.language_code)
            with contextlib.suppress(TelegramAPIError):
                await bot.send_message(data.user_id, self.confirmation(texts, data, done))
        return int(done.new)


def _timestamp(value: Any) -> int:
    return int(value.timestamp()) if hasattr(value, "timestamp") else int(value)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
