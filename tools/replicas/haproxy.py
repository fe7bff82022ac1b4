"""HAProxy running the repository's deploy/haproxy.cfg, with addresses from its environment.

The config is the one docs/deploy.md ships; tests and the replica cluster run it
unchanged, so what they exercise is what operators deploy.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2

from tools.benchlib.procs import REPO

CONFIG = REPO / "deploy" / "haproxy.cfg"
#: CI sets it: a missing haproxy is then a failure, not a skip.
REQUIRE_ENV = "BOXLITE_MCP_REQUIRE_HAPROXY"
#: The config names this many replicas at most (MCP_REPLICA_1..3).
MAX_REPLICAS = 3
START_TIMEOUT = 15.0


def haproxy_binary() -> str | None:
    return shutil.which("haproxy")


def haproxy_required() -> bool:
    return bool(os.environ.get(REQUIRE_ENV))


def missing_reason() -> str:
    return f"haproxy is not installed (apt-get install haproxy); set {REQUIRE_ENV}=1 to fail"


@contextmanager
def haproxy(lb_port: int, replicas: list[str], log: Path) -> Iterator[str]:
    """HAProxy on 127.0.0.1:lb_port in front of ``replicas`` (host:port each); yields
    the balancer's MCP URL. Its log (one line per request) is appended to ``log``."""
    binary = haproxy_binary()
    if binary is None:
        raise RuntimeError(missing_reason())
    if not 1 <= len(replicas) <= MAX_REPLICAS:
        raise ValueError(
            f"deploy/haproxy.cfg names 1 to {MAX_REPLICAS} replicas, not {len(replicas)}"
        )
    env = {**os.environ, "MCP_LB_BIND": f"127.0.0.1:{lb_port}"}
    for index, address in enumerate(replicas, start=1):
        env[f"MCP_REPLICA_{index}"] = address
    checked = subprocess.run(
        [binary, "-c", "-q", "-f", str(CONFIG)], env=env, capture_output=True, text=True
    )
    if checked.returncode != 0:
        raise RuntimeError(f"haproxy refuses {CONFIG}: {checked.stderr.strip()}")
    with log.open("ab") as out:
        process = subprocess.Popen(
            [binary, "-db", "-f", str(CONFIG)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                httpx2.get(f"http://127.0.0.1:{lb_port}/mcp", timeout=1)
                break
            except httpx2.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    tail = log.read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"haproxy did not start; its log ends:\n{tail}") from None
                time.sleep(0.05)
        yield f"http://127.0.0.1:{lb_port}/mcp"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
