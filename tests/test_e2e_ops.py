"""End to end: what operators use: /stats and /reload for admins, Prometheus metrics, long
pastes merged into one request, the update id on log lines."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp

from bot.redact import UpdateField
from bot.services.paste import HOLD_SECONDS, SPLIT_AT
from tests.doubles.base import Reply
from tests.harness import running_bot
from tests.redis_server import free_port

ADMIN = 4242


async def test_stats_for_admins_only(redis_url: str, tmp_path: Path) -> None:
    async with running_bot(redis_url, tmp_path, admin_ids=frozenset({ADMIN})) as h:
        ann, boss = h.tg.user(first_name="Ann"), h.tg.user(id=ADMIN, first_name="Boss")
        h.mistral.replies["mistral-test"] = Reply(status=503)
        await ann.send("hello")
        await ann.next_message()
        await ann.send("/model mistral")
        await ann.next_message()
        await ann.send("fail please")
        await ann.next_message()
        await boss.send("hi")
        await boss.next_message()
        await ann.send("/stats")
        assert "know the command /stats" in (await ann.next_message())["text"]  # not for Ann
        await boss.send("/stats")
        text = (await boss.next_message())["text"]
        assert ": 2 users" in text
        assert "GPT Test: 2 requests" in text and "Mistral Test: 1 request\n" in text
        assert "mistral: 1 failure" in text and "failures" not in text


async def test_reload_applies_a_good_catalog_and_refuses_a_bad_one(
    redis_url: str, tmp_path: Path
) -> None:
    async with running_bot(redis_url, tmp_path, admin_ids=frozenset({ADMIN})) as h:
        boss = h.tg.user(id=ADMIN, first_name="Boss")
        path = h.settings.models_file
        original = path.read_text()
        path.write_text(original.replace('title = "Mistral Test"', 'title = "Mistral Renamed"'))
        await boss.send("/reload")
        assert "reloaded" in (await boss.next_message())["text"]
        await boss.send("/model")
        labels = str((await boss.next_message())["reply_markup"])
        assert "Mistral Renamed" in labels
        await boss.send("/model mistral")
        await boss.next_message()
        await boss.send("after reload")
        assert (await boss.next_message())["text"] == "echo: after reload"
        path.write_text(original.replace('kind = "ollama"', 'kind = "nope"'))
        await boss.send("/reload")
        refused = (await boss.next_message())["text"]
        assert "not reloaded" in refused and "unknown kind 'nope'" in refused
        await boss.send("/model")
        assert "Mistral Renamed" in str((await boss.next_message())["reply_markup"])


async def test_metrics_on_their_own_port_in_polling_mode(redis_url: str, tmp_path: Path) -> None:
    port = free_port()
    async with running_bot(redis_url, tmp_path, metrics_port=port, webhook_host="127.0.0.1") as h:
        ann = h.tg.user(first_name="Ann")
        await ann.send("count me")
        await ann.next_message()
        h.openai.replies["gpt-test"] = Reply(status=401)
        await ann.send("fail me")
        await ann.next_message()
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
                assert response.status == 200
                body = await response.text()
            async with http.get(f"http://127.0.0.1:{port}/healthz") as response:
                assert response.status == 200
        assert 'bot_answers_total{model="gpt",outcome="ok"} 1.0' in body
        assert 'bot_answers_total{model="gpt",outcome="error"} 1.0' in body
        assert 'bot_provider_errors_total{kind="AuthenticationError",provider="openai"} 1.0' in body
        assert 'bot_updates_total{type="message"}' in body
        assert "bot_time_to_first_token_seconds_count" in body


@contextlib.contextmanager
def both_cores_busy() -> Iterator[None]:
    """Two busy-loop processes: the loaded machine a race shows on."""
    loops = [subprocess.Popen([sys.executable, "-c", "while 1: pass"]) for _ in range(2)]
    try:
        yield
    finally:
        for loop in loops:
            loop.kill()
            loop.wait()


async def test_a_split_paste_is_answered_once_as_a_whole(redis_url: str, tmp_path: Path) -> None:
    """Ten pastes in a row with both cores busy: each answered once, whole."""
    async with running_bot(redis_url, tmp_path) as h:
        ann = h.tg.user(first_name="Ann")
        h.openai.replies["gpt-test"] = Reply(text="joined")
        with both_cores_busy():
            for round_ in range(10):
                first, second, tail = f"{round_}a" * 2048, "b" * 4096, f"c{round_}" * 50
                for part in (first, second, tail):  # as Telegram delivers a long paste
                    await ann.send(part)
                assert (await ann.next_message(timeout=20))["text"] == "joined"
                await asyncio.sleep(HOLD_SECONDS + 0.5)  # a part left over would be answered
                asked = [
                    r.json["messages"][-1]["content"] for r in h.openai.calls("/chat/completions")
                ]
                assert asked[round_:] == [first + second + tail], (
                    round_,
                    [a[:6] + str(len(a)) for a in asked],
                    [m["text"][:30] for m in ann.messages()],
                )


async def test_a_paste_ending_on_a_full_part_is_answered_too(
    redis_url: str, tmp_path: Path
) -> None:
    async with running_bot(redis_url, tmp_path) as h:
        ann = h.tg.user(first_name="Ann")
        await ann.send("x" * SPLIT_AT)
        await ann.send("y" * SPLIT_AT)
        await ann.wait_message(lambda m: m["text"].startswith("echo:"), timeout=10)
        requests = h.openai.calls("/chat/completions")
        assert [r.json["messages"][-1]["content"] for r in requests] == [
            "x" * SPLIT_AT + "y" * SPLIT_AT
        ]


async def test_a_prompt_over_the_limit_is_refused(redis_url: str, tmp_path: Path) -> None:
    async with running_bot(redis_url, tmp_path, max_prompt_chars=100) as h:
        ann = h.tg.user(first_name="Ann")
        await ann.send("z" * 150)
        assert "150 characters, the limit is 100" in (await ann.next_message())["text"]
        assert h.openai.calls("/chat/completions") == []


async def test_failures_are_logged_with_the_update_id(redis_url: str, tmp_path: Path) -> None:
    lines = io.StringIO()
    handler = logging.StreamHandler(lines)
    handler.addFilter(UpdateField())
    handler.setFormatter(logging.Formatter("[update %(update)s] %(name)s: %(message)s"))
    handler.setLevel(logging.WARNING)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        async with running_bot(redis_url, tmp_path) as h:
            h.openai.replies["gpt-test"] = Reply(status=500)
            ann = h.tg.user(first_name="Ann")
            await ann.send("break")
            await ann.next_message()
            handed_out = [u for c in h.tg.calls("getUpdates") if c.ok for u in c.result]
            update_id = next(u["update_id"] for u in handed_out if u["message"]["text"] == "break")
    finally:
        root.removeHandler(handler)
    failures = [line for line in lines.getvalue().splitlines() if "failed" in line]
    assert failures and all(line.startswith(f"[update {update_id}]") for line in failures)
