"""Box routes over real HTTP, both generations, strict mode on (no violations)."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.server.test_sse import output, parse
from tools.boxlite_server import RunningServer

pytestmark = pytest.mark.anyio

ROOTS = ["/v1/default", "/v1"]  # 0.9, 0.10


@pytest.mark.parametrize("root", ROOTS)
async def test_box_lifecycle(http: httpx.AsyncClient, root: str) -> None:
    created = await http.post(f"{root}/boxes", json={"name": "life"})
    assert created.status_code == 201, created.text
    box = created.json()
    assert box["name"] == "life" and box["status"] == "configured"
    assert len(box["box_id"]) == 26
    assert created.headers["location"] == f"{root}/boxes/{box['box_id']}"
    assert created.headers["x-request-id"].startswith("req_")

    by_name = await http.get(f"{root}/boxes/life")
    assert by_name.json()["box_id"] == box["box_id"]
    assert (await http.head(f"{root}/boxes/{box['box_id']}")).status_code == 204
    assert (await http.head(f"{root}/boxes/nope")).status_code == 404

    started = await http.post(f"{root}/boxes/life/start")
    assert started.json()["status"] == "running"
    running_delete = await http.delete(f"{root}/boxes/life")
    assert running_delete.status_code == 409
    assert running_delete.json()["error"]["type"] == "InvalidStateError"

    stopped = await http.post(f"{root}/boxes/life/stop", json={"timeout_seconds": 1})
    assert stopped.json()["status"] == "stopped"
    assert (await http.delete(f"{root}/boxes/life")).status_code == 204
    gone = await http.get(f"{root}/boxes/life")
    assert gone.status_code == 404


async def test_error_bodies_follow_each_document(http: httpx.AsyncClient) -> None:
    old = (await http.get("/v1/default/boxes/missing")).json()["error"]
    assert old["type"] == "NotFoundError" and old["code"] == 404 and old["message"]
    new = (await http.get("/v1/boxes/missing")).json()["error"]
    assert new["type"] == "NotFoundError" and new["code"] == "not_found"
    assert new["request_id"].startswith("req_")

    await http.post("/v1/boxes", json={"name": "dup"})
    dup = await http.post("/v1/default/boxes", json={"name": "dup"})
    assert dup.status_code == 409 and dup.json()["error"]["type"] == "AlreadyExistsError"

    image = await http.post("/v1/boxes", json={"image": "python:3.11-slim"})
    assert image.status_code == 400, image.text
    assert image.json()["error"]["type"] == "UnsupportedError"
    assert "registry" in image.json()["error"]["message"]
    pull = await http.post("/v1/images/pull", json={"reference": "python:3.11"})
    assert pull.status_code == 422 and pull.json()["error"]["type"] == "ImageError"


async def test_default_image_alias_means_runtime_default(http: httpx.AsyncClient) -> None:
    # The official SDK sends the documents' default image when none is given.
    created = await http.post(
        "/v1/boxes",
        json={"image": "alpine:latest", "network": {"mode": "disabled"}, "detach": False},
    )
    assert created.status_code == 201, created.text
    assert created.json()["image"] == "host"


@pytest.mark.parametrize("root", ROOTS)
async def test_pagination_visits_every_box_once(http: httpx.AsyncClient, root: str) -> None:
    names = {f"page-{i}" for i in range(5)}
    for name in sorted(names):
        assert (await http.post(f"{root}/boxes", json={"name": name})).status_code == 201
    seen: list[str] = []
    token: str | None = None
    pages = 0
    while True:
        params = {"pageSize": "2", **({"pageToken": token} if token else {})}
        page = (await http.get(f"{root}/boxes", params=params)).json()
        pages += 1
        seen += [b["name"] for b in page["boxes"]]
        token = page.get("next_page_token")
        if not token:
            break
    assert pages == 3 and sorted(seen) == sorted(names)
    bad = await http.get(f"{root}/boxes", params={"pageToken": "!!"})
    assert bad.status_code == 400


async def test_config_and_me(start_server: object) -> None:
    server: RunningServer = await start_server(
        snapshots=False,  # type: ignore[operator]
        api_key="k-123",
    )
    async with httpx.AsyncClient(base_url=server.url) as http:
        config = (await http.get("/v1/config")).json()
        caps = config["capabilities"]
        assert caps["snapshots_enabled"] is False and caps["clone_enabled"] is True
        assert caps["import_enabled"] is True and config["defaults"]["auto_remove"] is False
        me = await http.get("/v1/me", headers={"authorization": "Bearer k-123"})
        assert me.json()["path_prefix"] is None
        box = await http.post("/v1/boxes", json={}, headers={"authorization": "Bearer k-123"})
        refused = await http.get(
            f"/v1/boxes/{box.json()['box_id']}/snapshots", headers={"authorization": "Bearer k-123"}
        )
        assert refused.status_code == 400
        assert refused.json()["error"]["type"] == "UnsupportedError"
        assert "snapshots_enabled" in refused.json()["error"]["message"]


async def test_idempotency_key_returns_the_first_result(http: httpx.AsyncClient) -> None:
    key = str(uuid.uuid4())
    first = await http.post("/v1/boxes", json={"name": "once"}, headers={"idempotency-key": key})
    again = await http.post("/v1/boxes", json={"name": "once"}, headers={"idempotency-key": key})
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert again.headers["idempotent-replayed"] == "true"
    other = await http.post("/v1/boxes", json={"name": "twice"}, headers={"idempotency-key": key})
    assert other.status_code == 422
    boxes = (await http.get("/v1/boxes")).json()["boxes"]
    assert [b["name"] for b in boxes] == ["once"]


async def test_snapshot_clone_export_import(http: httpx.AsyncClient) -> None:
    root = "/v1/default"
    box = (await http.post(f"{root}/boxes", json={"name": "src"})).json()
    run = await http.post(
        f"{root}/boxes/src/exec", json={"command": "sh", "args": ["-c", "echo v1 > /marker"]}
    )
    assert run.status_code == 201
    eid = run.json()["execution_id"]
    async with http.stream("GET", f"{root}/boxes/src/executions/{eid}/output") as stream:
        assert b"event: exit" in b"".join([c async for c in stream.aiter_bytes()])
    assert (
        await http.post(f"{root}/boxes/src/snapshots", json={"name": "s1"})
    ).status_code == 409  # running: must be stopped
    await http.post(f"{root}/boxes/src/stop")
    snap = await http.post(f"{root}/boxes/src/snapshots", json={"name": "s1"})
    assert snap.status_code == 201, snap.text
    assert snap.json()["box_id"] == box["box_id"]
    listed = (await http.get(f"{root}/boxes/src/snapshots")).json()["snapshots"]
    assert [s["name"] for s in listed] == ["s1"]
    assert (await http.get(f"{root}/boxes/src/snapshots/s1")).json()["name"] == "s1"
    assert (await http.post(f"{root}/boxes/src/snapshots/s1/restore")).status_code == 204

    clone = await http.post(f"{root}/boxes/src/clone", json={"name": "copy"})
    assert clone.status_code == 201 and clone.json()["name"] == "copy"

    exported = await http.post(f"{root}/boxes/src/export")
    assert exported.status_code == 200
    assert exported.headers["content-type"] == "application/octet-stream"
    imported = await http.post(
        f"{root}/boxes/import",
        params={"name": "back"},
        content=exported.content,
        headers={"content-type": "application/octet-stream"},
    )
    assert imported.status_code == 201, imported.text
    check = await http.post(f"{root}/boxes/back/exec", json={"command": "cat", "args": ["/marker"]})
    eid = check.json()["execution_id"]
    async with http.stream("GET", f"{root}/boxes/back/executions/{eid}/output") as stream:
        body = b"".join([c async for c in stream.aiter_bytes()])
    assert output(parse(body))["stdout"] == b"v1\n"
    assert (await http.delete(f"{root}/boxes/src/snapshots/s1")).status_code == 204


async def test_metrics(http: httpx.AsyncClient) -> None:
    await http.post("/v1/boxes", json={"name": "m"})
    run = await http.post("/v1/boxes/m/exec", json={"command": "true"})
    assert run.status_code == 201
    metrics = (await http.get("/v1/boxes/m/metrics")).json()
    assert metrics["commands_executed_total"] >= 1
    assert isinstance(metrics["boot_timing"], dict)
    assert "total_create_ms" in metrics["boot_timing"]
    runtime = (await http.get("/v1/default/metrics")).json()
    assert runtime["boxes_created_total"] >= 1


async def test_0_10_routing_prefix(start_server: object) -> None:
    server: RunningServer = await start_server(v10_prefix="acme/team-1")  # type: ignore[operator]
    assert server.v10_url.endswith("/v1/acme/team-1")
    async with httpx.AsyncClient(base_url=server.url) as http:
        assert (await http.get("/v1/me")).json()["path_prefix"] == "acme/team-1"
        created = await http.post("/v1/acme/team-1/boxes", json={"name": "p"})
        assert created.status_code == 201
        assert created.headers["location"].startswith("/v1/acme/team-1/boxes/")
        assert (await http.get("/v1/boxes")).status_code == 404
        assert (await http.get("/v1/default/boxes")).json()["boxes"][0]["name"] == "p"
