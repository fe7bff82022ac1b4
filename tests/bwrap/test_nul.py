"""NUL bytes in any text the runtime receives: a clear InvalidArgumentError, not a crash.

Found by the tool-call fuzz: subprocess and os raise ValueError ('embedded null
byte') on a NUL, which escaped the runtime as a non-Boxlite error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from boxlite_mcp.runtime.bwrap import BwrapRuntime
from boxlite_mcp.runtime.bwrap.box import BwrapBox
from boxlite_mcp.runtime.errors import InvalidArgumentError, NotFoundError
from boxlite_mcp.runtime.types import BoxOptions, ExecRequest, VolumeSpec

from .conftest import run

pytestmark = pytest.mark.anyio

EXEC_CASES: list[tuple[dict[str, Any], str]] = [
    ({"command": "ec\0ho"}, "command"),
    ({"command": "echo", "args": ["ok", "a\0b"]}, "args[1]"),
    ({"command": "echo", "env": {"A": "x\0y"}}, "env['A']"),
    ({"command": "echo", "env": {"A\0B": "x"}}, "env variable name"),
    ({"command": "echo", "working_dir": "/tmp\0/x"}, "working_dir"),
    ({"command": "echo", "user": "ro\0ot"}, "user"),
]


@pytest.mark.parametrize(("fields", "named"), EXEC_CASES, ids=[n for _, n in EXEC_CASES])
async def test_exec_refuses_nul_naming_the_field(
    runtime: BwrapRuntime, fields: dict[str, Any], named: str
) -> None:
    box = await runtime.create(BoxOptions())
    with pytest.raises(InvalidArgumentError, match="NUL") as caught:
        await box.exec(ExecRequest(**fields))
    assert named in str(caught.value)
    assert (await box.info()).status.value == "configured"  # refused before spawning
    result, out, _ = await run(box, "echo", "still fine")
    assert (result.exit_code, out) == (0, b"still fine\n")


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"working_dir": "/w\0"}, "working_dir"),
        ({"user": "a\0"}, "user"),
        ({"env": {"K": "\0"}}, "env"),
        ({"rootfs_path": "/x\0"}, "rootfs_path"),
        ({"volumes": [VolumeSpec(host_path="/tmp\0", guest_path="/data")]}, "volume host_path"),
    ],
)
async def test_create_refuses_nul_options(
    runtime: BwrapRuntime, fields: dict[str, Any], named: str
) -> None:
    with pytest.raises(InvalidArgumentError, match="NUL") as caught:
        await runtime.create(BoxOptions(**fields))
    assert named in str(caught.value)
    assert await runtime.list() == []


async def test_files_snapshots_and_names_refuse_nul(box: BwrapBox, tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    calls = [
        box.copy_in(tmp_path / "f", "/root/a\0b"),
        box.copy_out("/etc/\0hostname", tmp_path / "out"),
        box.copy_in(Path(f"{tmp_path}/f\0"), "/root/f"),
        box.copy_out("/etc/hostname", Path(f"{tmp_path}/o\0ut")),
        box.snapshot_create("s\0"),
        box.snapshot_restore("s\0"),
        box.snapshot_remove("s\0"),
        box.export(Path(f"{tmp_path}/e\0.tar")),
        box.clone_many(1, ["c\0"]),
    ]
    for call in calls:
        with pytest.raises(InvalidArgumentError, match="NUL"):
            await call
    with pytest.raises((InvalidArgumentError, NotFoundError)):
        await box.snapshot_get("s\0")
    assert not (tmp_path / "out").exists()
