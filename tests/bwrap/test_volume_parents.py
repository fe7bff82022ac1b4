"""A volume at a path the image lacks must be reachable by box root (found by the
python session tests after issue 10's id mapping)."""

from __future__ import annotations

from pathlib import Path

import pytest

from boxlite_mcp.runtime.bwrap import BwrapRuntime
from boxlite_mcp.runtime.types import BoxOptions, ExecRequest, VolumeSpec

pytestmark = pytest.mark.anyio


@pytest.mark.xfail(
    reason="runtime/bwrap/sandbox.py: bubblewrap creates a volume's missing parent directories "
    "(/work, /work/a) as host root's with mode 0700, which box root (host uid 100000) cannot "
    "enter. Fix: make each missing ancestor in the box's layer, owned by box root, mode 0755, "
    "before launch (as bwrap/network.py's _bundle_dir does for the CA bundle)",
    strict=True,
)
async def test_a_volume_under_new_directories_is_reachable(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "f").write_text("hello\n")
    runtime = BwrapRuntime(home=tmp_path / "home")
    try:
        box = await runtime.create(
            BoxOptions(volumes=[VolumeSpec(host_path=str(shared), guest_path="/work/a/b")])
        )
        execution = await box.exec(ExecRequest(command="cat", args=["/work/a/b/f"]))
        output = b""
        async for chunk in execution.output():
            output += chunk.data
        result = await execution.wait()
        assert (result.exit_code, output) == (0, b"hello\n")
    finally:
        await runtime.aclose()
