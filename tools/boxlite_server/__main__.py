"""``python -m tools.boxlite_server``: run the server until interrupted.

The first line on stdout (and a line on stderr) says where it listens:
``boxlite-server listening on http://127.0.0.1:PORT``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path

from pydantic import ValidationError

from boxlite_mcp.runtime.base import Runtime

from .app import serve
from .config import ServerConfig


def make_runtime(name: str, home: Path | None) -> Runtime:
    """The runtime to serve; only ``bwrap`` lives in this repository."""
    if name == "bwrap":
        from boxlite_mcp.runtime.bwrap import BwrapRuntime

        return BwrapRuntime(home)
    raise SystemExit(f"boxlite-server: unknown runtime {name!r}; use bwrap")


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, ServerConfig]:
    p = argparse.ArgumentParser(
        prog="python -m tools.boxlite_server",
        description="A BoxLite REST server (API 0.9 and 0.10) over a "
        "boxlite-mcp runtime, for tests and benchmarks.",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    p.add_argument("--runtime", default="bwrap", choices=["bwrap"])
    p.add_argument("--home", type=Path, default=None, help="runtime home directory")
    p.add_argument("--generation", default="both", choices=["both", "0.9", "0.10"])
    p.add_argument("--v09-prefix", default="v1", help="0.9 URL prefix (BOXLITE_REST_PREFIX)")
    p.add_argument("--v10-prefix", default=None, help="0.10 routing prefix (none by default)")
    p.add_argument("--api-key", default=None, help="require this bearer on 0.10 routes")
    p.add_argument("--client-id", default=None, help="0.9 OAuth2 client id")
    p.add_argument("--client-secret", default=None, help="0.9 OAuth2 client secret")
    p.add_argument("--token-ttl", type=int, default=3600, help="0.9 token lifetime, seconds")
    p.add_argument(
        "--strict",
        action="store_true",
        help="check every request and response against the OpenAPI documents",
    )
    for cap in ("snapshots", "clone", "export", "import", "tty"):
        p.add_argument(f"--no-{cap}", action="store_true", help=f"turn {cap} off")
    p.add_argument(
        "--backlog-bytes", type=int, default=None, help="output kept per execution for replay"
    )
    p.add_argument(
        "--sse-event-bytes",
        type=int,
        default=None,
        help="largest output event on 0.9 SSE streams (a resume restarts an event)",
    )
    p.add_argument(
        "--cut-random",
        type=float,
        default=0.0,
        help="probability of cutting at each opportunity (0..1)",
    )
    p.add_argument(
        "--cut-scope", default="stream,keyed", help="where random cuts strike: stream,keyed,get,all"
    )
    p.add_argument("--seed", type=int, default=None)
    p.add_argument(
        "--fault-api",
        action="store_true",
        help="serve /_faults and /_violations for remote control",
    )
    p.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    args = p.parse_args(argv)
    values: dict[str, object] = {
        "host": args.host,
        "port": args.port,
        "generation": args.generation,
        "v09_prefix": args.v09_prefix,
        "v10_prefix": args.v10_prefix,
        "api_key": args.api_key,
        "client_id": args.client_id,
        "client_secret": args.client_secret,
        "token_ttl_seconds": args.token_ttl,
        "strict": args.strict,
        "snapshots": not args.no_snapshots,
        "clone": not args.no_clone,
        "export": not args.no_export,
        "import": not args.no_import,
        "tty": not args.no_tty,
        "cut_random": args.cut_random,
        "seed": args.seed,
        "cut_scopes": [s for s in args.cut_scope.split(",") if s],
        "fault_api": args.fault_api,
        "log_level": args.log_level,
    }
    if args.backlog_bytes is not None:
        values["backlog_bytes"] = args.backlog_bytes
    if args.sse_event_bytes is not None:
        values["sse_event_max_bytes"] = args.sse_event_bytes
    try:
        return args, ServerConfig.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "options"
        p.error(f"{where}: {first['msg']}")
        raise  # unreachable: p.error exits


async def run(args: argparse.Namespace, config: ServerConfig) -> None:
    runtime = make_runtime(args.runtime, args.home)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        async with serve(runtime, config) as server:
            line = f"boxlite-server listening on {server.url}"
            print(line, flush=True)
            print(line, file=sys.stderr, flush=True)
            await stop.wait()
            if server.violations:
                print(
                    f"boxlite-server: {len(server.violations)} contract violations", file=sys.stderr
                )
    finally:
        with contextlib.suppress(Exception):
            await runtime.aclose()


def main(argv: list[str] | None = None) -> None:
    args, config = parse_args(argv)
    logging.basicConfig(
        level=config.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    asyncio.run(run(args, config))


if __name__ == "__main__":
    main()
