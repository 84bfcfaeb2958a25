"""A real redis-server on a spare loopback port, owned by the test session; the same for
the nodes of a Redis Cluster (tests/redis_cluster.py) and of a Sentinel set
(tests/redis_sentinel.py), for a TLS port and a unix socket."""

from __future__ import annotations

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


def answers_ping(port: int, timeout: float = 0.2) -> bool:
    """Whether a Redis (or a Sentinel) on 127.0.0.1:``port`` answers PING."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def stop_process(process: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@dataclass(frozen=True)
class TlsFiles:
    """A throwaway certificate authority and a server certificate for 127.0.0.1."""

    ca: Path
    cert: Path
    key: Path


class RedisServer:
    """Start, stop and restart a throwaway redis-server (for outage tests too).

    ``extra``: more command-line options (a cluster node's, a replica's); ``unix_socket``:
    listen on a socket in its directory too; ``tls``: a TLS port too (``tls_url``)."""

    def __init__(
        self,
        extra: Sequence[str] = (),
        *,
        unix_socket: bool = False,
        tls: TlsFiles | None = None,
    ) -> None:
        self.binary = redis_binary()
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="test-redis-")
        self.extra = list(extra)
        self.socket = Path(self.dir) / "redis.sock" if unix_socket else None
        self.tls = tls
        self.tls_port = free_port() if tls is not None else None
        self.process: subprocess.Popen[bytes] | None = None

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
        return args + self.extra

    def start(self) -> None:
        self.process = subprocess.Popen(  # noqa: S603 - a fixed local binary
            self.arguments(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if answers_ping(self.port):
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
