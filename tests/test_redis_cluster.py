"""The bot on a real Redis Cluster of three masters (``REDIS_CLUSTER=1``): the end-to-end
chat, limits, /compare, Stop, Retry, arena and payment tests of the other modules run
here again (their ``redis_url`` is this module's: a node of the cluster), with what only
a cluster shows: the stats spread over the masters, /reload and Stop reaching every
replica through the sharded control channel, reservations racing from two clients, every
master down and back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from bot import redis_client
from bot.check import _check_redis as check_redis
from bot.services.paste import Pastes
from bot.services.stats import SHARDS, Stats
from bot.settings import Settings
from bot.texts import EN
from tests import test_e2e_payments
from tests.conftest import PERMANENT_KEYS
from tests.harness import running_bot, running_webhook_bot
from tests.redis_cluster import RedisClusterServers

# The end-to-end tests run again on the cluster (imported: pytest collects them here,
# where ``redis_url`` is the cluster's). Chosen to cover every Redis path once, not all.
from tests.test_e2e_arena import (  # noqa: F401
    battle,
    test_one_vote_per_battle_and_only_after_both_answers,
)
from tests.test_e2e_chat import (  # noqa: F401
    test_conversation_carries_context_and_new_forgets_it,
    test_two_users_never_share_history,
)
from tests.test_e2e_compare import (  # noqa: F401
    test_a_failing_model_is_refunded_and_does_not_disturb_the_others,
    test_a_vote_counts_once_and_top_shows_it,
    test_continue_with_switches_model_and_seeds_history,
    test_three_models_answer_at_once_each_under_its_title,
)
from tests.test_e2e_limits import (  # noqa: F401
    test_a_provider_failure_costs_nothing,
    test_limits_shows_what_is_left,
    test_model_cap_gives_three_answers_and_two_limit_messages,
    test_overall_allowance_counts_credits,
)
from tests.test_e2e_ops import test_stats_for_admins_only  # noqa: F401
from tests.test_e2e_payments import (  # noqa: F401
    test_paid_credits_pay_when_the_free_allowance_refuses_and_refunds_return_there,
    test_purchase_is_credited_once_and_shown,
    test_two_replicas_credit_a_duplicate_delivery_once,
)
from tests.test_e2e_stop import (  # noqa: F401
    test_a_message_while_answering_is_told_to_wait_and_the_history_stays_clean,
    test_draft_stop_mid_stream_keeps_the_text_closes_the_stream_and_counts,
    test_retry_asks_again_and_a_second_press_is_too_old,
    test_retry_tapped_twice_at_once_asks_once,
    test_stop_command_stops_the_answer_and_says_when_nothing_runs,
    test_stop_pressed_on_the_other_replica_stops_the_answer,
)
from tests.test_history import (  # noqa: F401
    test_append_and_load_keep_the_order,
    test_capped_at_max_messages_oldest_dropped,
    test_replace_starts_afresh,
)
from tests.test_paste import (  # noqa: F401
    test_parts_held_out_of_order_are_joined_in_order,
    test_the_end_of_a_paste_waits_for_a_part_not_held_yet,
)
from tests.test_quota import (  # noqa: F401
    catalog,
    quota,
    test_a_retried_reservation_counts_once,
    test_model_cap_is_checked_before_overall_and_both_or_none,
    test_refund_is_exact_and_idempotent,
    test_several_models_in_one_call,
)
from tests.test_replicas import (  # noqa: F401
    test_alternating_replicas_count_once_and_share_one_history,
    test_an_update_delivered_to_both_replicas_is_answered_once,
)

ADMIN = 4242


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisClusterServers]:
    cluster = RedisClusterServers()
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.cleanup()


def cluster_client(url: str) -> Redis:
    return RedisCluster.from_url(url)  # type: ignore[return-value]


async def keys_without_expiry(url: str) -> list[str]:
    client = RedisCluster.from_url(url)
    try:
        found = []
        async for raw in client.scan_iter(count=1000):
            key = raw.decode(errors="replace")
            permanent = any(p.fullmatch(key) for p in PERMANENT_KEYS)
            if not permanent and await client.ttl(raw) == -1:
                found.append(key)
        return sorted(found)
    finally:
        await client.aclose()


@pytest.fixture
async def redis_url(
    redis_cluster: RedisClusterServers, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[str]:
    """A node of the cluster (empty), with ``REDIS_CLUSTER=1`` for the bot's settings;
    afterwards no key the test left may lack an expiry."""
    redis_cluster.flush()
    monkeypatch.setenv("REDIS_CLUSTER", "1")
    # the payments tests read a paid hash back with a client of one Redis: a cluster's here
    monkeypatch.setattr(test_e2e_payments, "Redis", RedisCluster)
    yield redis_cluster.url
    found = await keys_without_expiry(redis_cluster.url)
    assert not found, f"keys without an expiry left in the cluster: {found}"


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = cluster_client(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def pastes(redis: Redis) -> Pastes:
    return Pastes(redis)


async def test_the_cluster_has_three_masters_and_the_bot_uses_them(redis_url: str) -> None:
    client = RedisCluster.from_url(redis_url)
    try:
        await client.initialize()
        assert len(client.get_primaries()) == 3
        # a user's keys share a slot; the stats shards do not all share one
        slots = {client.keyslot(k) for k in ("quota:{7}:d", "prefs:{7}", "history:{7}:7")}
        assert len(slots) == 1
        stats = Stats(client, 1)  # type: ignore[arg-type]
        shard_slots = {client.keyslot(stats._keys("d", s)[0]) for s in range(SHARDS)}
        nodes = {client.nodes_manager.get_node_from_slot(s).name for s in shard_slots}
        assert len(nodes) == 3
    finally:
        await client.aclose()


async def test_two_clients_racing_never_pass_the_cap(redis_url: str, tmp_path: Path) -> None:
    """50 reservations at once from two cluster clients (as two bot processes), cap 5."""
    cat = catalog(tmp_path, overall=0, capped=5)
    one, two = cluster_client(redis_url), cluster_client(redis_url)
    try:
        for client in (one, two):
            await redis_client.ready(client)  # as the bot does at start
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


async def test_stats_add_up_over_the_shards(redis_url: str, tmp_path: Path) -> None:
    """Twenty users counted in shards on every master; /stats adds them up."""
    async with running_bot(redis_url, tmp_path, admin_ids=frozenset({ADMIN})) as h:
        users = [h.tg.user(first_name=f"U{i}") for i in range(20)]
        for user in users:
            await user.send("hello")
        for user in users:
            assert (await user.next_message(timeout=10))["text"] == "echo: hello"
        boss = h.tg.user(id=ADMIN, first_name="Boss")
        await asyncio.sleep(0.3)  # the last answers record their outcome
        await boss.send("/stats")
        text = (await boss.next_message())["text"]
        assert text.splitlines()[0].endswith(": 20 users"), text
        assert "GPT Test: 20 requests" in text, text
    client = RedisCluster.from_url(redis_url)
    try:
        keys = [k async for k in client.scan_iter(match="stats:*:users")]
        nodes = {client.get_node_from_key(k).name for k in keys}
        assert len(keys) > 1 and len(nodes) > 1, (keys, nodes)
    finally:
        await client.aclose()


async def test_reload_reaches_the_other_replica(redis_url: str, tmp_path: Path) -> None:
    """/reload on one replica re-reads the catalog on the other, through the sharded
    control channel."""
    async with running_webhook_bot(
        redis_url, tmp_path, replicas=2, admin_ids=frozenset({ADMIN})
    ) as h:
        other = h.replicas[1].app
        path = h.settings.models_file
        path.write_text(path.read_text().replace('"Mistral Test"', '"Mistral Renamed"'))
        boss = h.tg.user(id=ADMIN, first_name="Boss")
        await boss.send("/reload")  # the balancer hands the first update to replica 0
        assert "reloaded" in (await boss.next_message())["text"]
        async with asyncio.timeout(10):
            while other.catalog.models["mistral"].title != "Mistral Renamed":
                await asyncio.sleep(0.05)
        assert h.balancer is not None and [r for _, r in h.balancer.routed] == [0]


async def test_two_replicas_race_for_one_arena_vote(redis_url: str, tmp_path: Path) -> None:
    """The vote script (the battle and the user's votes of the day: one slot) counts one
    of two presses racing on two replicas; the pair counter lives on its own slot."""
    async with running_webhook_bot(redis_url, tmp_path, replicas=2) as h:
        assert h.balancer is not None
        ann = h.tg.user(first_name="Ann")
        second = await battle(h, ann, "replicated?")
        presses = [
            await ann.click(label, message_id=second["message_id"])
            for label in (EN.arena_a_better, EN.arena_b_better)
        ]
        answers = [(await h.tg.wait_callback_answer(q["id"])).params["text"] for q in presses]
        assert sorted(answers) == sorted([EN.arena_counted, EN.arena_already])
        assert len(set(dict(h.balancer.routed[-2:]).values())) == 2  # one press each
        client = cluster_client(redis_url)
        try:
            pairs = await client.hgetall(f"arena:pairs:{h.tg.bot_id}")
        finally:
            await client.aclose()
        assert sum(int(v) for v in pairs.values()) == 1


async def test_check_says_it_is_a_cluster(redis_url: str) -> None:
    """``python -m bot check``'s Redis row (the rest of check is tested elsewhere)."""
    config = Settings(bot_token="1:x", redis_url=redis_url)
    assert config.redis_cluster  # from REDIS_CLUSTER=1
    row = await check_redis(config)
    assert row.ok and "a cluster of 3 masters" in row.detail, row


async def test_a_cluster_outage_fails_closed_and_recovers(
    redis_url: str, redis_cluster: RedisClusterServers, tmp_path: Path
) -> None:
    """Every master down: the user is told, nothing goes to a model unmetered; the
    masters back: the bot serves again by itself."""
    async with running_bot(redis_url, tmp_path) as h:
        ann = h.tg.user(first_name="Ann")
        await ann.send("before")
        assert (await ann.next_message())["text"] == "echo: before"
        client = cluster_client(redis_url)
        try:
            async with asyncio.timeout(5):  # the exchange is recorded after the answer
                while not await client.exists(f"history:{{{ann.id}}}:{ann.id}"):
                    await asyncio.sleep(0.02)
        finally:
            await client.aclose()
        for node in redis_cluster.nodes:
            await asyncio.to_thread(node.stop)
        try:
            await ann.send("during")
            assert (await ann.next_message(timeout=10))["text"] == EN.service_unavailable
            assert len(h.openai.calls("/chat/completions")) == 1
        finally:
            for node in redis_cluster.nodes:
                await asyncio.to_thread(node.start)
            await asyncio.to_thread(redis_cluster.wait_ok, 30)
        await ann.send("after")
        assert (await ann.next_message(timeout=15))["text"] == "echo: after"
