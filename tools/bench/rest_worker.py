"""Our REST client and the official SDK's, side by side, against one BoxLite server.

Run as its own process by ``python -m tools.bench``::

    python -m tools.bench.rest_worker --url URL --api-key KEY [--iterations N] [--mib M]

and prints one JSON object. Every client uses the same box (the SDK creates it;
ours look it up by id), and the clients take turns, one exec each in a rotating
order, so that drift on the machine hits them all alike. Clients:

- ``sdk``: the official ``boxlite`` SDK's REST client (``Boxlite.rest``), API 0.10;
- ``ours-0.10``: ``RestRuntime`` over API 0.10 (WebSocket attach);
- ``ours-0.9``: ``RestRuntime`` over API 0.9 (SSE output), which the SDK does not speak.

Its own process because the SDK is native code whose interpreter teardown may
abort after the work is done (seen with boxlite 0.10.8): the result is printed,
then the process ends with ``os._exit``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import SecretStr

from boxlite_mcp.runtime.base import Box
from boxlite_mcp.runtime.rest import RestRuntime, RestSettings
from boxlite_mcp.runtime.types import ExecRequest

BOX_NAME = "bench-rest"
WARMUP = 3

Exec = Callable[[str, list[str]], Awaitable[tuple[int, int]]]  # -> (exit code, stdout bytes)


def flood_command(nbytes: int) -> list[str]:
    """A shell command writing ``nbytes`` of ASCII to stdout, no newlines (cheap to make)."""
    return ["sh", "-c", f"head -c {nbytes} /dev/zero | tr '\\0' a"]


async def _drain(stream: Any) -> int:
    if stream is None:
        return 0
    total = 0
    async for piece in stream:
        total += len(piece)
    return total


def _sdk_stream(execution: Any, name: str) -> Any:
    try:
        return getattr(execution, name)()
    except RuntimeError:  # the SDK says "stream not available" when there is none
        return None


def sdk_exec(box: Any) -> Exec:
    """An exec through the official SDK: start, read stdout and stderr, wait."""

    async def run(command: str, args: list[str]) -> tuple[int, int]:
        execution = await box.exec(command, args)
        out, _ = await asyncio.gather(
            _drain(_sdk_stream(execution, "stdout")), _drain(_sdk_stream(execution, "stderr"))
        )
        result = await execution.wait()
        return int(result.exit_code), out

    return run


def our_exec(box: Box) -> Exec:
    """The same through this project's REST client: start, read the output, wait."""

    async def run(command: str, args: list[str]) -> tuple[int, int]:
        execution = await box.exec(ExecRequest(command=command, args=args))
        out = 0
        async for chunk in execution.output():
            if chunk.stream == "stdout":
                out += len(chunk.data)
        result = await execution.wait()
        return result.exit_code, out

    return run


async def measure(
    clients: dict[str, Exec], iterations: int, flood_bytes: int, repeats: int
) -> dict[str, Any]:
    roundtrip: dict[str, list[float]] = {name: [] for name in clients}
    roundtrip_cpu: dict[str, list[float]] = {name: [] for name in clients}
    flood: dict[str, list[dict[str, float]]] = {name: [] for name in clients}
    errors: dict[str, str] = {}
    live = dict(clients)

    async def timed(
        name: str, command: str, args: list[str], expect: int
    ) -> tuple[float, float] | None:
        cpu, start = time.process_time(), time.perf_counter()
        try:
            code, out = await live[name](command, args)
        except Exception as exc:
            errors[name] = f"{type(exc).__name__}: {exc}"
            del live[name]
            return None
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        if code != 0 or out != expect:
            errors[name] = f"exit code {code}, {out} of {expect} stdout bytes"
            del live[name]
            return None
        return wall, cpu

    for name in list(live):
        for _ in range(WARMUP):
            if name in live:
                await timed(name, "true", [], 0)
    for i in range(iterations):
        names = list(live)
        for name in names[i % len(names) :] + names[: i % len(names)] if names else []:
            taken = await timed(name, "true", [], 0)
            if taken is not None:
                roundtrip[name].append(taken[0] * 1000)
                roundtrip_cpu[name].append(taken[1] * 1000)
    command, *args = flood_command(flood_bytes)
    for i in range(repeats):
        names = list(live)
        for name in names[i % len(names) :] + names[: i % len(names)] if names else []:
            taken = await timed(name, command, args, flood_bytes)
            if taken is not None:
                flood[name].append(
                    {
                        "mb_per_s": flood_bytes / taken[0] / 1e6,
                        "seconds": taken[0],
                        "cpu_seconds": taken[1],
                    }
                )
    return {
        "roundtrip_ms": roundtrip,
        "roundtrip_cpu_ms": roundtrip_cpu,
        "flood": flood,
        "flood_bytes": flood_bytes,
        "errors": errors,
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    clients: dict[str, Exec] = {}
    errors: dict[str, str] = {}
    ours10 = RestRuntime(RestSettings(url=args.url, api="0.10", api_key=SecretStr(args.api_key)))
    ours09 = RestRuntime(RestSettings(url=args.url, api="0.9"))
    box_id: str | None = None
    try:
        try:
            import boxlite

            sdk = boxlite.Boxlite.rest(
                boxlite.BoxliteRestOptions(
                    url=args.url, credential=boxlite.ApiKeyCredential(args.api_key)
                )
            )
            sdk_box = await sdk.create(boxlite.BoxOptions(), name=BOX_NAME)
            box_id = str(sdk_box.id)
            clients["sdk"] = sdk_exec(sdk_box)
        except Exception as exc:  # not installed, or failing: measure ours alone, say why
            errors["sdk"] = f"{type(exc).__name__}: {exc}"
        if box_id is None:
            from boxlite_mcp.runtime.types import BoxOptions

            box_id = (await ours10.create(BoxOptions(name=BOX_NAME))).id
        clients["ours-0.10"] = our_exec(await ours10.get(box_id))
        clients["ours-0.9"] = our_exec(await ours09.get(box_id))
        result = await measure(clients, args.iterations, args.mib * 1024 * 1024, args.repeats)
        result["errors"] = {**errors, **result["errors"]}
        return result
    finally:
        if box_id is not None:
            try:
                await ours10.remove(box_id, force=True)
            except Exception as exc:
                print(f"rest_worker: could not remove box {box_id}: {exc}", file=sys.stderr)
        await ours10.aclose()
        await ours09.aclose()


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", required=True)
    p.add_argument("--api-key", required=True)
    p.add_argument("--iterations", type=int, default=200, help="round trips per client")
    p.add_argument("--mib", type=int, default=64, help="stdout MiB per flood")
    p.add_argument("--repeats", type=int, default=3, help="floods per client")
    return p.parse_args(argv)


def run() -> None:
    try:
        result: dict[str, Any] = {"ok": True, **asyncio.run(main(parse()))}
    except BaseException as exc:
        result = {
            "ok": False,
            "error": f"{type(exc).__name__}: {exc}",
            "traceback": traceback.format_exc(),
        }
    print(json.dumps(result), flush=True)
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    run()
