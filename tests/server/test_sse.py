"""0.9 executions: SSE output with exact Last-Event-ID replay, stdin by POST, signals."""

from __future__ import annotations

import base64
import hashlib
import json

import httpx
import pytest

pytestmark = pytest.mark.anyio

ROOT = "/v1/default"


async def start(http: httpx.AsyncClient, script: str, box: str = "sse", **extra: object) -> str:
    if (await http.head(f"{ROOT}/boxes/{box}")).status_code == 404:
        await http.post(f"{ROOT}/boxes", json={"name": box})
    response = await http.post(
        f"{ROOT}/boxes/{box}/exec", json={"command": "sh", "args": ["-c", script], **extra}
    )
    assert response.status_code == 201, response.text
    assert response.headers["location"].endswith(response.json()["execution_id"])
    execution_id: str = response.json()["execution_id"]
    return execution_id


def parse(body: bytes) -> list[dict[str, str]]:
    """SSE events (comments skipped) as dicts of their fields."""
    events = []
    for block in body.decode().split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.split("\n"):
            if line and not line.startswith(":"):
                name, _, value = line.partition(": ")
                fields[name] = value
        if fields:
            events.append(fields)
    return events


def output(events: list[dict[str, str]]) -> dict[str, bytes]:
    out = {"stdout": b"", "stderr": b""}
    for event in events:
        if event.get("event") in out:
            out[event["event"]] += base64.b64decode(json.loads(event["data"])["data"])
    return out


async def read(
    http: httpx.AsyncClient, eid: str, box: str = "sse", last_event_id: str | None = None
) -> list[dict[str, str]]:
    headers = {"accept": "text/event-stream"}
    if last_event_id is not None:
        headers["last-event-id"] = last_event_id
    async with http.stream(
        "GET", f"{ROOT}/boxes/{box}/executions/{eid}/output", headers=headers
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        return parse(b"".join([c async for c in response.aiter_bytes()]))


async def test_output_exit_and_status(http: httpx.AsyncClient) -> None:
    eid = await start(http, "echo out; echo err >&2; exit 3")
    events = await read(http, eid)
    assert output(events) == {"stdout": b"out\n", "stderr": b"err\n"}
    assert events[-1]["event"] == "exit"
    exit_data = json.loads(events[-1]["data"])
    assert exit_data["exit_code"] == 3 and isinstance(exit_data["duration_ms"], int)
    status = (await http.get(f"{ROOT}/boxes/sse/executions/{eid}")).json()
    assert status["status"] == "completed" and status["exit_code"] == 3


async def test_every_event_id_resumes_exactly(http: httpx.AsyncClient) -> None:
    script = "for i in $(seq 1 40); do echo out$i; echo err$i >&2; done"
    eid = await start(http, script)
    events = await read(http, eid)
    full = output(events)
    assert full["stdout"] == b"".join(b"out%d\n" % i for i in range(1, 41))
    assert full["stderr"] == b"".join(b"err%d\n" % i for i in range(1, 41))
    for index, event in enumerate(events[:-1]):
        rest = await read(http, eid, last_event_id=event["id"])
        assert [e.get("event") for e in rest][-1] == "exit"
        before, after = output(events[: index + 1]), output(rest)
        for stream in ("stdout", "stderr"):
            assert before[stream] + after[stream] == full[stream], (index, stream)
    beyond = await http.get(
        f"{ROOT}/boxes/sse/executions/{eid}/output", headers={"last-event-id": "999999-0"}
    )
    assert beyond.status_code == 400
    garbage = await http.get(
        f"{ROOT}/boxes/sse/executions/{eid}/output", headers={"last-event-id": "nope"}
    )
    assert garbage.status_code == 400


async def test_stdin_by_post(http: httpx.AsyncClient) -> None:
    eid = await start(http, "cat; echo done")
    url = f"{ROOT}/boxes/sse/executions/{eid}/input"
    first = await http.post(
        url, content=b"hello ", headers={"content-type": "application/octet-stream"}
    )
    assert first.status_code == 204, first.text
    last = await http.post(
        url,
        content=b"world\n",
        headers={"content-type": "application/octet-stream", "x-close-stdin": "true"},
    )
    assert last.status_code == 204
    assert output(await read(http, eid))["stdout"] == b"hello world\ndone\n"
    after = await http.post(
        url, content=b"late", headers={"content-type": "application/octet-stream"}
    )
    assert after.status_code == 409


async def test_signal_and_kill(http: httpx.AsyncClient) -> None:
    eid = await start(
        http, "trap 'echo term; exit 42' TERM; echo ready; while true; do sleep 0.05; done"
    )
    url = f"{ROOT}/boxes/sse/executions/{eid}"
    async with http.stream("GET", f"{url}/output") as stream:
        chunks = stream.aiter_bytes()
        assert b"event: stdout" in await chunks.__anext__()  # "ready"
        assert (await http.post(f"{url}/signal", json={"signal": 15})).status_code == 204
        rest = b"".join([c async for c in chunks])
    assert json.loads(parse(rest)[-1]["data"])["exit_code"] == 42

    eid = await start(http, "sleep 60")
    url = f"{ROOT}/boxes/sse/executions/{eid}"
    assert (await http.post(f"{url}/signal", json={"signal": 9})).status_code == 204
    events = await read(http, eid)
    assert json.loads(events[-1]["data"])["exit_code"] == -9
    assert (await http.get(url)).json()["status"] == "killed"
    resize = await http.post(f"{url}/resize", json={"cols": 80, "rows": 24})
    assert resize.status_code == 409  # no TTY


async def test_timeout_reports_timed_out(http: httpx.AsyncClient) -> None:
    eid = await start(http, "sleep 30", timeout_seconds=0.5)
    events = await read(http, eid)
    assert events[-1]["event"] == "exit"
    assert (await http.get(f"{ROOT}/boxes/sse/executions/{eid}")).json()["status"] == "timed_out"


async def test_large_interleaved_output_is_exact(http: httpx.AsyncClient) -> None:
    # 8 MiB on stdout with stderr lines in between: every byte, in order, once.
    script = (
        "i=0; while [ $i -lt 8 ]; do head -c 1048576 /dev/zero | tr '\\0' 'x'; "
        "echo chunk$i >&2; i=$((i+1)); done"
    )
    eid = await start(http, script)
    events = await read(http, eid)
    out = output(events)
    assert len(out["stdout"]) == 8 * 1024 * 1024 and set(out["stdout"]) == {ord("x")}
    assert out["stderr"] == b"".join(b"chunk%d\n" % i for i in range(8))
    assert hashlib.sha256(out["stdout"]).digest() == hashlib.sha256(b"x" * 8388608).digest()


async def test_unknown_execution_is_404(http: httpx.AsyncClient) -> None:
    await http.post(f"{ROOT}/boxes", json={"name": "sse"})
    missing = await http.get(f"{ROOT}/boxes/sse/executions/exec-nope/output")
    assert missing.status_code == 404
    assert missing.json()["error"]["type"] == "NotFoundError"


async def test_finished_output_budget_evicts_oldest(start_server: object) -> None:
    server = await start_server(finished_output_bytes=1024 * 1024)  # type: ignore[operator]
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        first = await start(http, "head -c 900000 /dev/zero")
        assert len(output(await read(http, first))["stdout"]) == 900000
        second = await start(http, "head -c 900000 /dev/zero")
        assert len(output(await read(http, second))["stdout"]) == 900000
        third = await start(http, "true")  # registering it sweeps finished sessions
        assert (await http.get(f"{ROOT}/boxes/sse/executions/{first}")).status_code == 404
        assert (await http.get(f"{ROOT}/boxes/sse/executions/{second}")).status_code == 200
        assert third
