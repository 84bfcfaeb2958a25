"""A real Redis Cluster of three masters on spare loopback ports: three redis-server
processes with ``cluster-enabled yes``, joined with ``redis-cli --cluster create``.

    cluster = RedisClusterServers()
    cluster.start()          # seconds: ready once every node says cluster_state:ok
    cluster.url              # a node's URL, for REDIS_URL with REDIS_CLUSTER=1
    cluster.flush()          # FLUSHALL on every master
    cluster.cleanup()
"""

from __future__ import annotations

import shutil
import subprocess
import time

from tests.redis_server import RedisServer

MASTERS = 3


def redis_cli() -> str:
    binary = shutil.which("redis-cli")
    if binary is None:
        raise RuntimeError("redis-cli is not installed: `apt-get install redis-server`")
    return binary


def cli(port: int, *args: str, timeout: float = 10.0) -> str:
    """``redis-cli -p port args...``: its output (raises on a non-zero exit)."""
    done = subprocess.run(  # noqa: S603 - a fixed local binary
        [redis_cli(), "-h", "127.0.0.1", "-p", str(port), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
    )
    return done.stdout


class RedisClusterServers:
    """Three masters, no replicas: each key slot on exactly one of them."""

    def __init__(self, masters: int = MASTERS, node_timeout_ms: int = 5000) -> None:
        options = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
        options += ["--cluster-node-timeout", str(node_timeout_ms)]
        self.nodes = [RedisServer(options, cluster_bus=True) for _ in range(masters)]

    @property
    def ports(self) -> list[int]:
        return [node.port for node in self.nodes]

    @property
    def url(self) -> str:
        return self.nodes[0].url

    def start(self, timeout: float = 30.0) -> None:
        try:
            for node in self.nodes:
                node.start()
            addresses = [f"127.0.0.1:{port}" for port in self.ports]
            cli(self.ports[0], "--cluster", "create", *addresses, "--cluster-yes", timeout=60)
            self.wait_ok(timeout)
        except BaseException:
            self.cleanup()
            raise

    def wait_ok(self, timeout: float) -> None:
        """Until every node says ``cluster_state:ok`` and knows every master."""
        deadline = time.monotonic() + timeout
        while True:
            states = [self._state(port) for port in self.ports]
            if all(states):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the cluster is not ok after {timeout} s: {states}")
            time.sleep(0.1)

    def _state(self, port: int) -> bool:
        try:
            info = cli(port, "cluster", "info", timeout=5)
            nodes = cli(port, "cluster", "nodes", timeout=5)
        except (subprocess.SubprocessError, OSError):
            return False
        masters = sum(1 for line in nodes.splitlines() if "master" in line.split()[2])
        return "cluster_state:ok" in info and masters == len(self.nodes)

    def flush(self) -> None:
        for port in self.ports:
            cli(port, "flushall")

    def cleanup(self) -> None:
        for node in self.nodes:
            node.cleanup()
