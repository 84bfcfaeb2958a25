"""Free daily limits: atomic Redis counters per user, per model and overall.

All of one user's counters for one day live in one hash, ``quota:{<user>}:<date>``
(the date in LIMITS_TIMEZONE; the ``{user}`` hash tag keeps every key of a user in one
Redis Cluster slot), expiring an hour after that day ends. Fields:

- ``total``: credits used today over all models (each request costs its model's ``cost``);
- ``m:<model>``: requests to that model today;
- ``r:<request>:<model>``: one reservation: its cost while it stands, ``x`` once refunded.

A request *reserves* before any provider is called: one Lua script checks every cap the
request touches (the overall allowance and each model's own cap) and counts them all, or
none. Reserving again with the same request id changes nothing and reports the same
grant, so a client-side retry never counts twice. A reservation stands (the request is
counted) unless it is *refunded*: that happens when the provider failed before any text
reached the user. An answer that fails halfway keeps its reservation: the user saw part
of an answer and the provider was paid for it. A refund is idempotent and always goes to
the day of the reservation, even after midnight.

Paid credits (SPEC "Paid credits with Telegram Stars") ride in the same script: the
user's ``paid:{<user>}`` hash holds a balance (no expiry) and any plan (``plan_daily``
raises the overall allowance until ``plan_end``). Where a free limit would refuse a
model, its whole cost comes from the paid balance if that covers it (``Grant.PAID``;
the reservation field holds ``p<cost>``), and a refund gives it back to the balance;
every paid debit and refund goes to the user's ledger stream. Still one round trip.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import IntEnum
from typing import Any, cast
from zoneinfo import ZoneInfo

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import RedisError

from bot.catalog import Catalog, ModelSpec
from bot.redis_client import Replicated

log = logging.getLogger(__name__)

PAYSTATS_TTL = 40 * 86400  # /stats payment counters per day (bot/services/payments.py)
EXPIRY_MARGIN = 3600  # seconds a day's key outlives the day (late refunds, clock skew)

# KEYS[1]: the day's hash; KEYS[2]: the user's paid hash (balance, plan); KEYS[3]: the
# user's ledger (a stream). ARGV: request id, seconds to keep the day, overall cap, now
# (unix seconds), ledger length, then per model: id, cost, own cap. Returns one code per
# model (Grant; 5: PAID by an earlier call), in order. A free limit that would refuse a
# model is passed with paid credits when the balance covers the model's cost (all of it
# or nothing); an active plan's daily allowance stands in for the overall cap when larger.
_RESERVE = """
local key, paid, ledger, rid = KEYS[1], KEYS[2], KEYS[3], ARGV[1]
local overall = tonumber(ARGV[3])
local now = tonumber(ARGV[4])
if tonumber(redis.call('HGET', paid, 'plan_end') or '0') > now then
  local daily = tonumber(redis.call('HGET', paid, 'plan_daily') or '0')
  if overall > 0 and daily > overall then overall = daily end
end
local total = tonumber(redis.call('HGET', key, 'total') or '0')
local balance = nil
local result = {}
for i = 6, #ARGV, 3 do
  local model, cost, cap = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  local field = 'r:' .. rid .. ':' .. model
  local previous = redis.call('HGET', key, field)
  if previous and previous ~= 'x' then
    if string.sub(previous, 1, 1) == 'p' then result[#result + 1] = 5
    else result[#result + 1] = 0 end
  elseif previous then
    result[#result + 1] = 3
  else
    local code = 0
    if cap > 0 and tonumber(redis.call('HGET', key, 'm:' .. model) or '0') >= cap then
      code = 1
    elseif overall > 0 and total + cost > overall then
      code = 2
    end
    if code == 0 then
      total = total + cost
      redis.call('HINCRBY', key, 'm:' .. model, 1)
      redis.call('HINCRBY', key, 'total', cost)
      redis.call('HSET', key, field, cost)
    elseif cost > 0 then
      if balance == nil then balance = tonumber(redis.call('HGET', paid, 'balance') or '0') end
      if balance >= cost then
        balance = balance - cost
        redis.call('HINCRBY', paid, 'balance', -cost)
        redis.call('HINCRBY', key, 'm:' .. model, 1)
        redis.call('HSET', key, field, 'p' .. cost)
        redis.call('XADD', ledger, 'MAXLEN', '~', ARGV[5], '*', 'kind', 'debit',
          'credits', -cost, 'model', model, 'request', rid)
        code = 4
      end
    end
    result[#result + 1] = code
  end
end
redis.call('EXPIRE', key, ARGV[2])
return result
"""

# KEYS as for _RESERVE. ARGV: request id, ledger length, then model ids. Gives each
# credit back where it came from (the day's counters, or the paid balance). Returns
# {credits given back, of which paid}.
_REFUND = """
local key, paid, ledger, rid = KEYS[1], KEYS[2], KEYS[3], ARGV[1]
local back, paid_back = 0, 0
for i = 3, #ARGV do
  local model = ARGV[i]
  local field = 'r:' .. rid .. ':' .. model
  local cost = redis.call('HGET', key, field)
  if cost and cost ~= 'x' then
    redis.call('HINCRBY', key, 'm:' .. model, -1)
    if string.sub(cost, 1, 1) == 'p' then
      local credits = tonumber(string.sub(cost, 2))
      redis.call('HINCRBY', paid, 'balance', credits)
      redis.call('XADD', ledger, 'MAXLEN', '~', ARGV[2], '*', 'kind', 'refund',
        'credits', credits, 'model', model, 'request', rid)
      back = back + credits
      paid_back = paid_back + credits
    else
      redis.call('HINCRBY', key, 'total', -tonumber(cost))
      back = back + tonumber(cost)
    end
    redis.call('HSET', key, field, 'x')
  end
end
return {back, paid_back}
"""

LEDGER_LENGTH = 1000  # entries kept per user's ledger (approximately: MAXLEN ~)


def paid_key(user_id: int) -> str:
    """A user's paid balance and plan (no expiry): ``balance``, ``plan``, ``plan_daily``,
    ``plan_end``, and ``c:<charge id>`` per payment credited."""
    return f"paid:{{{user_id}}}"


def ledger_key(user_id: int) -> str:
    """A user's ledger of paid credits and debits (a stream, trimmed to LEDGER_LENGTH)."""
    return f"ledger:{{{user_id}}}"


class Grant(IntEnum):
    OK = 0
    MODEL_CAP = 1  # the model's own daily cap is used up
    OVERALL_CAP = 2  # the overall daily allowance cannot cover the cost
    REFUNDED = 3  # this request id was reserved and refunded already
    PAID = 4  # granted, paid with paid credits (a free limit would have refused it)


@dataclass(frozen=True)
class Reservation:
    """What one reserve call granted; hand it back to ``refund``."""

    key: str  # the day's hash, so that a refund after midnight hits the right day
    request_id: str
    grants: dict[str, Grant]  # model id -> result
    resets_at: datetime  # the end of the day, in LIMITS_TIMEZONE
    exempt: bool = False  # an admin: nothing was counted

    @property
    def date(self) -> str:
        """The day it counts in, as in the key."""
        return self.key.rpartition(":")[2]

    @property
    def granted(self) -> list[str]:
        return [m for m, g in self.grants.items() if g in (Grant.OK, Grant.PAID)]

    def ok(self, model_id: str) -> bool:
        return self.grants.get(model_id) in (Grant.OK, Grant.PAID)

    def paid(self, model_id: str) -> bool:
        return self.grants.get(model_id) == Grant.PAID


@dataclass(frozen=True)
class Usage:
    """Today's counters for one user, for /limits."""

    total: int
    per_model: dict[str, int]
    resets_at: datetime


class Quota:
    def __init__(
        self,
        redis: Redis,
        catalog: Catalog,
        timezone: ZoneInfo,
        admins: frozenset[int] = frozenset(),
        clock: Callable[[], float] = time.time,
        replicated: Replicated | None = None,
    ) -> None:
        self.redis = redis
        self.replicated = replicated or Replicated(0)
        self.catalog = catalog
        self.timezone = timezone
        self.admins = admins
        self.clock = clock
        self._reserve = redis.register_script(_RESERVE)
        self._refund = redis.register_script(_REFUND)

    @property
    def overall_cap(self) -> int:
        return self.catalog.defaults.daily_limit

    def day(self) -> tuple[str, datetime]:
        """Today's date (as in the key) and the moment today ends, in LIMITS_TIMEZONE."""
        now = datetime.fromtimestamp(self.clock(), self.timezone)
        start = now.replace(hour=0, minute=0, second=0, microsecond=0)
        # aware arithmetic is wall-clock arithmetic: the next midnight, even on the
        # 23- and 25-hour days of a DST change
        return start.date().isoformat(), start + timedelta(days=1)

    def key(self, user_id: int, date: str) -> str:
        return f"quota:{{{user_id}}}:{date}"

    def is_exempt(self, user_id: int) -> bool:
        return user_id in self.admins

    async def reserve(
        self, user_id: int, models: Sequence[ModelSpec], request_id: str | None = None
    ) -> Reservation:
        """Count one request to each model, or say which cap stops it. One round trip."""
        date, resets_at = self.day()
        key = self.key(user_id, date)
        request_id = request_id or uuid.uuid4().hex
        if self.is_exempt(user_id):
            grants = dict.fromkeys((m.id for m in models), Grant.OK)
            return Reservation(key, request_id, grants, resets_at, exempt=True)
        now = self.clock()
        keep = int(resets_at.timestamp() - now) + EXPIRY_MARGIN
        args: list[Any] = [request_id, keep, self.overall_cap, int(now), LEDGER_LENGTH]
        for model in models:
            args += [model.id, model.cost, model.daily_limit or 0]
        keys = [key, paid_key(user_id), ledger_key(user_id)]
        codes = await self._reserve_replicated(keys, args)
        # 5: paid by an earlier call with this request id
        grants = {m.id: Grant(min(int(c), 4)) for m, c in zip(models, codes, strict=True)}
        return Reservation(key, request_id, grants, resets_at)

    async def _reserve_replicated(self, keys: list[str], args: list[Any]) -> list[Any]:
        """The reserve script; under Sentinel, sent again (the request id makes it count
        once) until a replica has it, so that a failover cannot let the request through
        unmetered."""
        if not self.replicated.replicas:
            return cast(list[Any], await self._reserve(keys=keys, args=args))
        (codes,) = await self.replicated.execute(
            self.redis, lambda pipe, _: pipe.eval(_RESERVE, len(keys), *keys, *args)
        )
        return cast(list[Any], codes)

    def queue_spent(self, pipe: Pipeline, credits: int) -> None:
        """/stats: paid credits spent today, on a pipeline the request sends anyway (the
        reservation stays one round trip)."""
        key = "paystats:" + time.strftime("%Y-%m-%d", time.gmtime(self.clock()))
        pipe.hincrby(key, "spent", credits)
        pipe.expire(key, PAYSTATS_TTL)

    async def _count_spent(self, credits: int) -> None:
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                self.queue_spent(pipe, credits)
                await pipe.execute()
        except RedisError as exc:
            log.warning("paid credits spent not counted: %s", exc)

    async def refund(self, reservation: Reservation, model_ids: Sequence[str]) -> int:
        """Give back these models' share of a reservation; idempotent. Returns credits."""
        granted = [m for m in model_ids if reservation.ok(m)]
        if reservation.exempt or not granted:
            return 0
        user = reservation.key.split("{", 1)[1].split("}", 1)[0]
        keys = [reservation.key, f"paid:{{{user}}}", f"ledger:{{{user}}}"]
        args: list[Any] = [reservation.request_id, LEDGER_LENGTH, *granted]
        back, paid_back = await self._refund(keys=keys, args=args)
        if paid_back:
            await self._count_spent(-int(paid_back))
        return int(back)

    async def usage(self, user_id: int) -> Usage:
        async with self.redis.pipeline(transaction=False) as pipe:
            self.queue_usage(pipe, user_id)
            (raw,) = await pipe.execute()
        return self.parse_usage(raw)

    def queue_usage(self, pipe: Pipeline, user_id: int) -> None:
        date, _ = self.day()
        pipe.hgetall(self.key(user_id, date))

    def parse_usage(self, raw: Mapping[Any, Any]) -> Usage:
        return _parse_usage(raw, self.day()[1])


def _parse_usage(raw: Mapping[Any, Any], resets_at: datetime) -> Usage:
    total = 0
    per_model: dict[str, int] = {}
    for field, value in raw.items():
        name = field.decode() if isinstance(field, bytes) else str(field)
        if name == "total":
            total = int(value)
        elif name.startswith("m:"):
            per_model[name[2:]] = int(value)
    return Usage(total, per_model, resets_at)
