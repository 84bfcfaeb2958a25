"""A real redis-server on a spare loopback port, owned by the test session; the same for
the nodes of a Redis Cluster (tests/redis_cluster.py) and of a Sentinel set
(tests/redis_sentinel.py), for a TLS port and a unix socket."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def redis_binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError(
            "redis-server is not installed: `apt-get install redis-server` "
            "(bash .ci/run does it for you)"
        )
    return binary


def server_pid(port: int, timeout: float = 0.2) -> int | None:
    """The process id of the Redis (or Sentinel) that answers on 127.0.0.1:``port``
    (``INFO server``); None while none does."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(b"INFO server\r\n")
            reply = b""
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    return None
                reply += chunk
                head, _, body = reply.partition(b"\r\n")
                if not head.startswith(b"$"):  # -LOADING and the like: not yet
                    return None
                if len(body) >= int(head[1:]):
                    break
    except (OSError, ValueError):
        return None
    found = re.search(rb"^process_id:(\d+)", body, re.MULTILINE)
    return int(found.group(1)) if found else None


def wait_serving(process: subprocess.Popen[bytes], port: int, timeout: float = 10.0) -> bool:
    """Until ``process`` (a redis-server) answers on ``port``: True; False if it exited
    first, or if it did not answer within ``timeout``. Its own process id is what must
    answer: another process may have taken the port between :func:`free_port` choosing it
    and this server binding it (another pytest-xdist worker's server, another test
    session's), and that one exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        if server_pid(port) == process.pid:
            return True
        time.sleep(0.02)
    return False


def stop_process(process: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


START_ATTEMPTS = 5  # each on fresh ports: another process took one of the last ones


@dataclass(frozen=True)
class TlsFiles:
    """A throwaway certificate authority and a server certificate for 127.0.0.1."""

    ca: Path
    cert: Path
    key: Path


class RedisServer:
    """Start, stop and restart a throwaway redis-server (for outage tests too).

    ``extra``: more command-line options; ``unix_socket``: listen on a socket in its
    directory too; ``tls``: a TLS port too (``tls_url``); ``cluster_bus``: a cluster
    node's bus port (``--cluster-port``: port + 10000 may be taken, or past 65535);
    ``replica_of``: the server it replicates.

    Its ports are spare ones when chosen, yet another process may bind one before it
    does (another pytest-xdist worker's server, another test session's): then its first
    start tries again on fresh ports. A restart keeps them: its clients know them."""

    def __init__(
        self,
        extra: Sequence[str] = (),
        *,
        unix_socket: bool = False,
        tls: TlsFiles | None = None,
        cluster_bus: bool = False,
        replica_of: RedisServer | None = None,
    ) -> None:
        self.binary = redis_binary()
        self.dir = tempfile.mkdtemp(prefix="test-redis-")
        self.extra = list(extra)
        self.socket = Path(self.dir) / "redis.sock" if unix_socket else None
        self.tls = tls
        self.cluster_bus = cluster_bus
        self.replica_of = replica_of
        self.port = 0
        self.tls_port: int | None = None
        self.bus_port: int | None = None
        self.choose_ports()
        self.started = False  # once: its ports are known to clients, and kept
        self.process: subprocess.Popen[bytes] | None = None

    def choose_ports(self) -> None:
        self.port = free_port()
        self.tls_port = free_port() if self.tls is not None else None
        self.bus_port = free_port() if self.cluster_bus else None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def unix_url(self) -> str:
        assert self.socket is not None
        return f"unix://{self.socket}?db=0"

    @property
    def tls_url(self) -> str:
        assert self.tls is not None
        return f"rediss://127.0.0.1:{self.tls_port}/0?ssl_ca_certs={self.tls.ca}"

    def arguments(self) -> list[str]:
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--save", "", "--appendonly", "no", "--dir", self.dir]
        args += ["--daemonize", "no", "--loglevel", "warning"]
        if self.socket is not None:
            args += ["--unixsocket", str(self.socket), "--unixsocketperm", "700"]
        if self.tls is not None:
            args += ["--tls-port", str(self.tls_port), "--tls-auth-clients", "no"]
            args += ["--tls-cert-file", str(self.tls.cert), "--tls-key-file", str(self.tls.key)]
            args += ["--tls-ca-cert-file", str(self.tls.ca)]
        if self.bus_port is not None:
            args += ["--cluster-port", str(self.bus_port)]
        if self.replica_of is not None:
            args += ["--replicaof", "127.0.0.1", str(self.replica_of.port)]
        return args + self.extra

    def start(self) -> None:
        for _ in range(START_ATTEMPTS):
            self.process = subprocess.Popen(  # noqa: S603 - a fixed local binary
                self.arguments(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            if wait_serving(self.process, self.port):
                self.started = True
                return
            self.stop()
            if self.started:
                break
            self.choose_ports()
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
