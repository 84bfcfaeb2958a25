"""The quota service against a real Redis: exact, atomic, refundable, day-bound."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from redis.asyncio import Redis

from bot.catalog import Catalog, load_catalog
from bot.services.quota import Grant, Quota

CATALOG = """\
[defaults]
model = "cheap"
daily_limit = {overall}

[providers.p]
kind = "ollama"
base_url = "http://127.0.0.1:1"

[[models]]
id = "cheap"
title = "Cheap"
provider = "p"
name = "cheap"

[[models]]
id = "capped"
title = "Capped"
provider = "p"
name = "capped"
daily_limit = {capped}

[[models]]
id = "dear"
title = "Dear"
provider = "p"
name = "dear"
cost = 4
"""

UTC = ZoneInfo("UTC")


class Clock:
    def __init__(self, when: datetime) -> None:
        self.now = when.timestamp()

    def __call__(self) -> float:
        return self.now


def catalog(tmp_path: Path, overall: int = 10, capped: int = 5) -> Catalog:
    path = tmp_path / "models.toml"
    path.write_text(CATALOG.format(overall=overall, capped=capped))
    return load_catalog(path, {})


@pytest.fixture
async def redis(redis_url: str):
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


def quota(redis: Redis, cat: Catalog, **kwargs) -> Quota:
    return Quota(redis, cat, kwargs.pop("tz", UTC), **kwargs)


async def test_counts_are_exact(redis: Redis, tmp_path: Path) -> None:
    cat = catalog(tmp_path)
    q = quota(redis, cat)
    for _ in range(3):
        r = await q.reserve(7, [cat.models["cheap"]])
        assert r.ok("cheap")
    usage = await q.usage(7)
    assert usage.total == 3 and usage.per_model == {"cheap": 3}
    assert (await q.usage(8)).total == 0  # another user


async def test_model_cap_then_denied(redis: Redis, tmp_path: Path) -> None:
    cat = catalog(tmp_path, overall=0, capped=3)
    q = quota(redis, cat)
    grants = [(await q.reserve(1, [cat.models["capped"]])).grants["capped"] for _ in range(5)]
    assert grants == [Grant.OK] * 3 + [Grant.MODEL_CAP] * 2
    assert (await q.usage(1)).per_model == {"capped": 3}  # denials count nothing


async def test_overall_cap_in_credits_with_costs(redis: Redis, tmp_path: Path) -> None:
    cat = catalog(tmp_path, overall=10)
    q = quota(redis, cat)
    dear, cheap = cat.models["dear"], cat.models["cheap"]
    assert (await q.reserve(1, [dear])).ok("dear")  # 4
    assert (await q.reserve(1, [dear])).ok("dear")  # 8
    third = await q.reserve(1, [dear])  # 12 > 10: refused, nothing counted
    assert third.grants["dear"] == Grant.OVERALL_CAP
    assert (await q.reserve(1, [cheap])).ok("cheap")  # 9
    assert (await q.reserve(1, [cheap])).ok("cheap")  # 10
    assert (await q.reserve(1, [cheap])).grants["cheap"] == Grant.OVERALL_CAP
    usage = await q.usage(1)
    assert usage.total == 10 and usage.per_model == {"dear": 2, "cheap": 2}


async def test_model_cap_is_checked_before_overall_and_both_or_none(
    redis: Redis, tmp_path: Path
) -> None:
    cat = catalog(tmp_path, overall=3, capped=5)
    q = quota(redis, cat)
    for _ in range(3):
        assert (await q.reserve(1, [cat.models["capped"]])).ok("capped")
    # the model's cap has room (3 of 5) but the allowance is spent: nothing is counted
    denied = await q.reserve(1, [cat.models["capped"]])
    assert denied.grants["capped"] == Grant.OVERALL_CAP
    assert (await q.usage(1)).per_model["capped"] == 3


async def test_several_models_in_one_call(redis: Redis, tmp_path: Path) -> None:
    cat = catalog(tmp_path, overall=5, capped=0)
    q = quota(redis, cat)
    models = [cat.models["cheap"], cat.models["dear"], cat.models["capped"]]
    r = await q.reserve(1, models)
    assert r.grants == {"cheap": Grant.OK, "dear": Grant.OK, "capped": Grant.OVERALL_CAP}
    assert (await q.usage(1)).total == 5


async def test_concurrent_reservations_from_two_clients_never_exceed_the_cap(
    redis_url: str, tmp_path: Path
) -> None:
    """50 reservations at once from two connections (as two bot processes) for cap 5."""
    cat = catalog(tmp_path, overall=0, capped=5)
    one, two = Redis.from_url(redis_url), Redis.from_url(redis_url)
    try:
        q1, q2 = quota(one, cat), quota(two, cat)
        model = cat.models["capped"]
        results = await asyncio.gather(
            *(q.reserve(42, [model]) for q in (q1, q2) for _ in range(25))
        )
        assert sum(r.ok("capped") for r in results) == 5
        assert (await q1.usage(42)).per_model == {"capped": 5}
    finally:
        await one.aclose()
        await two.aclose()


async def test_refund_is_exact_and_idempotent(redis: Redis, tmp_path: Path) -> None:
    cat = catalog(tmp_path, overall=10)
    q = quota(redis, cat)
    first = await q.reserve(1, [cat.models["dear"]])
    await q.reserve(1, [cat.models["cheap"]])
    assert await q.refund(first, ["dear"]) == 4
    assert await q.refund(first, ["dear"]) == 0  # twice: nothing more
    usage = await q.usage(1)
    assert usage.total == 1 and usage.per_model == {"dear": 0, "cheap": 1}
    # a refunded request id cannot be reserved again (it would count a retried failure)
    again = await q.reserve(1, [cat.models["dear"]], request_id=first.request_id)
    assert again.grants["dear"] == Grant.REFUNDED
    assert (await q.usage(1)).total == 1


async def test_refund_of_one_model_of_several(redis: Redis, tmp_path: Path) -> None:
    cat = catalog(tmp_path, overall=0)
    q = quota(redis, cat)
    r = await q.reserve(1, [cat.models["cheap"], cat.models["dear"]])
    assert await q.refund(r, ["dear"]) == 4
    usage = await q.usage(1)
    assert usage.total == 1 and usage.per_model == {"cheap": 1, "dear": 0}


async def test_a_retried_reservation_counts_once(redis: Redis, tmp_path: Path) -> None:
    cat = catalog(tmp_path)
    q = quota(redis, cat)
    first = await q.reserve(1, [cat.models["dear"]], request_id="req-1")
    retry = await q.reserve(1, [cat.models["dear"]], request_id="req-1")
    assert first.ok("dear") and retry.ok("dear")
    assert (await q.usage(1)).total == 4


async def test_day_rollover_and_refund_across_midnight(redis: Redis, tmp_path: Path) -> None:
    cat = catalog(tmp_path, overall=2)
    clock = Clock(datetime(2026, 3, 1, 23, 59, 30, tzinfo=UTC))
    q = quota(redis, cat, clock=clock)
    late = await q.reserve(1, [cat.models["cheap"]])
    assert (await q.reserve(1, [cat.models["cheap"]])).ok("cheap")
    assert not (await q.reserve(1, [cat.models["cheap"]])).ok("cheap")  # 2 of 2 used
    assert late.resets_at == datetime(2026, 3, 2, tzinfo=UTC)
    clock.now += 60  # 00:00:30 the next day: a fresh allowance
    assert (await q.usage(1)).total == 0
    assert (await q.reserve(1, [cat.models["cheap"]])).ok("cheap")
    # yesterday's failed request is refunded into yesterday, not today
    assert await q.refund(late, ["cheap"]) == 1
    assert (await q.usage(1)).total == 1
    assert await redis.hget(late.key, "total") == b"1"


async def test_the_day_is_the_limits_timezone_day(redis: Redis, tmp_path: Path) -> None:
    cat = catalog(tmp_path, overall=1)
    moscow = ZoneInfo("Europe/Moscow")  # UTC+3
    # 22:30 UTC on March 1st is already March 2nd, 01:30, in Moscow
    clock = Clock(datetime(2026, 3, 1, 22, 30, tzinfo=UTC))
    q = quota(redis, cat, tz=moscow, clock=clock)
    r = await q.reserve(1, [cat.models["cheap"]])
    assert r.key.endswith(":2026-03-02")
    assert r.resets_at == datetime(2026, 3, 3, tzinfo=moscow)
    clock.now = datetime(2026, 3, 2, 20, 59, tzinfo=UTC).timestamp()  # 23:59 in Moscow
    assert not (await q.reserve(1, [cat.models["cheap"]])).ok("cheap")
    clock.now = datetime(2026, 3, 2, 21, 0, 1, tzinfo=UTC).timestamp()  # 00:00:01 Moscow
    assert (await q.reserve(1, [cat.models["cheap"]])).ok("cheap")


async def test_dst_day_resets_at_the_real_midnight(redis: Redis, tmp_path: Path) -> None:
    berlin = ZoneInfo("Europe/Berlin")  # clocks go forward on 2026-03-29
    clock = Clock(datetime(2026, 3, 29, 12, 0, tzinfo=berlin))
    q = quota(redis, catalog(tmp_path), tz=berlin, clock=clock)
    _, resets_at = q.day()
    assert resets_at == datetime(2026, 3, 30, 0, 0, tzinfo=berlin)
    assert resets_at.utcoffset() is not None and resets_at.utcoffset().total_seconds() == 7200


async def test_every_key_expires_after_its_day(redis: Redis, tmp_path: Path) -> None:
    cat = catalog(tmp_path)
    clock = Clock(datetime(2026, 5, 5, 18, 0, tzinfo=UTC))
    q = quota(redis, cat, clock=clock)
    r = await q.reserve(1, [cat.models["cheap"]])
    await q.refund(r, ["cheap"])
    keys = [k async for k in redis.scan_iter("quota:*")]
    assert keys
    for key in keys:
        # 6 hours to midnight, plus the hour's margin
        assert 7 * 3600 - 5 <= await redis.ttl(key) <= 7 * 3600


async def test_admins_are_never_counted(redis: Redis, tmp_path: Path) -> None:
    cat = catalog(tmp_path, overall=1, capped=1)
    q = quota(redis, cat, admins=frozenset({99}))
    for _ in range(5):
        r = await q.reserve(99, [cat.models["capped"], cat.models["dear"]])
        assert r.granted == ["capped", "dear"] and r.exempt
        assert await q.refund(r, ["capped"]) == 0
    assert [k async for k in redis.scan_iter("quota:*")] == []


# --- paid credits (SPEC "Paid credits with Telegram Stars") ------------------------------


async def test_paid_credits_pay_past_the_free_limits_all_or_nothing(
    redis: Redis, tmp_path: Path
) -> None:
    cat = catalog(tmp_path, overall=4, capped=1)
    q = quota(redis, cat)
    await redis.hset("paid:{1}", "balance", 6)
    dear, capped = cat.models["dear"], cat.models["capped"]
    assert (await q.reserve(1, [dear])).grants["dear"] == Grant.OK  # free: 4 of 4
    paid = await q.reserve(1, [dear], request_id="r2")  # the allowance refuses: paid, 6 -> 2
    assert paid.grants["dear"] == Grant.PAID and paid.ok("dear") and paid.paid("dear")
    assert (await q.reserve(1, [dear], request_id="r2")).grants["dear"] == Grant.PAID  # again
    assert (await q.reserve(1, [dear])).grants["dear"] == Grant.OVERALL_CAP  # 2 < 4: nothing
    assert int(await redis.hget("paid:{1}", "balance")) == 2
    # the model's own cap refuses: 1 paid credit
    assert (await q.reserve(1, [capped])).grants["capped"] == Grant.PAID
    assert int(await redis.hget("paid:{1}", "balance")) == 1
    # a refund goes back where it came from, once
    assert await q.refund(paid, ["dear"]) == 4
    assert await q.refund(paid, ["dear"]) == 0
    assert int(await redis.hget("paid:{1}", "balance")) == 5
    usage = await q.usage(1)
    assert usage.total == 4  # paid requests never touch the free allowance
    kinds = [f[b"kind"] for _, f in await redis.xrange("ledger:{1}")]
    assert kinds == [b"debit", b"debit", b"refund"]
    # /stats: a paid request's spending rides on its stats pipeline (Admission); a refund
    # of paid credits takes them back here
    assert int(await redis.hget(f"paystats:{datetime.now(UTC):%Y-%m-%d}", "spent")) == -4


async def test_an_active_plan_raises_the_overall_allowance(redis: Redis, tmp_path: Path) -> None:
    cat = catalog(tmp_path, overall=2)
    clock = Clock(datetime(2026, 3, 1, 12, tzinfo=UTC))
    q = quota(redis, cat, clock=clock)
    cheap = cat.models["cheap"]
    await redis.hset("paid:{1}", mapping={"plan_daily": 3, "plan_end": int(clock.now) + 60})
    grants = [(await q.reserve(1, [cheap])).grants["cheap"] for _ in range(4)]
    assert grants == [Grant.OK] * 3 + [Grant.OVERALL_CAP]
    clock.now += 120  # the plan ended: back to the free 2 (3 used already)
    assert (await q.reserve(1, [cheap])).grants["cheap"] == Grant.OVERALL_CAP
    assert not await redis.exists("ledger:{1}")  # no paid credit moved
