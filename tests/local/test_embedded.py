"""The embedded runtime as far as it goes without booting a VM.

Creating, reading, listing and removing boxes, names, errors, the home lock and
packing a rootfs directory are all done by the SDK without a guest, so they run
on any host; what needs a running VM is in ``test_real_vm.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from boxlite_mcp.runtime import errors
from boxlite_mcp.runtime.base import Box, Runtime
from boxlite_mcp.runtime.local import LocalRuntime
from boxlite_mcp.runtime.types import BoxOptions, BoxStatus, NetworkSpec

pytestmark = pytest.mark.anyio


def entries(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir())


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[LocalRuntime]:
    rt = LocalRuntime.embedded(tmp_path / "home")
    yield rt
    await rt.aclose()


async def test_it_implements_the_contract(runtime: LocalRuntime) -> None:
    assert isinstance(runtime, Runtime)
    assert isinstance(await runtime.create(BoxOptions()), Box)


async def test_info_says_what_it_is(runtime: LocalRuntime, tmp_path: Path) -> None:
    info = await runtime.info()
    assert info.name == "local"
    assert info.version and info.endpoint is None
    assert "micro-VM" in info.isolation
    assert info.details["mode"] == "embedded"
    assert info.details["home"] == str(tmp_path / "home")
    assert info.capabilities.snapshots_enabled and info.capabilities.export_enabled


async def test_options_round_trip_into_info(runtime: LocalRuntime) -> None:
    box = await runtime.create(
        BoxOptions(
            name="web-1",
            cpus=2,
            memory_mib=512,
            env={"A": "1"},
            network=NetworkSpec(mode="disabled"),
        )
    )
    info = await box.info()
    assert (info.id, info.name, info.status) == (box.id, "web-1", BoxStatus.CONFIGURED)
    assert (info.cpus, info.memory_mib) == (2, 512)
    assert info.network is not None and info.network.mode == "disabled"
    assert info.created_at.tzinfo is not None
    assert info.limits is not None and info.limits.enforcement == "vm"


async def test_get_by_id_and_name_and_not_found_names_what_exists(
    runtime: LocalRuntime,
) -> None:
    box = await runtime.create(BoxOptions(name="alpha"))
    assert (await runtime.get("alpha")).id == box.id
    assert (await runtime.get(box.id)).name == "alpha"
    with pytest.raises(errors.NotFoundError) as caught:
        await runtime.get("beta")
    assert "'beta'" in caught.value.message and "alpha" in caught.value.message
    with pytest.raises(errors.NotFoundError, match="no boxes"):
        await runtime.remove("alpha")
        await runtime.get("alpha")


async def test_a_duplicate_name_already_exists(runtime: LocalRuntime) -> None:
    await runtime.create(BoxOptions(name="dup"))
    with pytest.raises(errors.AlreadyExistsError) as caught:
        await runtime.create(BoxOptions(name="dup"))
    assert "dup" in caught.value.message


async def test_image_and_rootfs_path_together_are_refused(runtime: LocalRuntime) -> None:
    with pytest.raises(errors.InvalidArgumentError, match="not both"):
        await runtime.create(BoxOptions(image="alpine", rootfs_path="/x"))


async def test_a_missing_rootfs_path_is_an_image_error(runtime: LocalRuntime) -> None:
    with pytest.raises(errors.ImageError, match="does not exist"):
        await runtime.create(BoxOptions(rootfs_path="/nonexistent/rootfs"))
    with pytest.raises(errors.InvalidArgumentError, match="absolute"):
        await runtime.create(BoxOptions(rootfs_path="relative/rootfs"))


async def test_a_rootfs_directory_is_packed_into_a_reused_layout(
    runtime: LocalRuntime,
    tmp_path: Path,
) -> None:
    rootfs = tmp_path / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    (rootfs / "bin" / "hello").write_text("#!/bin/sh\necho hi\n")
    first = await runtime.create(BoxOptions(rootfs_path=str(rootfs)))
    second = await runtime.create(BoxOptions(rootfs_path=str(rootfs)))
    layouts = sorted((tmp_path / "home" / "mcp-layouts").iterdir())
    assert len(layouts) == 1, "identical content packs to one layout"
    assert (layouts[0] / "oci-layout").is_file()
    assert (await first.info()).image == (await second.info()).image
    assert (await first.info()).image.endswith(str(layouts[0]))


async def test_list_and_remove(runtime: LocalRuntime) -> None:
    a = await runtime.create(BoxOptions(name="a"))
    b = await runtime.create(BoxOptions())
    assert {info.id for info in await runtime.list()} == {a.id, b.id}
    await runtime.remove("a")
    await runtime.remove(b.id)
    assert await runtime.list() == []
    with pytest.raises(errors.NotFoundError):
        await a.info()


async def test_operations_that_need_a_disk_say_start_it_first(
    runtime: LocalRuntime, tmp_path: Path
) -> None:
    box = await runtime.create(BoxOptions(name="fresh"))
    for attempt in (
        lambda: box.snapshot_create("s"),
        lambda: box.clone("c"),
        lambda: box.export(tmp_path),
    ):
        with pytest.raises(errors.InvalidStateError, match="never been started"):
            await attempt()
    assert entries(tmp_path) == ["home"]  # no archive, partial or not
    assert [info.name for info in await runtime.list()] == ["fresh"]


async def test_metrics_of_a_box_that_is_not_running_do_not_start_it(
    runtime: LocalRuntime,
) -> None:
    box = await runtime.create(BoxOptions())
    metrics = await box.metrics()
    assert metrics.commands_executed_total == 0
    assert (await box.info()).status is BoxStatus.CONFIGURED
    assert (await runtime.metrics()).num_running_boxes == 0


async def test_snapshots_of_a_box_without_any(runtime: LocalRuntime) -> None:
    box = await runtime.create(BoxOptions(name="snaps"))
    assert await box.snapshot_list() == []
    with pytest.raises(errors.NotFoundError, match="no snapshot 'x'"):
        await box.snapshot_get("x")
    with pytest.raises(errors.NotFoundError):
        await box.snapshot_remove("x")


async def test_stop_of_a_configured_box_is_a_no_op(runtime: LocalRuntime) -> None:
    box = await runtime.create(BoxOptions())
    await box.stop()
    assert (await box.info()).status is BoxStatus.CONFIGURED


async def test_clone_many_checks_its_arguments(runtime: LocalRuntime) -> None:
    box = await runtime.create(BoxOptions())
    with pytest.raises(errors.InvalidArgumentError):
        await box.clone_many(0)
    with pytest.raises(errors.InvalidArgumentError, match="one name per clone"):
        await box.clone_many(2, ["only-one"])


async def test_importing_a_missing_archive_is_not_found(
    runtime: LocalRuntime, tmp_path: Path
) -> None:
    with pytest.raises(errors.NotFoundError, match="does not exist"):
        await runtime.import_box(tmp_path / "none.boxlite")


async def test_one_runtime_per_home_and_closing_releases_it(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = LocalRuntime.embedded(home)
    box = await first.create(BoxOptions(name="kept"))
    with pytest.raises(errors.InvalidStateError) as caught:
        LocalRuntime.embedded(home)
    assert "another BoxLite runtime" in caught.value.message
    assert "--home" in caught.value.message
    await first.aclose()
    with pytest.raises(errors.InvalidStateError, match="closed"):
        await first.list()
    del box
    second = LocalRuntime.embedded(home)
    try:
        assert [info.name for info in await second.list()] == ["kept"]
    finally:
        await second.aclose()
