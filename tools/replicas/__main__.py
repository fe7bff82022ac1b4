"""``python -m tools.replicas``: run a replica cluster on loopback until interrupted.

Prints the balancer's URL, each replica's URL and the file holding the bearer
tokens (``token subject`` lines; the tokens are made per run and never printed).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
from pathlib import Path

import anyio

from .cluster import DEFAULT_SUBJECTS, Cluster
from .haproxy import MAX_REPLICAS


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m tools.replicas",
        description="Redis, the BoxLite test server, N boxlite-mcp replicas (--state redis, "
        "--runtime rest, bearer tokens) and HAProxy with deploy/haproxy.cfg, on loopback.",
    )
    p.add_argument("--replicas", type=int, default=3, choices=range(1, MAX_REPLICAS + 1))
    p.add_argument("--work", type=Path, default=None, help="scratch directory (default: a new one)")
    p.add_argument(
        "--subject",
        action="append",
        default=None,
        help=f"an owner to make a token for (repeatable; default: {', '.join(DEFAULT_SUBJECTS)})",
    )
    p.add_argument(
        "--idle-ttl", type=float, default=None, help="BOXLITE_MCP_BOX_IDLE_TTL_SECONDS of replicas"
    )
    return p.parse_args(argv)


async def run(args: argparse.Namespace) -> None:
    work = args.work or Path(tempfile.mkdtemp(prefix="boxlite-replicas-"))
    settings: dict[str, object] = {}
    if args.idle_ttl is not None:
        settings["box_idle_ttl_seconds"] = args.idle_ttl
    subjects = tuple(args.subject or DEFAULT_SUBJECTS)
    async with Cluster(work, args.replicas, subjects=subjects, settings=settings) as cluster:
        tokens = work / "tokens"
        tokens.write_text("".join(f"{t} {s}\n" for s, t in cluster.tokens.items()))
        os.chmod(tokens, 0o600)
        print(f"balancer {cluster.balancer_url}", flush=True)
        for index, url in enumerate(cluster.replica_urls, start=1):
            print(f"replica{index} {url}", flush=True)
        print(f"redis {cluster.state_url}", flush=True)
        print(f"tokens {tokens}", flush=True)
        print(f"logs {work}", flush=True)
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                break


def main(argv: list[str] | None = None) -> None:
    try:
        anyio.run(run, parse_args(argv))
    except RuntimeError as exc:
        sys.exit(f"tools.replicas: {exc}")


if __name__ == "__main__":
    main()
