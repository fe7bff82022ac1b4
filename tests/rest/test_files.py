"""Files, export and import: what goes over the wire, and what lands on the host."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from boxlite_mcp.runtime.errors import (
    AlreadyExistsError,
    InvalidArgumentError,
    InvalidStateError,
    NotFoundError,
)
from boxlite_mcp.runtime.types import BoxOptions

from .conftest import running
from .fake import FakeBoxlite

pytestmark = pytest.mark.anyio


def tar_of(entries: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, content in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return buffer.getvalue()


def names_in(archive: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]


async def test_copy_in_sends_a_tar_with_boxlite_semantics(generation: str, tmp_path: Path) -> None:
    fake = FakeBoxlite()
    single = tmp_path / "notes.txt"
    single.write_bytes(b"hello")
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "a.txt").write_bytes(b"A")
    (tree / "sub" / "b.txt").write_bytes(b"B")
    async with running(fake, generation) as runtime:
        box = await runtime.create(BoxOptions())
        await box.copy_in(single, "/root/notes.txt")
        await box.copy_in(tree, "/srv/app")
    (file_dest, file_tar), (dir_dest, dir_tar) = fake.uploads
    assert (file_dest, names_in(file_tar)) == ("/root/notes.txt", {"notes.txt": b"hello"})
    assert (dir_dest, names_in(dir_tar)) == ("/srv/app", {"a.txt": b"A", "sub/b.txt": b"B"})
    assert fake.recorder is not None
    puts = fake.recorder.matching("PUT", "/files")
    assert {r.header("content-type") for r in puts} == {"application/x-tar"}


@pytest.mark.parametrize("dest", ["/tmp/x", "/tmp", "/dev/shm/y", "/run/z", "relative/path"])
async def test_copy_in_refuses_tmpfs_and_relative_destinations(
    generation: str, dest: str, tmp_path: Path
) -> None:
    fake = FakeBoxlite()
    src = tmp_path / "f"
    src.write_bytes(b"x")
    async with running(fake, generation) as runtime:
        box = await runtime.create(BoxOptions())
        with pytest.raises(InvalidArgumentError) as caught:
            await box.copy_in(src, dest)
    assert fake.uploads == []
    expected = "tmpfs" if dest.startswith("/") else "absolute"
    assert expected in caught.value.message


async def test_copy_in_of_a_missing_source_is_not_found(generation: str, tmp_path: Path) -> None:
    async with running(FakeBoxlite(), generation) as runtime:
        box = await runtime.create(BoxOptions())
        with pytest.raises(NotFoundError):
            await box.copy_in(tmp_path / "nope", "/root/x")


async def test_copy_out_unpacks_at_the_destination(generation: str, tmp_path: Path) -> None:
    fake = FakeBoxlite(download_tar=tar_of({"report.txt": b"done"}))
    async with running(fake, generation) as runtime:
        box = await runtime.create(BoxOptions())
        await box.copy_out("/root/report.txt", tmp_path / "got.txt")
        fake.download_tar = tar_of({"a": b"1", "d/b": b"2"})
        await box.copy_out("/root/dir", tmp_path / "tree")
    assert (tmp_path / "got.txt").read_bytes() == b"done"
    assert (tmp_path / "tree" / "a").read_bytes() == b"1"
    assert (tmp_path / "tree" / "d" / "b").read_bytes() == b"2"
    assert fake.recorder is not None
    assert "path=%2Froot%2Freport.txt" in fake.recorder.matching("GET", "/files")[0].query


@pytest.mark.parametrize(
    "archive",
    [
        tar_of({"../escape.txt": b"x"}),
        tar_of({"/etc/evil": b"x"}),
        tar_of({"ok.txt": b"fine"}, links={"link": "../../outside"}),
    ],
)
async def test_a_hostile_archive_writes_nothing(
    generation: str, archive: bytes, tmp_path: Path
) -> None:
    dest = tmp_path / "dest"
    fake = FakeBoxlite(download_tar=archive)
    async with running(fake, generation) as runtime:
        box = await runtime.create(BoxOptions())
        with pytest.raises(InvalidArgumentError):
            await box.copy_out("/root/x", dest)
    assert not dest.exists() and list(tmp_path.glob("*")) == []  # noqa: ASYNC240


async def test_export_writes_the_archive_where_asked(generation: str, tmp_path: Path) -> None:
    fake = FakeBoxlite(export_bytes=b"BOXLITE" * 1000)
    async with running(fake, generation) as runtime:
        box = await runtime.create(BoxOptions(name="web"))
        await box.stop()
        into_dir = await box.export(tmp_path)
        as_file = await box.export(tmp_path / "named.boxlite")
        with pytest.raises(InvalidArgumentError):
            await box.export(tmp_path / "missing" / "x.boxlite")
        await box.start()
        with pytest.raises(InvalidStateError):
            await box.export(tmp_path / "running.boxlite")
    assert into_dir == tmp_path / "web.boxlite"
    assert as_file == tmp_path / "named.boxlite"
    assert into_dir.read_bytes() == as_file.read_bytes() == b"BOXLITE" * 1000
    left = sorted(p.name for p in tmp_path.glob("*"))  # noqa: ASYNC240
    assert left == ["named.boxlite", "web.boxlite"]


async def test_import_streams_the_archive(generation: str, tmp_path: Path) -> None:
    fake = FakeBoxlite()
    archive = tmp_path / "in.boxlite"
    archive.write_bytes(bytes(range(256)) * 4096)
    async with running(fake, generation) as runtime:
        box = await runtime.import_box(archive, name="restored")
        await runtime.create(BoxOptions(name="taken"))
        with pytest.raises(AlreadyExistsError):
            await runtime.import_box(archive, name="taken")
        with pytest.raises(NotFoundError):
            await runtime.import_box(tmp_path / "missing.boxlite")
    assert box.name == "restored"
    assert fake.imports == [("restored", archive.read_bytes())]
    assert fake.recorder is not None
    (call,) = fake.recorder.matching("POST", "/boxes/import")
    assert call.header("content-type") == "application/octet-stream"
    assert call.header("content-length") == str(256 * 4096)
