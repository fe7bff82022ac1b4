"""Snapshots, clone, export and import are refused before any request when not offered."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from boxlite_mcp.runtime.errors import UnsupportedError
from boxlite_mcp.runtime.rest import RestBox, RestRuntime
from boxlite_mcp.runtime.types import BoxOptions

from .conftest import running
from .fake import FakeBoxlite

pytestmark = pytest.mark.anyio

Operation = Callable[[RestRuntime, RestBox, Path], Awaitable[Any]]

OPERATIONS: dict[str, tuple[str, Operation]] = {
    "snapshot_create": ("snapshots", lambda rt, box, tmp: box.snapshot_create("s1")),
    "snapshot_list": ("snapshots", lambda rt, box, tmp: box.snapshot_list()),
    "snapshot_get": ("snapshots", lambda rt, box, tmp: box.snapshot_get("s1")),
    "snapshot_remove": ("snapshots", lambda rt, box, tmp: box.snapshot_remove("s1")),
    "snapshot_restore": ("snapshots", lambda rt, box, tmp: box.snapshot_restore("s1")),
    "clone": ("clone", lambda rt, box, tmp: box.clone("c1")),
    "clone_many": ("clone", lambda rt, box, tmp: box.clone_many(2)),
    "export": ("export", lambda rt, box, tmp: box.export(tmp)),
    "import": ("import", lambda rt, box, tmp: rt.import_box(tmp / "a.boxlite")),
}

FLAGS = {
    "snapshots": "snapshots_enabled",
    "clone": "clone_enabled",
    "export": "export_enabled",
    "import": "import_enabled",
}


@pytest.mark.parametrize("state", ["false", "absent"])
@pytest.mark.parametrize("operation", sorted(OPERATIONS))
async def test_an_unoffered_capability_is_refused_without_a_request(
    generation: str, operation: str, state: str, tmp_path: Path
) -> None:
    capability, call = OPERATIONS[operation]
    flag = FLAGS[capability]
    caps = dict(FakeBoxlite().capabilities)
    if state == "false":
        caps[flag] = False
    else:
        del caps[flag]
    fake = FakeBoxlite(capabilities=caps)
    (tmp_path / "a.boxlite").write_bytes(b"archive")
    async with running(fake, generation) as runtime:
        box = await runtime.create(BoxOptions(name="b"))
        await runtime.info()  # reads /v1/config
        assert fake.recorder is not None
        before = len(fake.recorder.requests)
        with pytest.raises(UnsupportedError) as caught:
            await call(runtime, box, tmp_path)
        assert len(fake.recorder.requests) == before, "a request went out"
    assert capability in caught.value.message
    assert f"capabilities.{flag} is {state}" in caught.value.message
    assert sorted(p.name for p in tmp_path.glob("*")) == ["a.boxlite"]  # noqa: ASYNC240


async def test_config_is_read_once_and_offered_operations_go_through(
    generation: str, tmp_path: Path
) -> None:
    fake = FakeBoxlite()
    archive = tmp_path / "in.boxlite"
    archive.write_bytes(b"archive")
    async with running(fake, generation) as runtime:
        box = await runtime.create(BoxOptions(name="b"))
        await box.snapshot_create("s1")
        await box.snapshot_list()
        await box.clone("c1")
        await box.export(tmp_path)
        await runtime.import_box(archive, name="imported")
        info = await runtime.info()
    assert fake.recorder is not None
    assert fake.recorder.paths("GET").count("/v1/config") == 1
    assert info.capabilities.snapshots_enabled and info.capabilities.import_enabled
    assert info.capabilities.max_cpus == 8
