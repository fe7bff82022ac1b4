"""The official BoxLite SDK (``pip install boxlite``) driving a REST server.

Run as ``python sdk_scenario.py URL API_KEY WORKDIR``; prints one JSON object
with what the SDK saw. It runs in its own process because the SDK is native
code whose interpreter teardown sometimes aborts (SIGABRT after the work is
done, observed with boxlite 0.10.8); the script ends with ``os._exit`` once the
result is printed so that quirk cannot hide a result.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any

import boxlite


async def lines(stream: Any) -> str:
    return "".join([chunk async for chunk in stream]) if stream is not None else ""


async def run_exec(
    box: Any, command: str, args: list[str], stdin: bytes | None = None
) -> dict[str, Any]:
    execution = await box.exec(command, args)
    if stdin is not None:
        writer = execution.stdin()
        await writer.send_input(stdin)
        await writer.close()
    out, err = await asyncio.gather(lines(execution.stdout()), lines(execution.stderr()))
    result = await execution.wait()
    return {"stdout": out, "stderr": err, "exit_code": result.exit_code}


async def scenario(url: str, api_key: str, workdir: Path) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    runtime = boxlite.Boxlite.rest(
        boxlite.BoxliteRestOptions(url=url, credential=boxlite.ApiKeyCredential(api_key))
    )
    box = await runtime.create(boxlite.BoxOptions(), name="sdk-box")
    info = await box.info()
    seen["created"] = {
        "id": box.id,
        "name": box.name,
        "status": info.state.status,
        "image": info.image,
    }
    seen["listed"] = sorted(i.name or i.id for i in await runtime.list_info())
    seen["get_by_name"] = (await runtime.get_info("sdk-box")).id
    seen["get_missing"] = await runtime.get_info("no-such-box")

    seen["exec"] = await run_exec(box, "sh", ["-c", "echo out; echo err >&2; exit 3"])
    seen["exec_stdin"] = await run_exec(box, "sh", ["-c", "cat; echo end"], stdin=b"fed\n")
    seen["exec_big"] = await run_exec(box, "sh", ["-c", "head -c 3000000 /dev/zero | tr '\\0' a"])
    seen["exec_big"]["stdout"] = len(seen["exec_big"]["stdout"])

    src = workdir / "in"
    (src / "sub").mkdir(parents=True)
    (src / "one.txt").write_text("one\n")
    (src / "sub" / "two.txt").write_text("two\n")
    # The SDK copies a directory itself (docker cp style); "SRC/." copies its contents.
    await box.copy_in(str(src / "one.txt"), "/srv/one.txt")
    await box.copy_in(str(src), "/srv/tree")
    await box.copy_in(f"{src}/.", "/srv/flat")
    seen["in_box"] = await run_exec(
        box, "sh", ["-c", "cd /srv && find . | sort && cat one.txt flat/sub/two.txt"]
    )
    await box.copy_out("/srv/one.txt", str(workdir / "back.txt"))
    await box.copy_out("/srv/flat", str(workdir / "back-tree"))
    back = workdir / "back-tree"
    seen["copied_out"] = {
        "file": (workdir / "back.txt").read_text(),
        "tree": sorted(str(p.relative_to(back)) for p in back.rglob("*")),
        "two": (back / "sub" / "two.txt").read_text() if (back / "sub").exists() else None,
    }

    metrics = await box.metrics()
    seen["box_metrics"] = {
        "commands": metrics.commands_executed_total,
        "total_create_ms": metrics.total_create_duration_ms,
    }
    runtime_metrics = await runtime.metrics()
    seen["runtime_metrics"] = {
        "boxes_created": runtime_metrics.boxes_created_total,
        "commands": runtime_metrics.total_commands_executed,
    }

    await box.stop()
    seen["stopped"] = (await runtime.get_info("sdk-box")).state.status
    await runtime.remove("sdk-box")
    seen["removed"] = await runtime.get_info("sdk-box")
    return seen


def main() -> None:
    url, api_key, workdir = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    try:
        result: dict[str, Any] = {"ok": True, **asyncio.run(scenario(url, api_key, workdir))}
    except BaseException as exc:
        result = {
            "ok": False,
            "error": f"{type(exc).__name__}: {exc}",
            "traceback": traceback.format_exc(),
        }
    print(json.dumps(result, default=str), flush=True)
    os._exit(0)


if __name__ == "__main__":
    main()
