"""Boxes, snapshots, clones, metrics and images: requests carry what was asked, answers map."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from boxlite_mcp.runtime.errors import (
    ImageError,
    InvalidArgumentError,
    InvalidStateError,
    NotFoundError,
)
from boxlite_mcp.runtime.types import BoxOptions, NetworkSpec, VolumeSpec

from .conftest import running
from .fake import FakeBoxlite

pytestmark = pytest.mark.anyio


async def test_create_sends_only_the_fields_set(generation: str) -> None:
    fake = FakeBoxlite()
    async with running(fake, generation) as runtime:
        await runtime.create(BoxOptions())
        await runtime.create(
            BoxOptions(
                name="web",
                cpus=2,
                env={"A": "1"},
                network=NetworkSpec(mode="enabled"),
                volumes=[VolumeSpec(host_path="/h", guest_path="/g")],
            )
        )
        await runtime.create(BoxOptions(name="gone", auto_remove=True, detach=None))
    assert fake.recorder is not None
    bodies = [json.loads(r.body) for r in fake.recorder.matching("POST", "/boxes")]
    assert bodies[0] == {}
    assert bodies[1] == {
        "name": "web",
        "cpus": 2,
        "env": {"A": "1"},
        "network": {"mode": "enabled"},
        "volumes": [{"host_path": "/h", "guest_path": "/g"}],
    }
    # 0.10 has no auto_remove (its schema forbids unknown fields); null is never sent.
    assert bodies[2] == (
        {"name": "gone", "auto_remove": True} if generation == "0.9" else {"name": "gone"}
    )


@pytest.mark.parametrize(
    "fields", [{"cpus": 0}, {"memory_mib": 1}, {"name": "bad name/slash"}, {"cpus": 99}]
)
async def test_options_slipped_past_the_model_are_refused_without_a_request(
    generation: str, fields: dict[str, object]
) -> None:
    fake = FakeBoxlite()
    async with running(fake, generation) as runtime:
        with pytest.raises(InvalidArgumentError):
            await runtime.create(BoxOptions.model_construct(**fields))  # type: ignore[arg-type]
        with pytest.raises(InvalidArgumentError):
            await runtime.create(BoxOptions(image="alpine", rootfs_path="/r"))
    assert fake.recorder is not None
    assert fake.recorder.matching("POST", "/boxes") == []


async def test_an_unknown_box_is_not_found_naming_what_exists(generation: str) -> None:
    async with running(FakeBoxlite(), generation) as runtime:
        await runtime.create(BoxOptions(name="alpha"))
        with pytest.raises(NotFoundError) as caught:
            await runtime.get("omega")
    assert "omega" in caught.value.message and "alpha" in caught.value.message


async def test_list_follows_next_page_token(generation: str) -> None:
    fake = FakeBoxlite(page_size=2)
    async with running(fake, generation) as runtime:
        made = [await runtime.create(BoxOptions(name=f"b{i}")) for i in range(5)]
        listed = await runtime.list()
    assert [info.name for info in listed] == [box.name for box in made]
    assert fake.recorder is not None
    queries = [r.query for r in fake.recorder.matching("GET", "/boxes")]
    assert queries == ["", "pageToken=2", "pageToken=4"]


async def test_lifecycle_requests(generation: str) -> None:
    fake = FakeBoxlite()
    async with running(fake, generation) as runtime:
        box = await runtime.create(BoxOptions(name="life"))
        await box.start()
        assert (await box.info()).running
        with pytest.raises(InvalidStateError):
            await runtime.remove("life")
        await box.stop(timeout_seconds=5)
        await box.stop()
        await box.start()
        await runtime.remove(box.id, force=True)
        with pytest.raises(NotFoundError):
            await box.info()
    assert fake.recorder is not None
    stops = fake.recorder.matching("POST", "/stop")
    assert [r.body for r in stops] == [b'{"timeout_seconds":5}', b""]
    assert fake.recorder.matching("DELETE", f"/boxes/{box.id}")[0].query == "force=true"


async def test_metrics_flatten_boot_timing(generation: str) -> None:
    async with running(FakeBoxlite(), generation) as runtime:
        box = await runtime.create(BoxOptions())
        metrics = await box.metrics()
        totals = await runtime.metrics()
    assert metrics.commands_executed_total == 3 and metrics.memory_bytes == 1024
    assert metrics.total_create_ms == 40 and metrics.guest_boot_ms == 30
    assert metrics.container_init_ms == 5 and metrics.box_spawn_ms is None
    assert totals.boxes_created_total == 1 and totals.total_commands_executed == 2


async def test_snapshots_parse_unix_times(generation: str) -> None:
    async with running(FakeBoxlite(), generation) as runtime:
        box = await runtime.create(BoxOptions())
        created = await box.snapshot_create("s1")
        listed = await box.snapshot_list()
        got = await box.snapshot_get("s1")
        with pytest.raises(NotFoundError):
            await box.snapshot_get("nope")
        with pytest.raises(InvalidArgumentError):
            await box.snapshot_create("a/b")
    assert created.created_at == datetime.fromtimestamp(1_700_000_000, tz=UTC)
    assert [s.name for s in listed] == ["s1"] and got.size_bytes == 3


async def test_clone_many_is_all_or_nothing(generation: str) -> None:
    fake = FakeBoxlite()
    async with running(fake, generation) as runtime:
        box = await runtime.create(BoxOptions(name="src"))
        clones = await box.clone_many(2, ["c1", "c2"])
        assert [c.name for c in clones] == ["c1", "c2"]
        with pytest.raises(InvalidStateError):
            await box.clone_many(3, ["d1", "d2", "fail"])
        with pytest.raises(InvalidArgumentError):
            await box.clone_many(2, ["only-one"])
        names = {info.name for info in await runtime.list()}
    assert names == {"src", "c1", "c2"}


async def test_image_pull(generation: str) -> None:
    async with running(FakeBoxlite(), generation) as runtime:
        image = await runtime.pull_image("python:3.12")
        with pytest.raises(ImageError):
            await runtime.pull_image("missing:tag")
    assert image.reference == "python:3.12" and image.id == "sha256:1"


async def test_runtime_info_names_the_server(generation: str) -> None:
    async with running(FakeBoxlite(), generation) as runtime:
        info = await runtime.info()
    assert info.name == "rest" and info.api_generation == generation
    assert info.endpoint == runtime.settings.url
    assert info.capabilities.clone_enabled and info.capabilities.max_cpus == 8


async def test_network_within_the_operators_list_and_secrets_as_secret_specs(
    generation: str,
) -> None:
    """allow_net checked against --net-allow before any request; secrets go as SecretSpec."""
    from boxlite_mcp.runtime.network.secrets import Secret

    fake = FakeBoxlite()
    async with running(fake, generation) as runtime:
        lists = type(runtime.net_allow)
        runtime.secrets = {"TOK": Secret("TOK", ("api.github.com",), "value-1")}
        for operator, allow, says in (
            (["pypi.org", "*.github.com"], ["example.com"], "outside"),
            (["*"], ["pypi.org:443"], "no ports"),  # a server would open every port
            (["*:443"], None, "no ports"),
        ):
            runtime.net_allow = lists.parse(operator)
            with pytest.raises(InvalidArgumentError, match=says):
                await runtime.create(
                    BoxOptions(network=NetworkSpec(mode="enabled", allow_net=allow))
                )
        runtime.net_allow = lists.parse(["pypi.org", "*.github.com"])
        with pytest.raises(InvalidArgumentError, match="'NOPE' is not configured"):
            await runtime.create(BoxOptions(network=NetworkSpec(mode="enabled"), secrets=["NOPE"]))
        assert fake.recorder is not None
        assert fake.recorder.matching("POST", "/boxes") == []
        await runtime.create(BoxOptions(network=NetworkSpec(mode="enabled"), secrets=["TOK"]))
    (body,) = [json.loads(r.body) for r in fake.recorder.matching("POST", "/boxes")]
    assert body["network"] == {"mode": "enabled", "allow_net": ["pypi.org", "*.github.com"]}
    assert body["secrets"] == [
        {
            "name": "TOK",
            "value": "value-1",
            "hosts": ["api.github.com"],
            "placeholder": "<BOXLITE_SECRET:TOK>",
        }
    ]
    assert body["env"] == {"TOK": "<BOXLITE_SECRET:TOK>"}
