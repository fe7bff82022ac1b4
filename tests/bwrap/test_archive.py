"""The shared tar module: BoxLite's pack/unpack rules, and safe, all-or-nothing unpacking."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from boxlite_mcp.runtime.errors import InvalidArgumentError, NotFoundError
from boxlite_mcp.runtime.shared import archive
from boxlite_mcp.runtime.shared.archive import ExtractionMode, Limits, UnsafeArchiveError


def make_tar(*entries: tarfile.TarInfo | tuple[str, bytes]) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for entry in entries:
            if isinstance(entry, tarfile.TarInfo):
                tar.addfile(entry)
            else:
                name, data = entry
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


def link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


def names(tar_file: io.BytesIO | object) -> list[str]:
    with tarfile.open(fileobj=tar_file, mode="r:") as tar:  # type: ignore[call-overload]
        return sorted(m.name for m in tar)


def test_pack_directory_archives_its_contents(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("a")
    (src / "sub" / "b.txt").write_text("b")
    os.symlink("a.txt", src / "link")
    packed = archive.pack(src)
    assert names(packed) == ["a.txt", "link", "sub", "sub/b.txt"]


def test_pack_file_is_one_entry_named_after_it(tmp_path: Path) -> None:
    (tmp_path / "f.bin").write_bytes(b"\0\1\2")
    assert names(archive.pack(tmp_path / "f.bin")) == ["f.bin"]
    with pytest.raises(NotFoundError):
        archive.pack(tmp_path / "missing")


def test_unpack_modes(tmp_path: Path) -> None:
    one = make_tar(("f.txt", b"hello"))
    assert archive.unpack(one, tmp_path / "renamed.txt") is ExtractionMode.FILE_TO_FILE
    assert (tmp_path / "renamed.txt").read_bytes() == b"hello"

    existing = tmp_path / "dir"
    existing.mkdir()
    assert archive.unpack(make_tar(("f.txt", b"x")), existing) is ExtractionMode.INTO_DIRECTORY
    assert (existing / "f.txt").read_bytes() == b"x"

    slash = f"{tmp_path}/new/"
    assert archive.unpack(make_tar(("f.txt", b"y")), slash) is ExtractionMode.INTO_DIRECTORY
    assert (tmp_path / "new" / "f.txt").read_bytes() == b"y"

    two = make_tar(("a", b"1"), ("b", b"2"))
    assert archive.unpack(two, tmp_path / "many") is ExtractionMode.INTO_DIRECTORY
    assert sorted(p.name for p in (tmp_path / "many").iterdir()) == ["a", "b"]


def test_a_directory_holding_one_file_unpacks_as_that_file(tmp_path: Path) -> None:
    """BoxLite's rule 3: one regular file in the archive, dest not a directory."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "only.txt").write_text("only")
    archive.unpack(archive.pack(src), tmp_path / "dest")
    assert (tmp_path / "dest").read_text() == "only"


def test_round_trip_keeps_bytes_and_modes(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "run.sh").write_bytes(b"#!/bin/sh\n" + bytes(range(256)))
    (src / "run.sh").chmod(0o755)
    archive.unpack(archive.pack(src), f"{tmp_path}/out/")
    out = tmp_path / "out" / "run.sh"
    assert out.read_bytes() == (src / "run.sh").read_bytes()
    assert out.stat().st_mode & 0o777 == 0o755


@pytest.mark.parametrize(
    "entries",
    [
        [("../escape.txt", b"x")],
        [("a/../../escape.txt", b"x")],
        [("/abs.txt", b"x")],
        [link("out", "/etc")],
        [link("out", "../../etc")],
        [link("hard", "../outside", tarfile.LNKTYPE)],
        [link("hard", "/etc/passwd", tarfile.LNKTYPE)],
    ],
    ids=[
        "dotdot",
        "nested-dotdot",
        "absolute",
        "symlink-abs",
        "symlink-up",
        "hardlink-up",
        "hardlink-abs",
    ],
)
def test_unsafe_entries_are_refused_and_nothing_is_written(
    tmp_path: Path, entries: list[tarfile.TarInfo | tuple[str, bytes]]
) -> None:
    dest = tmp_path / "dest"
    tar = make_tar(("ok.txt", b"fine"), *entries)
    with pytest.raises(UnsafeArchiveError):
        archive.unpack(tar, dest)
    assert not dest.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_device_nodes_are_refused(tmp_path: Path) -> None:
    dev = tarfile.TarInfo("null")
    dev.type = tarfile.CHRTYPE
    dev.devmajor, dev.devminor = 1, 3
    with pytest.raises(UnsafeArchiveError, match="device"):
        archive.unpack(make_tar(dev), tmp_path / "d")
    assert list(tmp_path.iterdir()) == []


def test_tar_bomb_over_the_cap_is_refused(tmp_path: Path) -> None:
    tar = make_tar(("a", b"x" * 600), ("b", b"y" * 600))
    with pytest.raises(UnsafeArchiveError, match="cap"):
        archive.unpack(tar, tmp_path / "d", Limits(max_bytes=1000))
    with pytest.raises(UnsafeArchiveError, match="entries"):
        archive.unpack(
            make_tar(("a", b""), ("b", b""), ("c", b"")), tmp_path / "d", Limits(max_entries=2)
        )
    assert list(tmp_path.iterdir()) == []


def test_links_inside_the_destination_are_kept(tmp_path: Path) -> None:
    tar = make_tar(
        ("dir/f.txt", b"data"), link("dir/rel", "f.txt"), link("hard", "dir/f.txt", tarfile.LNKTYPE)
    )
    archive.unpack(tar, tmp_path / "d")
    assert (tmp_path / "d" / "dir" / "rel").read_text() == "data"
    assert (tmp_path / "d" / "hard").read_text() == "data"


def test_merging_through_a_symlink_in_the_destination_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "dest"
    dest.mkdir()
    os.symlink(outside, dest / "sub")
    with pytest.raises(UnsafeArchiveError):
        archive.unpack(make_tar(("sub/evil.txt", b"x"), ("other.txt", b"y")), dest)
    assert list(outside.iterdir()) == []
    assert sorted(p.name for p in dest.iterdir()) == ["sub"]  # all or nothing


def test_garbage_is_an_invalid_argument(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError):
        archive.unpack(io.BytesIO(b"not a tar at all" * 100), tmp_path / "d")
    assert list(tmp_path.iterdir()) == []


def test_spool_chunks_is_capped_and_streams(tmp_path: Path) -> None:
    body = make_tar(("f", b"z" * 5000)).getvalue()
    chunks = [body[i : i + 1000] for i in range(0, len(body), 1000)]
    spooled = archive.spool_chunks(iter(chunks))
    archive.unpack(spooled, tmp_path / "f.out")
    assert (tmp_path / "f.out").read_bytes() == b"z" * 5000
    with pytest.raises(UnsafeArchiveError):
        archive.spool_chunks(iter([b"x" * 1024] * 1024 * 12), Limits(max_bytes=0, max_entries=1))


@pytest.mark.anyio
async def test_async_helpers(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"async")
    packed = await archive.apack(tmp_path / "f")

    async def body() -> object:
        while chunk := packed.read(7):
            yield chunk

    spooled = await archive.spool(body())  # type: ignore[arg-type]
    await archive.aunpack(spooled, tmp_path / "g")
    assert (tmp_path / "g").read_bytes() == b"async"
