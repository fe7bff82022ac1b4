"""copy_in / copy_out with BoxLite's tar semantics (see Box.copy_in / Box.copy_out),
and read_file (one file in memory, capped while it streams)."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from boxlite_mcp.runtime.base import Box
from boxlite_mcp.runtime.errors import BoxliteError, InvalidArgumentError, NotFoundError

from .support import WORK, BoxMaker, entries, read_file, run, sh

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
async def box(module_box_maker: BoxMaker) -> AsyncIterator[Box]:
    box = await module_box_maker()
    await box.start()
    yield box


@pytest.fixture
async def box_dir(box: Box) -> str:
    """A fresh, existing directory in the box for one test."""
    path = f"{WORK}/files-{uuid.uuid4().hex[:8]}"
    (await run(box, "mkdir", "-p", path)).check()
    return path


async def box_tree(box: Box, path: str) -> dict[str, str]:
    """Every regular file under ``path`` (relative name -> sha256), plus dirs as ``name/``."""
    done = await run(
        box,
        "/bin/sh",
        "-c",
        'cd "$1" || exit 9; find . -mindepth 1 | sort | while IFS= read -r p; do '
        'p=${p#./}; if [ -d "$p" ] && [ ! -L "$p" ]; then printf "%s/\\n" "$p"; '
        'else printf "%s\\t%s\\n" "$p" "$(sha256sum < "$p" | cut -d" " -f1)"; fi; done',
        "sh",
        path,
    )
    done.check()
    tree: dict[str, str] = {}
    for line in done.out.splitlines():
        name, _, digest = line.partition("\t")
        tree[name] = digest
    return tree


def host_tree(path: Path) -> dict[str, str]:
    tree: dict[str, str] = {}
    for item in sorted(path.rglob("*")):
        rel = item.relative_to(path).as_posix()
        if item.is_dir():
            tree[rel + "/"] = ""
        else:
            tree[rel] = hashlib.sha256(item.read_bytes()).hexdigest()
    return tree


def make_source_dir(root: Path) -> Path:
    src = root / "srcdir"
    (src / "sub" / "deeper").mkdir(parents=True)
    (src / "a.txt").write_text("alpha\n")
    (src / "empty.txt").write_bytes(b"")
    (src / "with space ü.txt").write_text("spaced\n")
    (src / "sub" / "b.bin").write_bytes(bytes(range(256)) * 4)
    (src / "sub" / "deeper" / "c.txt").write_text("deep\n")
    (src / "emptydir").mkdir()
    return src


async def test_copy_in_file_to_a_file_path(box: Box, box_dir: str, host_dir: Path) -> None:
    src = host_dir / "original.txt"
    src.write_text("content\n")
    await box.copy_in(src, f"{box_dir}/renamed.txt")
    assert await read_file(box, f"{box_dir}/renamed.txt") == "content\n"
    assert await read_file(box, f"{box_dir}/original.txt") is None


async def test_copy_in_file_into_an_existing_directory(
    box: Box, box_dir: str, host_dir: Path
) -> None:
    src = host_dir / "inside.txt"
    src.write_text("inside\n")
    await box.copy_in(src, box_dir)  # existing directory, no trailing slash
    assert await read_file(box, f"{box_dir}/inside.txt") == "inside\n"


async def test_copy_in_file_to_a_path_ending_in_slash(
    box: Box, box_dir: str, host_dir: Path
) -> None:
    src = host_dir / "slashed.txt"
    src.write_text("slashed\n")
    await box.copy_in(src, f"{box_dir}/newdir/")
    assert await read_file(box, f"{box_dir}/newdir/slashed.txt") == "slashed\n"


async def test_copy_in_creates_missing_parents(box: Box, box_dir: str, host_dir: Path) -> None:
    src = host_dir / "deep.txt"
    src.write_text("deep\n")
    await box.copy_in(src, f"{box_dir}/x/y/z/deep-renamed.txt")
    assert await read_file(box, f"{box_dir}/x/y/z/deep-renamed.txt") == "deep\n"


async def test_copy_in_directory_copies_its_contents(
    box: Box, box_dir: str, host_dir: Path
) -> None:
    src = make_source_dir(host_dir)
    await box.copy_in(src, f"{box_dir}/dest")
    assert await box_tree(box, f"{box_dir}/dest") == host_tree(src)


async def test_copy_in_directory_merges_into_an_existing_directory(
    box: Box, box_dir: str, host_dir: Path
) -> None:
    (await sh(box, f"echo keep > {box_dir}/keep.txt && echo old > {box_dir}/a.txt")).check()
    src = make_source_dir(host_dir)
    await box.copy_in(src, box_dir)
    expected = host_tree(src)
    expected["keep.txt"] = hashlib.sha256(b"keep\n").hexdigest()
    assert await box_tree(box, box_dir) == expected  # a.txt overwritten, keep.txt kept


async def test_copy_in_overwrites_a_file(box: Box, box_dir: str, host_dir: Path) -> None:
    src = host_dir / "f.txt"
    src.write_text("first\n")
    await box.copy_in(src, f"{box_dir}/f.txt")
    src.write_text("second, longer\n")
    await box.copy_in(src, f"{box_dir}/f.txt")
    assert await read_file(box, f"{box_dir}/f.txt") == "second, longer\n"


async def test_copy_in_keeps_the_executable_bit(box: Box, box_dir: str, host_dir: Path) -> None:
    script = host_dir / "run.sh"
    script.write_text("#!/bin/sh\necho ran\n")
    script.chmod(0o755)
    await box.copy_in(script, f"{box_dir}/run.sh")
    assert (await run(box, f"{box_dir}/run.sh")).check().out == "ran\n"


async def test_binary_round_trip(box: Box, box_dir: str, host_dir: Path) -> None:
    data = bytes(range(256)) + os.urandom(1024 * 1024) + bytes(range(255, -1, -1))
    src = host_dir / "blob.bin"
    src.write_bytes(data)
    await box.copy_in(src, f"{box_dir}/blob.bin")
    done = await run(box, "sha256sum", f"{box_dir}/blob.bin")
    assert done.check().out.split()[0] == hashlib.sha256(data).hexdigest()

    out = host_dir / "back.bin"
    await box.copy_out(f"{box_dir}/blob.bin", out)
    assert out.read_bytes() == data


async def test_copy_out_file_to_a_file_path_and_into_a_directory(
    box: Box, box_dir: str, host_dir: Path
) -> None:
    (await sh(box, f"printf 'from box' > {box_dir}/out.txt")).check()
    await box.copy_out(f"{box_dir}/out.txt", host_dir / "renamed.txt")
    assert (host_dir / "renamed.txt").read_text() == "from box"

    into = host_dir / "existing"
    into.mkdir()
    await box.copy_out(f"{box_dir}/out.txt", into)
    assert (into / "out.txt").read_text() == "from box"


async def test_copy_out_creates_missing_host_parents(
    box: Box, box_dir: str, host_dir: Path
) -> None:
    (await sh(box, f"printf deep > {box_dir}/d.txt")).check()
    dest = host_dir / "a" / "b" / "d-copy.txt"
    await box.copy_out(f"{box_dir}/d.txt", dest)
    assert dest.read_text() == "deep"


async def test_copy_out_directory_copies_its_contents(
    box: Box, box_dir: str, host_dir: Path
) -> None:
    src = make_source_dir(host_dir)
    await box.copy_in(src, f"{box_dir}/tree")
    dest = host_dir / "tree-out"
    await box.copy_out(f"{box_dir}/tree", dest)
    assert host_tree(dest) == host_tree(src)


async def test_copy_in_missing_host_source_is_not_found(
    box: Box, box_dir: str, host_dir: Path
) -> None:
    with pytest.raises(NotFoundError):
        await box.copy_in(host_dir / "does-not-exist", f"{box_dir}/x")
    assert await box_tree(box, box_dir) == {}


async def test_copy_out_missing_box_source_is_not_found_and_writes_nothing(
    box: Box, box_dir: str, host_dir: Path
) -> None:
    dest = host_dir / "never"
    with pytest.raises(NotFoundError):
        await box.copy_out(f"{box_dir}/does-not-exist", dest)
    assert not dest.exists()
    assert entries(host_dir) == []


async def test_copy_out_never_writes_outside_the_destination(
    box: Box, box_dir: str, host_dir: Path
) -> None:
    """Links in the box pointing outside stay harmless on the host."""
    outside = host_dir / "outside"
    outside.mkdir()
    (
        await sh(
            box,
            f"mkdir -p {box_dir}/evil && cd {box_dir}/evil && echo ok > plain.txt && "
            f"ln -s {outside} abs-link && ln -s ../../../../../../{outside} rel-link && "
            "ln -s plain.txt good-link",
        )
    ).check()
    dest = host_dir / "dest"
    try:
        await box.copy_out(f"{box_dir}/evil", dest)
    except BoxliteError:
        assert not dest.exists() or list(dest.rglob("*")) == []  # all or nothing
    else:
        assert (dest / "plain.txt").read_text() == "ok\n"
        for item in dest.rglob("*"):
            assert item.resolve().is_relative_to(dest.resolve()), f"{item} leads outside"
        if (dest / "good-link").exists():
            assert (dest / "good-link").read_text() == "ok\n"
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize("bad", ["", f"{WORK}/../../etc/evil", "../outside"])
async def test_bad_box_paths_are_invalid_argument(box: Box, host_dir: Path, bad: str) -> None:
    """BoxLite refuses an empty box path or one with ``..`` before touching anything."""
    src = host_dir / "f.txt"
    src.write_text("x")
    with pytest.raises(InvalidArgumentError):
        await box.copy_in(src, bad)
    with pytest.raises(InvalidArgumentError):
        await box.copy_out(bad, host_dir / "out")
    assert await read_file(box, "/etc/evil") is None
    assert entries(host_dir) == [src]


# Box.read_file: one file's bytes through the file API, capped while they stream.


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
