"""No box sees the runtime home or the hidden host paths (the auth tokens file).

Found by the isolation probe: with the host's root as the image, every box read
the other boxes' writable layers under <home>/boxes and the tokens file.
Homes here are under /var/tmp: a box sees /tmp as its own tmpfs anyway.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from boxlite_mcp.runtime.bwrap import BwrapRuntime
from boxlite_mcp.runtime.types import BoxOptions, VolumeSpec

from .conftest import sh

pytestmark = pytest.mark.anyio

MARKER = "boxlite-hidden-marker-5f1c"


@pytest.fixture
def root() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="boxlite-hidden-", dir="/var/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def runtime(root: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[BwrapRuntime]:
    tokens = root / "tokens"
    tokens.write_text("tok-secret-1 alice\n")
    monkeypatch.setenv("BOXLITE_MCP_AUTH_TOKENS_FILE", str(tokens))
    rt = BwrapRuntime(home=root / "home")
    try:
        yield rt
    finally:
        for info in await rt.list():
            await rt.remove(info.id, force=True)
        await rt.aclose()


async def test_a_box_cannot_find_another_boxes_files_through_the_home(
    runtime: BwrapRuntime, root: Path
) -> None:
    a, b = await runtime.create(BoxOptions()), await runtime.create(BoxOptions())
    assert (await sh(a, f"echo a-secret > /root/{MARKER}"))[0].exit_code == 0
    home = runtime.home
    layer = await runtime.layer_dir(a.id)
    assert (layer / "upper" / "root" / MARKER).exists()  # it is there, on the host
    # B searches the home's parent tree and the whole overlay root (one file system).
    script = (
        f"find {root} -name {MARKER}; find / -xdev -path /proc -prune "
        f"-o -name {MARKER} -print; cat {home}/boxes/*/upper/root/{MARKER}; "
        f"ls -A {home}"
    )
    result, out, _ = await sh(b, script)
    assert MARKER not in out.decode() and b"a-secret" not in out
    assert out.strip() == b""  # the home is an empty directory in the box
    result, out, _ = await sh(b, f"touch {home}/x")
    assert result.exit_code != 0  # and nothing can be put there


async def test_the_tokens_file_reads_empty_in_a_box(runtime: BwrapRuntime, root: Path) -> None:
    box = await runtime.create(BoxOptions())
    _, out, err = await sh(box, f"cat {root}/tokens")
    assert out == b"" and b"tok-secret" not in err


async def test_hidden_paths_through_a_volume_too(root: Path) -> None:
    secret = root / "etc-secret"
    secret.mkdir()
    (secret / "key").write_text("hunter2")
    rt = BwrapRuntime(home=root / "home", hidden_paths=[secret])
    try:
        box = await rt.create(
            BoxOptions(volumes=[VolumeSpec(host_path=str(root), guest_path="/mnt/v")])
        )
        result, out, _ = await sh(
            box, f"cat {secret}/key /mnt/v/etc-secret/key; ls -A /mnt/v/home /mnt/v/etc-secret"
        )
        assert b"hunter2" not in out
        assert out.split() == [b"/mnt/v/etc-secret:", b"/mnt/v/home:"]  # both empty
        result, _, _ = await sh(box, "cat /mnt/v/etc-secret/key")
        assert result.exit_code != 0  # the file is not there to read
        # The volume itself still works.
        assert (await sh(box, "echo v > /mnt/v/shared"))[0].exit_code == 0
        assert (root / "shared").read_text() == "v\n"
    finally:
        for info in await rt.list():
            await rt.remove(info.id, force=True)
        await rt.aclose()


async def test_runtime_info_does_not_name_the_home(runtime: BwrapRuntime) -> None:
    info = await runtime.info()
    assert str(runtime.home) not in info.model_dump_json()
    assert "hidden from boxes" in info.details["home"]
