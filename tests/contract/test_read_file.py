"""Box.read_file: one file's bytes through the file API, capped while they stream."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from boxlite_mcp.runtime.base import Box
from boxlite_mcp.runtime.errors import InvalidArgumentError, NotFoundError

from .support import WORK, BoxMaker, run, sh

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
async def box(module_box_maker: BoxMaker) -> AsyncIterator[Box]:
    box = await module_box_maker()
    await box.start()
    yield box


@pytest.fixture
async def box_dir(box: Box) -> str:
    path = f"{WORK}/read-{uuid.uuid4().hex[:8]}"
    (await run(box, "mkdir", "-p", path)).check()
    return path


async def test_a_small_file_comes_back_byte_for_byte(box: Box, box_dir: str) -> None:
    (await sh(box, f"printf 'a\\000b\\377c\\n' > {box_dir}/bin; : > {box_dir}/empty")).check()
    assert await box.read_file(f"{box_dir}/bin", 100) == b"a\x00b\xffc\n"
    assert await box.read_file(f"{box_dir}/empty", 100) == b""
    assert await box.read_file(f"{box_dir}/bin", 7) == b"a\x00b\xffc\n"  # exactly the cap


async def test_a_file_over_the_cap_is_refused_naming_path_size_and_cap(
    box: Box, box_dir: str
) -> None:
    (await sh(box, f"head -c 5000 /dev/zero > {box_dir}/big")).check()
    with pytest.raises(InvalidArgumentError) as caught:
        await box.read_file(f"{box_dir}/big", 1000)
    message = caught.value.message
    assert f"'{box_dir}/big'" in message and "5000 bytes" in message and "1000-byte" in message
    assert "head -c" in message and "copy_out" in message


async def test_a_sparse_file_far_over_the_cap_is_refused(box: Box, box_dir: str) -> None:
    """64 MiB against a 1 MiB cap (that the transfer stops at the cap is tested on the
    stream readers themselves, in tests/runtime/test_read_file_caps.py)."""
    (await sh(box, f"truncate -s 64M {box_dir}/huge")).check()
    with pytest.raises(InvalidArgumentError) as caught:
        await box.read_file(f"{box_dir}/huge", 1024 * 1024)
    assert f"'{box_dir}/huge'" in caught.value.message and "1048576-byte" in caught.value.message


async def test_a_directory_is_refused_clearly(box: Box, box_dir: str) -> None:
    # Two entries: the test BoxLite server re-packs a copy_out, and BoxLite's unpack
    # writes a directory holding exactly one file *as* the destination file.
    (await sh(box, f"echo x > {box_dir}/inner; echo y > {box_dir}/other")).check()
    for path in (box_dir, f"{box_dir}/"):
        with pytest.raises(InvalidArgumentError) as caught:
            await box.read_file(path, 1000)
        assert "is a directory" in caught.value.message and "ls -la" in caught.value.message


async def test_a_missing_path_is_not_found_naming_it(box: Box, box_dir: str) -> None:
    with pytest.raises(NotFoundError) as caught:
        await box.read_file(f"{box_dir}/nope.txt", 1000)
    assert f"{box_dir}/nope.txt" in caught.value.message


async def test_a_symlink_is_followed_in_the_box(box: Box, box_dir: str) -> None:
    script = f"cd {box_dir}; echo target > real; ln -s real rel; ln -s {box_dir}/real abs"
    (await sh(box, script)).check()
    assert await box.read_file(f"{box_dir}/rel", 100) == b"target\n"
    assert await box.read_file(f"{box_dir}/abs", 100) == b"target\n"
