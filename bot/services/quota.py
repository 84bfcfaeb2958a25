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
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import IntEnum
from typing import Any
from zoneinfo import ZoneInfo

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from bot.catalog import Catalog, ModelSpec

EXPIRY_MARGIN = 3600  # seconds a day's key outlives the day (late refunds, clock skew)

# KEYS[1]: the day's hash. ARGV: request id, seconds to keep it, overall cap, then per
# model: id, cost, own cap. Returns one code per model (Grant), in order.
_RESERVE = """
local key, rid = KEYS[1], ARGV[1]
local overall = tonumber(ARGV[3])
local total = tonumber(redis.call('HGET', key, 'total') or '0')
local result = {}
for i = 4, #ARGV, 3 do
  local model, cost, cap = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  local field = 'r:' .. rid .. ':' .. model
  local previous = redis.call('HGET', key, field)
  if previous and previous ~= 'x' then
    result[#result + 1] = 0
  elseif previous then
    result[#result + 1] = 3
  elseif cap > 0 and tonumber(redis.call('HGET', key, 'm:' .. model) or '0') >= cap then
    result[#result + 1] = 1
  elseif overall > 0 and total + cost > overall then
    result[#result + 1] = 2
  else
    total = total + cost
    redis.call('HINCRBY', key, 'm:' .. model, 1)
    redis.call('HINCRBY', key, 'total', cost)
    redis.call('HSET', key, field, cost)
    result[#result + 1] = 0
  end
end
redis.call('EXPIRE', key, ARGV[2])
return result
"""

# KEYS[1]: the day's hash. ARGV: request id, then model ids. Returns credits given back.
_REFUND = """
local key, rid = KEYS[1], ARGV[1]
local back = 0
for i = 2, #ARGV do
  local model = ARGV[i]
  local field = 'r:' .. rid .. ':' .. model
  local cost = redis.call('HGET', key, field)
  if cost and cost ~= 'x' then
    redis.call('HINCRBY', key, 'm:' .. model, -1)
    redis.call('HINCRBY', key, 'total', -tonumber(cost))
    redis.call('HSET', key, field, 'x')
    back = back + tonumber(cost)
  end
end
return back
"""


class Grant(IntEnum):
    OK = 0
    MODEL_CAP = 1  # the model's own daily cap is used up
    OVERALL_CAP = 2  # the overall daily allowance cannot cover the cost
    REFUNDED = 3  # this request id was reserved and refunded already


@dataclass(frozen=True)
class Reservation:
    """What one reserve call granted; hand it back to ``refund``."""

    key: str  # the day's hash, so that a refund after midnight hits the right day
    request_id: str
    grants: dict[str, Grant]  # model id -> result
    resets_at: datetime  # the end of the day, in LIMITS_TIMEZONE
    exempt: bool = False  # an admin: nothing was counted

    @property
    def granted(self) -> list[str]:
        return [m for m, g in self.grants.items() if g == Grant.OK]

    def ok(self, model_id: str) -> bool:
        return self.grants.get(model_id) == Grant.OK


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
    ) -> None:
        self.redis = redis
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
        keep = int(resets_at.timestamp() - self.clock()) + EXPIRY_MARGIN
        args: list[Any] = [request_id, keep]
        args.append(self.overall_cap)
        for model in models:
            args += [model.id, model.cost, model.daily_limit or 0]
        codes = await self._reserve(keys=[key], args=args)
        grants = {m.id: Grant(int(c)) for m, c in zip(models, codes, strict=True)}
        return Reservation(key, request_id, grants, resets_at)

    async def refund(self, reservation: Reservation, model_ids: Sequence[str]) -> int:
        """Give back these models' share of a reservation; idempotent. Returns credits."""
        granted = [m for m in model_ids if reservation.ok(m)]
        if reservation.exempt or not granted:
            return 0
        back = await self._refund(keys=[reservation.key], args=[reservation.request_id, *granted])
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
