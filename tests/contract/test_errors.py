"""Every kind of bad input gets its error kind, never a crash or a hang.

Bad options are refused in two layers, consistently:
- the models (BoxOptions, ExecRequest) refuse what they can see alone (ranges,
  patterns, empty commands) with pydantic's ValidationError at construction;
- a runtime refuses everything else it is handed (and anything a caller slipped
  past the model with ``model_construct``) with InvalidArgumentError.
"""

from __future__ import annotations

from pathlib import Path

import pydantic
import pytest

from boxlite_mcp.runtime.base import Runtime
from boxlite_mcp.runtime.errors import (
    AlreadyExistsError,
    BoxliteError,
    ImageError,
    InvalidArgumentError,
    NotFoundError,
)
from boxlite_mcp.runtime.types import BoxOptions, Capabilities, ExecRequest

from .support import WORK, BoxMaker, run, unique_name

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    "fields",
    [
        {"name": ""},
        {"name": "has space"},
        {"name": "-leading-dash"},
        {"name": "x" * 129},
        {"cpus": 0},
        {"cpus": 33},
        {"memory_mib": 64},
        {"disk_size_gb": 0},
        {"unknown_option": 1},
    ],
)
def test_models_refuse_bad_box_options(fields: dict[str, object]) -> None:
    with pytest.raises(pydantic.ValidationError):
        BoxOptions(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "fields",
    [
        {"command": ""},
        {"command": "true", "timeout_seconds": 0},
        {"command": "true", "timeout_seconds": -1},
        {"command": "true", "args": "not-a-list"},
    ],
)
def test_models_refuse_bad_exec_requests(fields: dict[str, object]) -> None:
    with pytest.raises(pydantic.ValidationError):
        ExecRequest(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "fields",
    [{"cpus": 0}, {"cpus": -2}, {"memory_mib": 1}, {"name": "bad name/with slash"}],
)
async def test_runtime_refuses_options_slipped_past_the_model(
    runtime: Runtime, fields: dict[str, object]
) -> None:
    before = {info.id for info in await runtime.list()}
    with pytest.raises(InvalidArgumentError):
        await runtime.create(BoxOptions.model_construct(**fields))  # type: ignore[arg-type]
    assert {info.id for info in await runtime.list()} == before


async def test_image_and_rootfs_together_are_invalid(runtime: Runtime, tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError):
        await runtime.create(BoxOptions(image="alpine:latest", rootfs_path=str(tmp_path)))


async def test_more_than_the_runtime_offers_is_invalid(
    runtime: Runtime, capabilities: Capabilities
) -> None:
    if capabilities.max_cpus is None or capabilities.max_cpus >= 32:
        pytest.skip("no cpu limit below the model's own maximum")
    with pytest.raises(InvalidArgumentError):
        await runtime.create(BoxOptions(cpus=capabilities.max_cpus + 1))


async def test_missing_rootfs_is_an_image_error(make_box: BoxMaker, tmp_path: Path) -> None:
    with pytest.raises(ImageError):
        box = await make_box(rootfs_path=str(tmp_path / "no-such-rootfs"))
        await box.start()  # a runtime may resolve the image lazily


async def test_unknown_box_is_not_found_everywhere(runtime: Runtime) -> None:
    missing = unique_name("nobody")
    with pytest.raises(NotFoundError):
        await runtime.get(missing)
    with pytest.raises(NotFoundError):
        await runtime.remove(missing)
    with pytest.raises(NotFoundError):
        await runtime.remove(missing, force=True)
    with pytest.raises(NotFoundError):
        await runtime.get("01JZZZZZZZZZZZZZZZZZZZZZZZ")


async def test_duplicate_name_already_exists(runtime: Runtime, make_box: BoxMaker) -> None:
    name = unique_name("dup")
    first = await make_box(name=name)
    before = {info.id for info in await runtime.list()}
    with pytest.raises(AlreadyExistsError):
        await make_box(name=name)
    assert {info.id for info in await runtime.list()} == before
    assert (await runtime.get(name)).id == first.id


async def test_a_removed_box_handle_is_not_found(
    runtime: Runtime, make_box: BoxMaker, host_dir: Path
) -> None:
    box = await make_box()
    await run(box, "true")
    await runtime.remove(box.id, force=True)
    src = host_dir / "f.txt"
    src.write_text("x")
    with pytest.raises(NotFoundError):
        await box.exec(ExecRequest(command="true"))
    with pytest.raises(NotFoundError):
        await box.info()
    with pytest.raises(NotFoundError):
        await box.start()
    with pytest.raises(NotFoundError):
        await box.copy_in(src, f"{WORK}/f.txt")
    with pytest.raises(NotFoundError):
        await box.copy_out(f"{WORK}/f.txt", host_dir / "out")
    with pytest.raises(NotFoundError):
        await box.metrics()


async def test_errors_carry_a_message_and_kind(runtime: Runtime) -> None:
    missing = unique_name("msg")
    with pytest.raises(BoxliteError) as caught:
        await runtime.get(missing)
    error = caught.value
    assert error.kind == "NotFoundError"
    assert error.message and missing in error.message
    assert "Traceback" not in error.message
