"""A real Redis Sentinel set on loopback: a primary, a replica and three Sentinels
(``redis-server --sentinel``: Debian's redis-server package has it built in).

    with SentinelSet() as cell:  # started: the Sentinels know the primary and its replica
        cell.sentinels           # "127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3" (REDIS_SENTINELS)
        cell.failover()          # SENTINEL FAILOVER: the replica becomes the primary

The Redis servers run with ``min-replicas-to-write`` = their replicas (README "Scaling
out"): a primary that lost a replica refuses writes, so nothing is written to a demoted
primary and lost when it rejoins as a replica.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from tests.redis_cluster import cli
from tests.redis_server import (
    START_ATTEMPTS,
    RedisServer,
    free_port,
    redis_binary,
    stop_process,
    wait_serving,
)

MASTER_NAME = "botmaster"
SENTINELS = 3
# SENTINEL DEBUG timings (ms) for a quick set: each Sentinel reads its instances' INFO
# every 0.25 s (default 10 s) and turns a demoted primary into a replica once it has
# reported itself a primary for 4 publish periods, 2 s (default 8 s); and a Sentinel
# whose timer runs 10 s late (default 2 s, easily reached on a loaded 2-core machine)
# enters TILT, 30 s of doing nothing. Without them a forced failover refuses writes for
# 11-12 s on an idle machine, and for as long as TILT lasts on a busy one.
QUICK = {"info-period": 250, "publish-period": 500, "tilt-trigger": 10000}


def safe_writes(min_replicas: int) -> list[str]:
    """What the README asks of a Sentinel set-up: writes only while ``min_replicas``
    replicas follow (0: the option left out), and a resync at once."""
    options = ["--repl-diskless-sync-delay", "0"]
    if min_replicas:
        options += ["--min-replicas-to-write", str(min_replicas), "--min-replicas-max-lag", "2"]
    return options


class Sentinel:
    """One ``redis-server --sentinel`` watching ``MASTER_NAME``, first on ``primary``.

    Like a :class:`RedisServer`, it starts again on a fresh port if another process took
    its own meanwhile."""

    def __init__(self, primary: RedisServer, down_after_ms: int, quick: bool = False) -> None:
        self.primary = primary
        self.down_after_ms = down_after_ms
        self.quick = quick
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="test-sentinel-"))
        self.config = self.dir / "sentinel.conf"
        self.log = self.dir / "sentinel.log"
        self.process: subprocess.Popen[bytes] | None = None

    def write_config(self) -> None:
        self.config.write_text(
            "\n".join(
                [
                    f"port {self.port}",
                    "bind 127.0.0.1",
                    "daemonize no",
                    "loglevel notice",  # its events (+sdown, +switch-master, +tilt...)
                    f"logfile {self.log}",
                    f"dir {self.dir}",
                    f"sentinel monitor {MASTER_NAME} 127.0.0.1 {self.primary.port} 2",
                    f"sentinel down-after-milliseconds {MASTER_NAME} {self.down_after_ms}",
                    f"sentinel failover-timeout {MASTER_NAME} 10000",
                    f"sentinel parallel-syncs {MASTER_NAME} 1",
                    "",
                ]
            )
        )

    def start(self) -> None:
        for _ in range(START_ATTEMPTS):
            self.write_config()
            self.process = subprocess.Popen(  # noqa: S603 - a fixed local binary
                [redis_binary(), str(self.config), "--sentinel"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            if wait_serving(self.process, self.port):
                if self.quick:
                    timings = [str(x) for pair in QUICK.items() for x in pair]
                    cli(self.port, "sentinel", "debug", *timings)
                return
            stop_process(self.process)
            self.process = None
            self.port = free_port()
        raise RuntimeError(f"redis sentinel did not start on port {self.port}")

    def cleanup(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None
        shutil.rmtree(self.dir, ignore_errors=True)


class SentinelSet:
    """A primary, its replicas (one by default), and three Sentinels with a quorum of
    two; every Redis with ``min-replicas-to-write`` = ``min_replicas`` (default: all).
    ``quick``: the Sentinels run with the :data:`QUICK` timings."""

    def __init__(
        self,
        down_after_ms: int = 1000,
        replicas: int = 1,
        min_replicas: int | None = None,
        quick: bool = False,
    ) -> None:
        options = safe_writes(replicas if min_replicas is None else min_replicas)
        self.primary = RedisServer(options)
        self.replicas = [RedisServer(options, replica_of=self.primary) for _ in range(replicas)]
        self.watchers = [Sentinel(self.primary, down_after_ms, quick) for _ in range(SENTINELS)]

    @property
    def replica(self) -> RedisServer:
        return self.replicas[0]

    @property
    def servers(self) -> list[RedisServer]:
        return [self.primary, *self.replicas]

    @property
    def sentinels(self) -> str:
        return ",".join(f"127.0.0.1:{s.port}" for s in self.watchers)

    def start(self, timeout: float = 30.0) -> None:
        try:
            for server in self.servers:
                server.start()
            self.wait_replicating(self.primary.port, timeout)
            for sentinel in self.watchers:
                sentinel.start()
            self.wait_known(self.primary.port, timeout)
        except BaseException:
            self.cleanup()
            raise

    def master_port(self, sentinel: int = 0) -> int:
        """The primary's port as a Sentinel sees it."""
        out = cli(self.watchers[sentinel].port, "sentinel", "get-master-addr-by-name", MASTER_NAME)
        return int(out.split()[1])

    def role(self, port: int) -> str:
        return cli(port, "role").split()[0]

    def wait_replicating(self, primary: int, timeout: float) -> None:
        """Until ``primary`` has every replica in sync."""
        deadline = time.monotonic() + timeout
        while True:
            info = cli(primary, "info", "replication")
            if "role:master" in info and info.count("state=online") == len(self.replicas):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"no replica in sync with {primary} after {timeout} s")
            time.sleep(0.1)

    def wait_known(self, primary: int, timeout: float) -> None:
        """Until every Sentinel names ``primary`` and knows a healthy replica of it and the
        other Sentinels (a failover can be asked for then)."""
        deadline = time.monotonic() + timeout
        while True:
            if all(self._knows(s.port, primary) for s in self.watchers):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the Sentinels do not agree on {primary} after {timeout} s")
            time.sleep(0.1)

    def _knows(self, port: int, primary: int) -> bool:
        try:
            master = cli(port, "sentinel", "get-master-addr-by-name", MASTER_NAME).split()
            replicas = cli(port, "sentinel", "replicas", MASTER_NAME)
            sentinels = cli(port, "sentinel", "sentinels", MASTER_NAME)
        except (subprocess.SubprocessError, OSError, IndexError):
            return False
        lines = replicas.splitlines()
        healthy = sum(
            line == "flags" and lines[i + 1] == "slave" for i, line in enumerate(lines[:-1])
        )
        others = sentinels.count("\nname\n") + sentinels.startswith("name\n")
        return (
            bool(master)
            and int(master[1]) == primary
            and healthy == len(self.replicas)
            and others >= SENTINELS - 1
        )

    def failover(self) -> int:
        """Ask a Sentinel to fail over now; the port of the replica that takes over."""
        old = self.master_port()
        cli(self.watchers[0].port, "sentinel", "failover", MASTER_NAME)
        deadline = time.monotonic() + 30
        while (new := self.master_port()) == old and time.monotonic() < deadline:
            time.sleep(0.05)
        return new

    def events(self) -> str:
        """What the Sentinels logged of the failovers (for a failed test's message)."""
        marks = ("+sdown", "-sdown", "+odown", "+switch-master", "+tilt", "-tilt", "+failover")
        lines = []
        for number, sentinel in enumerate(self.watchers):
            text = sentinel.log.read_text(errors="replace") if sentinel.log.exists() else ""
            events = [line for line in text.splitlines() if any(m in line for m in marks)]
            lines += [f"s{number} {line}" for line in events]
        return "\n".join(lines)

    def __enter__(self) -> SentinelSet:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    def cleanup(self) -> None:
        for sentinel in self.watchers:
            sentinel.cleanup()
        for server in self.servers:
            server.cleanup()
