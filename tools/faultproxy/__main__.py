"""``python -m tools.faultproxy --upstream 127.0.0.1:8000 --probability 0.3``.

Runs the proxy until interrupted. The first line on stdout says where it listens
(``faultproxy listening on http://127.0.0.1:PORT``); on exit it prints what it cut.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

from .policy import CutPolicy
from .proxy import FaultProxy


def _address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host or "127.0.0.1", int(port)


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, CutPolicy]:
    p = argparse.ArgumentParser(
        prog="python -m tools.faultproxy",
        description="A TCP proxy that cuts connections at random points.",
    )
    p.add_argument("--upstream", type=_address, required=True, help="HOST:PORT to forward to")
    p.add_argument(
        "--listen",
        type=_address,
        default=("127.0.0.1", 0),
        help="HOST:PORT to listen on (port 0: a free one; the default)",
    )
    p.add_argument(
        "--probability",
        type=float,
        default=0.2,
        help="chance of a cut per exchange (or connection, or window: see --per)",
    )
    p.add_argument(
        "--stream-probability",
        type=float,
        default=None,
        help="chance of a cut per SSE stream or WebSocket (default: --probability)",
    )
    p.add_argument(
        "--window",
        type=int,
        default=4 * 1024 * 1024,
        help="bytes: cuts land inside the first WINDOW bytes (see --scale)",
    )
    p.add_argument("--per", choices=["exchange", "connection", "window"], default="exchange")
    p.add_argument(
        "--scale",
        choices=["log", "uniform"],
        default="log",
        help="how cut offsets spread over the window",
    )
    p.add_argument(
        "--directions",
        default="up,down",
        help="which directions may be cut: up (client to server), down, or both",
    )
    p.add_argument(
        "--mode",
        choices=["reset", "close", "mixed"],
        default="mixed",
        help="reset: TCP RST; close: FIN after the bytes before the cut",
    )
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    try:
        policy = CutPolicy(
            probability=args.probability,
            window_bytes=args.window,
            per=args.per,
            stream_probability=args.stream_probability,
            scale=args.scale,
            directions=tuple(d for d in args.directions.split(",") if d),
            mode=args.mode,
            seed=args.seed,
        )
    except ValueError as exc:
        p.error(str(exc))
    return args, policy


async def run(args: argparse.Namespace, policy: CutPolicy) -> None:
    host, port = args.listen
    upstream_host, upstream_port = args.upstream
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with FaultProxy(upstream_host, upstream_port, policy, host=host, port=port) as proxy:
        print(f"faultproxy listening on {proxy.url}", flush=True)
        await stop.wait()
        stats = proxy.stats
    where = ", ".join(f"{k}: {v}" for k, v in sorted(stats.cuts_by_where().items())) or "none"
    print(
        f"faultproxy: {stats.connections} connections ({stats.refused} refused upstream), "
        f"{len(stats.cuts)} cuts ({where}), "
        f"{stats.bytes['up']} bytes up, {stats.bytes['down']} bytes down",
        file=sys.stderr,
    )


def main(argv: list[str] | None = None) -> None:
    args, policy = parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run(args, policy))


if __name__ == "__main__":
    main()
