"""copy_out is capped while packing: a box path over the cap never reaches the host.

Found by the soak runs: the cap used to apply only when unpacking, after the
whole path (a host-image box's '/', a sparse file) was spooled on the host.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from boxlite_mcp.runtime.bwrap import BwrapRuntime
from boxlite_mcp.runtime.errors import InvalidArgumentError
from boxlite_mcp.runtime.shared import archive
from boxlite_mcp.runtime.types import BoxOptions

from .conftest import sh

pytestmark = pytest.mark.anyio

CAP = 8 * 1024 * 1024


@pytest.fixture
async def capped(tmp_path: Path) -> AsyncIterator[BwrapRuntime]:
    runtime = BwrapRuntime(
        home=tmp_path / "home", copy_limits=archive.Limits(max_bytes=CAP, max_entries=50)
    )
    try:
        yield runtime
    finally:
        await runtime.aclose()


@pytest.fixture
def unpacked(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Sizes of the archives that reached the host's unpack step."""
    sizes: list[int] = []
    real = archive.aunpack

    async def watched(tar_file: Any, dest: Any, limits: archive.Limits) -> archive.ExtractionMode:
        tar_file.seek(0, 2)
        sizes.append(tar_file.tell())
        tar_file.seek(0)
        return await real(tar_file, dest, limits)

    monkeypatch.setattr(archive, "aunpack", watched)
    return sizes


async def test_a_sparse_file_over_the_cap_is_refused_while_packing(
    capped: BwrapRuntime, tmp_path: Path, unpacked: list[int]
) -> None:
    box = await capped.create(BoxOptions())
    assert (await sh(box, "truncate -s 64M /root/big"))[0].exit_code == 0
    dest = tmp_path / "out" / "big"
    with pytest.raises(InvalidArgumentError) as caught:
        await box.copy_out("/root/big", dest)
    message = str(caught.value)
    assert f"{64 * 1024 * 1024} bytes" in message and f"cap of {CAP} bytes" in message
    assert unpacked == []  # nothing was handed on to be written on the host
    assert not dest.exists() and not dest.parent.exists()


async def test_a_directory_over_the_cap_is_refused_and_leaves_nothing(
    capped: BwrapRuntime, tmp_path: Path, unpacked: list[int]
) -> None:
    box = await capped.create(BoxOptions())
    script = "mkdir /root/d && for i in 1 2 3; do head -c 3M /dev/zero > /root/d/$i; done"
    assert (await sh(box, script))[0].exit_code == 0
    (tmp_path / "out").mkdir()
    with pytest.raises(InvalidArgumentError, match=f"cap of {CAP} bytes"):
        await box.copy_out("/root/d", tmp_path / "out" / "d")
    assert unpacked == [] and list((tmp_path / "out").iterdir()) == []


async def test_too_many_entries_are_refused_while_packing(
    capped: BwrapRuntime, tmp_path: Path, unpacked: list[int]
) -> None:
    box = await capped.create(BoxOptions())
    assert (await sh(box, "mkdir /root/m && cd /root/m && touch $(seq 1 60)"))[0].exit_code == 0
    with pytest.raises(InvalidArgumentError, match="50 entries"):
        await box.copy_out("/root/m", tmp_path / "m")
    assert unpacked == [] and not (tmp_path / "m").exists()


async def test_under_the_cap_copies_whole(
    capped: BwrapRuntime, tmp_path: Path, unpacked: list[int]
) -> None:
    box = await capped.create(BoxOptions())
    assert (await sh(box, "head -c 7M /dev/zero > /root/ok"))[0].exit_code == 0
    await box.copy_out("/root/ok", tmp_path / "ok")
    assert (tmp_path / "ok").stat().st_size == 7 * 1024 * 1024
    assert len(unpacked) == 1
