"""Fault injection: chosen and random cuts fire, and what the protocols promise holds:
an idempotent retry makes one box; resumed streams lose and repeat nothing."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid

import httpx
import pytest
from httpx_ws import HTTPXWSException, WebSocketUpgradeError, aconnect_ws

from tests.server.conftest import StartServer
from tools.boxlite_server import CutRule, RunningServer

pytestmark = pytest.mark.anyio

SCRIPT = "for i in $(seq 1 {n}); do echo out$i; echo err$i >&2; done"


def expected(n: int) -> tuple[bytes, bytes]:
    return (
        b"".join(b"out%d\n" % i for i in range(1, n + 1)),
        b"".join(b"err%d\n" % i for i in range(1, n + 1)),
    )


async def exec_in(http: httpx.AsyncClient, root: str, script: str) -> str:
    response = await http.post(
        f"{root}/boxes/fb/exec",
        json={"command": "sh", "args": ["-c", script]},
        headers={"idempotency-key": str(uuid.uuid4())},
    )
    assert response.status_code == 201, response.text
    execution_id: str = response.json()["execution_id"]
    return execution_id


async def sse_read(http: httpx.AsyncClient, eid: str) -> tuple[bytes, bytes, int, int]:
    """Read to the exit event, resuming after every cut from the last whole event."""
    out = {"stdout": b"", "stderr": b""}
    last_id: str | None = None
    attempts = 0
    while True:
        attempts += 1
        headers = {"last-event-id": last_id} if last_id else {}
        buffer = b""
        try:
            async with http.stream(
                "GET", f"/v1/default/boxes/fb/executions/{eid}/output", headers=headers
            ) as stream:
                async for chunk in stream.aiter_bytes():
                    buffer += chunk
                    while b"\n\n" in buffer:
                        block, buffer = buffer.split(b"\n\n", 1)
                        fields = dict(
                            line.split(": ", 1)
                            for line in block.decode().split("\n")
                            if line and not line.startswith(":")
                        )
                        if "id" in fields:
                            last_id = fields["id"]
                        if fields.get("event") in out:
                            out[fields["event"]] += base64.b64decode(
                                json.loads(fields["data"])["data"]
                            )
                        elif fields.get("event") == "exit":
                            code = json.loads(fields["data"])["exit_code"]
                            return out["stdout"], out["stderr"], code, attempts
        except httpx.HTTPError:
            continue  # cut: resume


async def ws_read(
    server: RunningServer, http: httpx.AsyncClient, eid: str
) -> tuple[bytes, bytes, int, int]:
    """Attach until the exit frame, re-attaching with offsets after every cut."""
    streams = {1: b"", 2: b""}
    attempts = 0
    while True:
        attempts += 1
        query = f"stdout_offset={len(streams[1])}&stderr_offset={len(streams[2])}"
        try:
            async with aconnect_ws(
                f"{server.url}/v1/boxes/fb/executions/{eid}/attach?{query}", http
            ) as ws:
                while True:
                    data = (await ws.receive()).data
                    if isinstance(data, bytes | bytearray):
                        streams[data[0]] += bytes(data[1:])
                        continue
                    frame = json.loads(data)
                    if frame["type"] == "exit":
                        assert frame["stdout_bytes"] == len(streams[1])
                        return streams[1], streams[2], frame["exit_code"], attempts
        except WebSocketUpgradeError as exc:
            assert exc.response.status_code == 409  # old socket not yet released
            await asyncio.sleep(0.02)
        except (HTTPXWSException, httpx.HTTPError):
            continue
        except ExceptionGroup as group:  # httpx-ws reports a cut from its task group
            if not all(isinstance(e, HTTPXWSException | httpx.HTTPError) for e in group.exceptions):
                raise


async def test_create_cut_after_work_then_retry_with_key_makes_one_box(
    server: RunningServer, http: httpx.AsyncClient
) -> None:
    server.faults.add(CutRule("response", operation="createBox"))
    key = str(uuid.uuid4())
    with pytest.raises(httpx.HTTPError):
        await http.post("/v1/boxes", json={"name": "one"}, headers={"idempotency-key": key})
    assert [f.operation for f in server.faults.fired] == ["createBox"]
    retry = await http.post("/v1/boxes", json={"name": "one"}, headers={"idempotency-key": key})
    assert retry.status_code == 201 and retry.headers["idempotent-replayed"] == "true"
    boxes = (await http.get("/v1/boxes")).json()["boxes"]
    assert [b["name"] for b in boxes] == ["one"]
    assert boxes[0]["box_id"] == retry.json()["box_id"]
    # Without a key, a retried create is a second create (here: a name clash).
    server.faults.add(CutRule("response", operation="createBox"))
    with pytest.raises(httpx.HTTPError):
        await http.post("/v1/boxes", json={"name": "two"})
    assert (await http.post("/v1/boxes", json={"name": "two"})).status_code == 409


async def test_chosen_stream_cuts(server: RunningServer, http: httpx.AsyncClient) -> None:
    await http.post("/v1/boxes", json={"name": "fb"})
    server.faults.add(CutRule("sse", after_bytes=150, times=2))
    eid = await exec_in(http, "/v1/default", SCRIPT.format(n=50))
    out, err, code, attempts = await sse_read(http, eid)
    assert (out, err, code) == (*expected(50), 0)
    assert attempts == 3 and [f.where for f in server.faults.fired] == ["sse", "sse"]
    assert all(f.at_bytes == 150 and not f.random for f in server.faults.fired)

    server.faults.add(CutRule("ws", after_bytes=100, times=2))
    eid = await exec_in(http, "/v1", SCRIPT.format(n=50))
    out, err, code, attempts = await ws_read(server, http, eid)
    assert (out, err, code) == (*expected(50), 0)
    assert attempts >= 3 and [f.where for f in server.faults.fired][-2:] == ["ws", "ws"]


async def test_random_cuts_lose_nothing(start_server: StartServer) -> None:
    server = await start_server(cut_random=0.2, seed=7, cut_scopes=["stream", "keyed"])
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        key = str(uuid.uuid4())
        for _ in range(20):  # the create itself may be cut; the key makes retries safe
            try:
                created = await http.post(
                    "/v1/boxes", json={"name": "fb"}, headers={"idempotency-key": key}
                )
                break
            except httpx.HTTPError:
                continue
        assert created.status_code == 201

        async def one(i: int) -> None:
            root = "/v1/default" if i % 2 else "/v1"
            for _ in range(50):
                try:
                    eid = await exec_in(http, root, SCRIPT.format(n=20 + i))
                    break
                except httpx.HTTPError:
                    continue
            if root == "/v1":
                out, err, code, _ = await ws_read(server, http, eid)
            else:
                out, err, code, _ = await sse_read(http, eid)
            assert (out, err, code) == (*expected(20 + i), 0)

        await asyncio.gather(*(one(i) for i in range(24)))
    fired = {f.where for f in server.faults.fired}
    assert {"sse", "ws"} <= fired and all(f.random for f in server.faults.fired)
    assert (await _count_boxes(server)) == 1


async def _count_boxes(server: RunningServer) -> int:
    async with httpx.AsyncClient(base_url=server.url) as http:
        return len((await http.get("/v1/boxes")).json()["boxes"])


async def test_fault_api_over_http(start_server: StartServer) -> None:
    server = await start_server(fault_api=True)
    async with httpx.AsyncClient(base_url=server.url) as http:
        plan = await http.post(
            "/_faults", json={"rules": [{"where": "response", "operation": "listBoxes"}]}
        )
        assert plan.json()["rules"][0]["operation"] == "listBoxes"
        with pytest.raises(httpx.HTTPError):
            await http.get("/v1/boxes")
        fired = (await http.get("/_faults")).json()["fired"]
        assert fired == [
            {
                "where": "response",
                "operation": "listBoxes",
                "generation": "0.10",
                "at_bytes": 0,
                "random": False,
            }
        ]
        assert (await http.get("/v1/boxes")).status_code == 200
        assert (await http.delete("/_faults")).json()["fired"] == []
        assert (await http.get("/_violations")).json() == []
