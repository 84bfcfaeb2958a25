"""Two bot replicas in webhook mode on one Redis, behind a round-robin balancer: one
user's updates land on each in turn, and the limits, the history and the
de-duplication hold across them as if there were one bot."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness import running_webhook_bot

pytestmark = pytest.mark.asyncio

CAPPED = """
[[models]]
id = "capped"
title = "Capped Test"
provider = "openai"
name = "capped-test"
daily_limit = 3
"""


async def test_alternating_replicas_count_once_and_share_one_history(
    redis_url: str, tmp_path: Path
) -> None:
    async with running_webhook_bot(redis_url, tmp_path, replicas=2, extra_catalog=CAPPED) as h:
        assert h.balancer is not None
        assert [c.params["url"] for c in h.tg.calls("setWebhook")] == [h.webhook_url] * 2
        ann = h.tg.user(first_name="Ann")
        await ann.send("/model capped")
        assert "Capped Test" in (await ann.next_message())["text"]
        texts = []
        for i in range(6):
            await ann.send(f"question {i}")
            texts.append((await ann.next_message())["text"])
        await h.idle()

        # every update went to the other replica than the one before
        assert [replica for _, replica in h.balancer.routed] == [0, 1] * 3 + [0]
        assert texts[:3] == [f"echo: question {i}" for i in range(3)]
        for text in texts[3:]:
            assert "3 requests to Capped Test" in text
        requests = h.openai.calls("/chat/completions")
        assert len(requests) == 3
        assert all(r.json["model"] == "capped-test" for r in requests)
        # one conversation, whichever replica served each part
        assert [m["content"] for m in requests[2].json["messages"]] == [
            "question 0",
            "echo: question 0",
            "question 1",
            "echo: question 1",
            "question 2",
        ]
        assert [m["text"] for m in ann.bot_messages()][1:] == texts


async def test_an_update_delivered_to_both_replicas_is_answered_once(
    redis_url: str, tmp_path: Path
) -> None:
    async with running_webhook_bot(redis_url, tmp_path, replicas=2) as h:
        assert h.balancer is not None
        ann = h.tg.user(first_name="Ann")
        h.balancer.duplicate_next()  # this one reaches both replicas at the same time
        await ann.send("just once")
        assert (await ann.next_message())["text"] == "echo: just once"
        await h.idle()
        [(update_id, _), (same_id, _)] = h.balancer.routed
        assert same_id == update_id
        assert {replica for _, replica in h.balancer.routed} == {0, 1}
        assert [r.server.receiver.accepted for r in h.replicas] == [1, 1]
        assert [c.text for c in h.tg.calls("sendMessage")] == ["echo: just once"]
        assert len(h.openai.calls("/chat/completions")) == 1

        # and the same update POSTed again to each replica directly: still once
        message = ann.messages()[0]
        update = {"update_id": update_id, "message": message}
        assert await h.post(update, replica=0) == 200
        assert await h.post(update, replica=1) == 200
        await h.idle()
        assert [c.text for c in h.tg.calls("sendMessage")] == ["echo: just once"]
        assert len(h.openai.calls("/chat/completions")) == 1

        # the next message continues the one conversation on the other replica
        await ann.send("and again")
        assert (await ann.next_message())["text"] == "echo: and again"
        sent = h.openai.calls("/chat/completions")[-1].json["messages"]
        assert [m["content"] for m in sent] == ["just once", "echo: just once", "and again"]
