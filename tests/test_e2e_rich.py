"""End to end, rich answers (Bot API 10.1): tables and formulas as real blocks, streamed
in drafts (private chats) or edits (groups); a reasoning model's thoughts live and then
collapsed, never in history; an older server or a refused rich message gets the same
answer as text; a long answer's finished messages arrive while it still streams."""

from __future__ import annotations

import asyncio
import itertools
import re
from pathlib import Path
from typing import Any

import pytest

from bot.texts import EN
from tests.doubles.base import Reply
from tests.doubles.telegram_rich import flatten
from tests.harness import running_bot
from tests.support import Script, bold_texts

pytestmark = pytest.mark.asyncio

TABLE_ANSWER = (
    "## Sorting\n\n"
    "| Algorithm | Best | Worst | Stable |\n"
    "|---|:-:|:-:|---|\n"
    "| Bubble sort | $O(n)$ | $O(n^2)$ | Yes |\n"
    "| Quick sort | $O(n \\log n)$ | $O(n^2)$ | No |\n\n"
    "The roots are\n\n$$x = \\frac{-b \\pm \\sqrt{b^2-4ac}}{2a}$$\n\n"
    "- [ ] check\n- [x] done\n\n```python\n    indented()\n```\n"
)


def blocks_of(message: dict[str, Any]) -> list[dict[str, Any]]:
    return list(message["rich_message"]["blocks"])


def kinds(blocks: list[dict[str, Any]]) -> list[str]:
    return [b["type"] for b in blocks]


def words(text: str) -> list[str]:
    return re.findall(r"\w+", text)


async def test_a_table_and_formulas_stream_as_a_rich_draft_then_one_rich_message(
    redis_url: str, tmp_path: Path
) -> None:
    async with running_bot(redis_url, tmp_path, rich_messages="auto") as h:
        h.openai.replies["gpt-test"] = Reply(text=TABLE_ANSWER, chunk_delay=0.03)
        ann = h.tg.user()
        await ann.send("compare sorting algorithms")
        final = await ann.next_message(timeout=10)

        assert [c.method for c in h.tg.calls("sendMessage", ann.id)] == []
        [sent] = h.tg.calls("sendRichMessage", ann.id)
        assert sent.ok and final["text"] == flatten(sent.params["rich_message"])
        blocks = blocks_of(final)
        assert kinds(blocks) == [
            "heading",
            "table",
            "paragraph",
            "mathematical_expression",
            "list",
            "pre",
        ]
        table = blocks[1]
        assert [c.get("is_header") for c in table["cells"][0]] == [True] * 4
        assert [c["align"] for c in table["cells"][0]][1:3] == ["center", "center"]
        # the formulas stay in their cells, as formulas
        bubble = table["cells"][1]
        assert bubble[1]["text"] == {"type": "mathematical_expression", "expression": "O(n)"}
        assert "sqrt{b^2-4ac}" in blocks[3]["expression"]
        checks = [(i.get("has_checkbox"), bool(i.get("is_checked"))) for i in blocks[4]["items"]]
        assert checks == [(True, False), (True, True)]
        assert blocks[5]["language"] == "python"
        assert flatten(final["rich_message"]).count("    indented()") == 1
        # streamed in rich drafts with Telegram's own Stop, never the same twice
        drafts = h.tg.calls("sendRichMessageDraft", ann.id)
        assert drafts and all(d.ok and d.params.get("can_stop") for d in drafts)
        shown = [d.params["rich_message"] for d in drafts]
        assert all(a != b for a, b in itertools.pairwise(shown))
        assert h.tg.calls("sendMessageDraft") == [] and h.tg.calls(ok=False) == []
        # history keeps the Markdown the model wrote
        await ann.send("and in one line?")
        await ann.next_message(timeout=10)
        sent_history = h.openai.calls("/chat/completions")[-1].json["messages"]
        assert sent_history[-2] == {"role": "assistant", "content": TABLE_ANSWER}


async def test_reasoning_shows_live_then_collapsed_and_never_reaches_history(
    redis_url: str, tmp_path: Path
) -> None:
    thoughts = ["The user asks", " for a sum.", " Two and two", " make four."]
    async with running_bot(redis_url, tmp_path, rich_messages="auto") as h:
        h.openai.replies["gpt-test"] = Reply(
            text="It is **4**.", reasoning=thoughts, chunk_delay=0.4
        )
        ann = h.tg.user()
        await ann.send("2+2?")
        final = await ann.next_message(timeout=10)

        blocks = blocks_of(final)
        assert kinds(blocks) == ["details", "paragraph"]
        details = blocks[0]
        assert not details.get("is_open")
        assert re.fullmatch(r"Thought for \d+ s", flatten({"blocks": [details]}).split("\n")[0])
        assert "make four" in flatten({"blocks": details["blocks"]})
        assert "4" in flatten({"blocks": [blocks[1]]})
        # while it thought, the draft showed the thinking live, before any answer text
        drafts = [d.params["rich_message"]["blocks"] for d in h.tg.calls("sendRichMessageDraft")]
        thinking = [d for d in drafts if d and d[0]["type"] == "thinking"]
        assert any("sum" in flatten({"blocks": d}) for d in thinking), drafts
        # the thoughts are neither history nor the answer's text
        await ann.send("and 3+3?")
        await ann.next_message(timeout=10)
        history = h.openai.calls("/chat/completions")[-1].json["messages"]
        assert history[-2] == {"role": "assistant", "content": "It is **4**."}


async def test_reasoning_in_text_mode_is_an_expandable_quote(
    redis_url: str, tmp_path: Path
) -> None:
    async with running_bot(redis_url, tmp_path, rich_messages="off") as h:
        h.openai.replies["gpt-test"] = Reply(
            text="Four.", reasoning=["Adding", " two and two."], chunk_delay=0.05
        )
        ann = h.tg.user()
        await ann.send("2+2?")
        final = await ann.next_message(timeout=10)

        assert final["text"].startswith("Thought for ")
        assert final["text"].endswith("Four.")
        quote = [e for e in final["entities"] if e["type"] == "expandable_blockquote"]
        assert len(quote) == 1 and quote[0]["offset"] == 0
        assert "two and two" in final["text"][: quote[0]["length"]]
        assert h.tg.calls("sendRichMessage") == h.tg.calls("sendRichMessageDraft") == []


async def test_a_group_answer_grows_by_rich_edits(redis_url: str, tmp_path: Path) -> None:
    answer = "| a | b |\n|---|---|\n| 1 | 2 |\n| 3 | 4 |\n\nDone with **two** rows."
    async with running_bot(redis_url, tmp_path, rich_messages="auto") as h:
        group = h.tg.group()
        ann = h.tg.user()
        h.openai.replies["gpt-test"] = Reply(text=answer, chunk_delay=0.25)
        await ann.send(f"@{h.tg.username} a table please", chat=group)
        final = await ann.wait_message(
            lambda m: "Done with two rows." in m.get("text", ""), chat=group, timeout=15
        )

        [placed] = h.tg.calls("sendRichMessage", group.id)
        assert EN.thinking in placed.text
        edits = h.tg.calls("editMessageText", group.id)
        assert edits and all("rich_message" in e.params for e in edits)
        assert all(int(e.params["message_id"]) == final["message_id"] for e in edits)
        assert kinds(blocks_of(final)) == ["table", "paragraph"]
        assert h.tg.calls("sendMessage", group.id) == [] and h.tg.calls(ok=False) == []


async def test_an_older_server_gets_the_answer_as_text_and_is_not_asked_again(
    redis_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with running_bot(redis_url, tmp_path, rich_messages="auto") as h:
        h.tg.rich = False
        h.openai.replies["gpt-test"] = Reply(text=TABLE_ANSWER, chunk_delay=0.03)
        ann = h.tg.user()
        await ann.send("compare sorting algorithms")
        final = await ann.next_message(timeout=10)
        assert "Bubble sort" in final["text"] and "rich_message" not in final
        refused = h.tg.calls(ok=False)
        assert refused and {c.method for c in refused} <= {
            "sendRichMessageDraft",
            "sendRichMessage",
        }

        mark = h.tg.mark()
        bob = h.tg.user(first_name="Bob")
        await bob.send("again")
        again = await bob.next_message(timeout=10)
        assert again["text"].startswith("echo: again") or again["text"]
        later = h.tg.api_calls[mark:]
        assert not [c for c in later if "Rich" in c.method]  # paused for 10 minutes
        assert sum("refused a rich message" in r.message for r in caplog.records) == 1


async def test_a_refused_rich_message_is_delivered_as_text_at_once(
    redis_url: str, tmp_path: Path
) -> None:
    async with running_bot(redis_url, tmp_path, rich_messages="auto") as h:
        h.openai.replies["gpt-test"] = Reply(text="Plain **bold** answer.", chunk_delay=0.01)
        h.tg.fail_next("sendRichMessage", 400, "Bad Request: can't parse rich message")
        ann = h.tg.user()
        await ann.send("hi")
        final = await ann.next_message(timeout=10)
        assert final["text"] == "Plain bold answer."
        assert [e["type"] for e in final["entities"]] == ["bold"]
        assert len(ann.bot_messages()) == 1


@pytest.mark.parametrize("rich", ["auto", "off"])
async def test_a_long_answer_delivers_finished_messages_while_it_streams(
    redis_url: str, tmp_path: Path, rich: str
) -> None:
    paragraph = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 30 + "\n\n"
    count = 48 if rich == "auto" else 12  # three rich messages' worth, or text ones'
    pieces = Script([f"{i:03d} {paragraph}" for i in range(count)] + ["The end."])
    async with running_bot(redis_url, tmp_path, rich_messages=rich, timeout=8.0) as h:
        h.openai.replies["gpt-test"] = Reply(
            chunks=pieces, chunk_delay=0.1 if rich == "auto" else 0.3
        )
        ann = h.tg.user()
        await ann.send("write a lot")
        first = await ann.next_message(timeout=20)
        assert not pieces.done  # the first message came while the answer still streamed
        assert first["text"].startswith("000 Lorem")
        while not pieces.done:
            await asyncio.sleep(0.05)
        await ann.wait_message(lambda m: m["text"].endswith("The end."), timeout=20)
        messages = ann.bot_messages()
        assert len(messages) >= 3
        text = "\n".join(m["text"] for m in messages)
        assert words(text) == words(pieces.text)
        # what the user read never moved: every message was sent once, never edited
        assert h.tg.calls("editMessageText") == []


@pytest.mark.parametrize("rich", ["auto", "off"])
async def test_stop_keeps_the_partial_answer_either_way(
    redis_url: str, tmp_path: Path, rich: str
) -> None:
    pieces = Script([f"piece{i:02d} " for i in range(60)])
    async with running_bot(redis_url, tmp_path, rich_messages=rich) as h:
        h.openai.replies["gpt-test"] = Reply(chunks=pieces, chunk_delay=0.1)
        ann = h.tg.user()
        await ann.send("go on")
        await h.tg.wait_for("sendRichMessageDraft" if rich == "auto" else "sendMessageDraft",
                            lambda c: "piece02" in (c.text or ""), timeout=10)  # fmt: skip
        h.tg.stop_generation(ann.id)
        final = await ann.next_message(timeout=10)
        assert final["text"].startswith("piece00") and EN.stopped in final["text"]
        assert ("rich_message" in final) == (rich == "auto")
        assert pieces.taken < len(pieces)


async def test_an_arena_reveal_retitles_the_rich_answers(redis_url: str, tmp_path: Path) -> None:
    async with running_bot(redis_url, tmp_path, daily_limit=20, rich_messages="auto") as h:
        ann = h.tg.user()
        await ann.send("/arena what is 2+2?")
        second = await ann.wait_message(lambda m: EN.arena_a_better in str(m), timeout=15)
        first = ann.bot_messages()[-2]
        assert "rich_message" in first and "rich_message" in second
        assert bold_texts(first)[0] == EN.arena_model_a
        assert "echo: what is 2+2?" in first["text"]

        await ann.click(EN.arena_a_better, message_id=second["message_id"])
        revealed = await ann.wait_message(
            lambda m: m["message_id"] == first["message_id"] and ":" in bold_texts(m)[0]
        )
        title = bold_texts(revealed)[0]
        assert title.startswith(EN.arena_model_a + ":")
        assert any(t in title for t in ("GPT Test", "Mistral Test", "Llama Test", "Local Test"))
        # the answer under the header is what it was
        assert revealed["text"].split("\n", 1)[1] == first["text"].split("\n", 1)[1]
        assert any(
            "Continue with" in str(row) for row in revealed["reply_markup"]["inline_keyboard"]
        )
