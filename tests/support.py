"""Helpers the end-to-end tests share: scripted model streams that count what was
taken, a user's credits left today, the bold pieces of a text or rich message, the
start of a ``python -m bot`` process, and throwaway TLS certificates."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.doubles.telegram import FakeUser
from tests.doubles.telegram_rich import flatten_text
from tests.redis_server import TlsFiles


class Script(list[str]):
    """The pieces a model double streams, counting how many it took to send; ``done`` is
    set when the double stops taking them (all sent, or its client went away)."""

    def __init__(self, pieces: list[str]) -> None:
        super().__init__(pieces)
        self.taken = 0
        self.done = False

    def __iter__(self) -> Iterator[str]:
        try:
            for piece in list.__iter__(self):
                self.taken += 1
                yield piece
        finally:
            self.done = True

    @property
    def text(self) -> str:
        return "".join(list.__iter__(self))


def long_script(count: int = 40, word: str = "w") -> Script:
    return Script([f"{word}{i:02d} " for i in range(count)])


async def credits_left(user: FakeUser, daily: int, timeout: float = 10.0) -> int:
    """What /limits says is left of the overall allowance of ``daily`` credits."""
    await user.send("/limits")
    text = (await user.next_message(timeout=timeout))["text"]
    found = re.search(r"(\d+) of (\d+) credits left", text)
    assert found is not None and int(found.group(2)) == daily, text
    return int(found.group(1))


def bold_texts(message: dict[str, Any]) -> list[str]:
    """The bold pieces of a message as shown, in order: its bold entities, or for a rich
    message its bold rich texts."""
    if "rich_message" not in message:
        text = message["text"].encode("utf-16-le")
        return [
            text[2 * e["offset"] : 2 * (e["offset"] + e["length"])].decode("utf-16-le")
            for e in message.get("entities", [])
            if e["type"] == "bold"
        ]
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, dict):
            if node.get("type") == "bold":
                found.append(flatten_text(node["text"]))
                return
            for value in node.values():
                walk(value)

    walk(message["rich_message"])
    return found


# How long a ``python -m bot`` the tests start may take to make its first call, in CPU
# time of its own: generous, as the design aims at ~3 s on an idle machine. The wall
# clock says little here: while the other pytest-xdist workers (and whatever else) keep
# the cores busy, its imports alone took 20 s. A start that waits on something, using no
# CPU, is bounded by the wall clock, more loosely.
START_CPU_SECONDS = 20.0
START_WALL_SECONDS = 60.0


def cpu_seconds(pid: int) -> float:
    """The CPU time (user and system) process ``pid`` used so far (Linux's /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def until_started(
    process: asyncio.subprocess.Process,
    started: Callable[[], bool],
    what: str,
    output: Callable[[], str] = str,
) -> None:
    """Wait until ``started()`` (its first call to a double, say) for the ``python -m
    bot`` in ``process``, within ``START_CPU_SECONDS`` of its CPU time and
    ``START_WALL_SECONDS``; a process that exits first fails the test at once, showing
    its ``output()``."""
    deadline = time.monotonic() + START_WALL_SECONDS
    while not started():
        if process.returncode is not None:
            raise AssertionError(
                f"python -m bot exited {process.returncode} before {what}:\n{output()}"
            )
        try:
            used = cpu_seconds(process.pid)
        except OSError:  # it exited meanwhile: its return code tells next time round
            used = 0.0
        if used > START_CPU_SECONDS or time.monotonic() > deadline:
            raise AssertionError(
                f"no {what} after {used:.1f} s of python -m bot's CPU time "
                f"(at most {START_CPU_SECONDS} s) or {START_WALL_SECONDS} s:\n{output()}"
            )
        await asyncio.sleep(0.05)


async def spawn_bot(
    tmp_path: Path, env: Mapping[str, str], stdout: Any, stderr: Any
) -> asyncio.subprocess.Process:
    """``python -m bot`` in ``tmp_path`` (no stray .env) with ``env`` alone (and PATH)."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        env={"PATH": os.environ.get("PATH", ""), **env},
        cwd=tmp_path,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
    )


def make_certificates(where: Path) -> TlsFiles:
    """A CA and a server certificate for IP 127.0.0.1 signed by it (a day's validity)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is not installed: no certificate for the TLS test")
    files = TlsFiles(where / "ca.crt", where / "server.crt", where / "server.key")
    ca_key, csr, extensions = where / "ca.key", where / "server.csr", where / "san.cnf"
    extensions.write_text("subjectAltName=IP:127.0.0.1\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    signed = ["-CA", files.ca, "-CAkey", ca_key, "-CAcreateserial", "-extfile", extensions]
    steps = [
        ["req", "-x509", *ec, "-keyout", ca_key, "-out", files.ca, "-subj", "/CN=test CA"],
        ["req", *ec, "-keyout", files.key, "-out", csr, "-subj", "/CN=127.0.0.1"],
        ["x509", "-req", "-in", csr, *signed, "-out", files.cert, "-days", "1"],
    ]
    for step in steps:
        subprocess.run(  # noqa: S603 - a fixed local binary
            [openssl, *map(str, step)], check=True, capture_output=True, timeout=30
        )
    return files
