"""``python -m tools.hostile_server``: serve every hostile behaviour until interrupted.

The first line on stdout says where it listens:
``hostile-server listening on http://127.0.0.1:PORT``; a client meets behaviour
NAME at ``http://127.0.0.1:PORT/b/NAME``. ``--list`` prints the behaviours.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

from .app import serve_hostile
from .base import HostileConfig
from .catalogue import BEHAVIOURS


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, HostileConfig]:
    defaults = HostileConfig()
    p = argparse.ArgumentParser(
        prog="python -m tools.hostile_server",
        description="A deliberately malicious BoxLite REST server.",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    p.add_argument(
        "--big-bytes",
        type=int,
        default=defaults.big_bytes,
        help="size of huge bodies, lines, frames and bombs",
    )
    p.add_argument("--tar-entries", type=int, default=defaults.tar_entries)
    p.add_argument("--trickle-seconds", type=float, default=defaults.trickle_seconds)
    p.add_argument(
        "--endless-bytes",
        type=int,
        default=defaults.endless_bytes,
        help="where 'endless' streams stop (default: never, in practice)",
    )
    p.add_argument("--list", action="store_true", help="list the behaviours and exit")
    args = p.parse_args(argv)
    return args, HostileConfig(
        big_bytes=args.big_bytes,
        tar_entries=args.tar_entries,
        trickle_seconds=args.trickle_seconds,
        endless_bytes=args.endless_bytes,
    )


async def run(args: argparse.Namespace, config: HostileConfig) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with serve_hostile(config, args.host, args.port) as server:
        print(f"hostile-server listening on {server.url}", flush=True)
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    args, config = parse_args(argv)
    if args.list:
        for b in BEHAVIOURS:
            print(f"{b.name:28} {b.category:10} {'/'.join(b.generations):9} {b.description}")
        return
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run(args, config))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
