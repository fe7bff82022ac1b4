"""``redis-server`` as a child process: loopback only, its own directory, an append-only file.

Tests of the Redis state store (and runs of several replicas) need a real Redis
they can stop and start again on the same port with the same data: the
append-only file (fsync on every write) is what lets a restarted server come back
with the state it had, as docs/deploy.md tells operators to configure theirs.

``require_redis_server()`` is the one place that decides between skipping and
failing when Debian's ``redis-server`` is absent: CI sets BOXLITE_MCP_REQUIRE_REDIS.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from tools.benchlib.procs import free_port as free_port  # re-exported: tools.replicas uses it

REQUIRE_ENV = "BOXLITE_MCP_REQUIRE_REDIS"
START_TIMEOUT = 15.0


def redis_server_binary() -> str | None:
    return shutil.which("redis-server")


def missing_reason() -> str:
    return (
        "redis-server is not installed (apt-get install redis-server); "
        f"set {REQUIRE_ENV}=1 to make its absence a failure"
    )


def redis_required() -> bool:
    return bool(os.environ.get(REQUIRE_ENV))


def ping(port: int, timeout: float = 1.0) -> bool:
    """Whether a Redis answers PING on 127.0.0.1:port (and has loaded its data)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One redis-server on 127.0.0.1; ``stop()`` then ``start()`` keeps port and data."""

    def __init__(
        self, directory: Path, port: int | None = None, *, appendfsync: str = "always"
    ) -> None:
        binary = redis_server_binary()
        if binary is None:
            raise RuntimeError(missing_reason())
        self.binary = binary
        self.directory = directory
        self.port = port or free_port()
        # "always": nothing acknowledged is lost even to SIGKILL (tests); deployments
        # use "everysec" (docs/deploy.md), about 10 times cheaper per write.
        self.appendfsync = appendfsync
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        argv = [
            self.binary,
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--dir",
            str(self.directory),
            "--appendonly",
            "yes",
            "--appendfsync",
            self.appendfsync,
            "--save",
            "",
            "--protected-mode",
            "yes",
            "--daemonize",
            "no",
            "--logfile",
            str(self.directory / "redis.log"),
        ]
        self.process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if ping(self.port):
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        log = self.directory / "redis.log"
        tail = log.read_text(errors="replace")[-1500:] if log.exists() else ""
        raise RuntimeError(f"redis-server did not start on port {self.port}:\n{tail}")

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(sig)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
