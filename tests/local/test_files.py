"""Host-side copy handling: path checks, staged all-or-nothing copy-out, safe links."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from boxlite_mcp.runtime.errors import InvalidArgumentError, NotFoundError
from boxlite_mcp.runtime.local import files

pytestmark = pytest.mark.anyio


def entries(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir())


def test_copy_in_spells_directories_as_their_contents(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "f").write_text("x")
    assert files.copy_in_source(tmp_path / "d", "/root/dest") == f"{tmp_path / 'd'}/."
    assert files.copy_in_source(tmp_path / "f", "/root/dest") == str(tmp_path / "f")


@pytest.mark.parametrize("dest", ["/tmp", "/tmp/x", "/dev/shm/y", "/run/z", "/tmp/../tmp/a"])
def test_copy_in_refuses_tmpfs_destinations_saying_why(tmp_path: Path, dest: str) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(InvalidArgumentError) as caught:
        files.copy_in_source(tmp_path / "f", dest)
    assert "tmpfs" in str(caught.value) and "/root" in str(caught.value)


def test_copy_in_needs_an_absolute_box_path_and_an_existing_host_path(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(InvalidArgumentError, match="absolute"):
        files.copy_in_source(tmp_path / "f", "relative/path")
    with pytest.raises(NotFoundError, match="does not exist"):
        files.copy_in_source(tmp_path / "missing", "/root/x")
    assert files.copy_in_source(tmp_path / "f", "/tmpfoo/x")  # only the mount itself is refused


async def test_a_directory_lands_as_its_contents_merged_into_the_destination(
    tmp_path: Path,
) -> None:
    dest = tmp_path / "dest"
    (dest / "keep").mkdir(parents=True)
    (dest / "keep" / "old.txt").write_text("old")
    async with files.staged_copy_out("/root/src", dest) as staged:
        (staged / "keep").mkdir(parents=True)
        (staged / "keep" / "new.txt").write_text("new")
        (staged / "top.txt").write_text("top")
        os.symlink("top.txt", staged / "link")
    assert (dest / "keep" / "old.txt").read_text() == "old"
    assert (dest / "keep" / "new.txt").read_text() == "new"
    assert os.readlink(dest / "link") == "top.txt"
    assert sorted(p.name for p in dest.iterdir()) == ["keep", "link", "top.txt"]  # no staging


async def test_a_file_lands_at_the_destination_or_inside_an_existing_directory(
    tmp_path: Path,
) -> None:
    async with files.staged_copy_out("/etc/hostname", tmp_path / "named.txt") as staged:
        staged.write_text("one")
    assert (tmp_path / "named.txt").read_text() == "one"

    (tmp_path / "dir").mkdir()
    async with files.staged_copy_out("/etc/hostname", tmp_path / "dir") as staged:
        staged.write_text("two")
    assert (tmp_path / "dir" / "hostname").read_text() == "two"
    assert [p.name for p in (tmp_path / "dir").iterdir()] == ["hostname"]


async def test_missing_parents_are_created(tmp_path: Path) -> None:
    async with files.staged_copy_out("/a", tmp_path / "x" / "y" / "a.txt") as staged:
        staged.write_text("deep")
    assert (tmp_path / "x" / "y" / "a.txt").read_text() == "deep"


@pytest.mark.parametrize("target", ["/etc/passwd", "../../outside", "b/../../../outside"])
async def test_links_out_of_the_destination_are_refused_and_nothing_is_written(
    tmp_path: Path,
    target: str,
) -> None:
    dest = tmp_path / "fresh" / "dest"
    with pytest.raises(InvalidArgumentError) as caught:
        async with files.staged_copy_out("/root/src", dest) as staged:
            (staged / "a").mkdir(parents=True)
            (staged / "a" / "file").write_text("x")
            os.symlink(target, staged / "a" / "evil")
    assert "outside the destination" in str(caught.value)
    assert entries(tmp_path) == []  # not even the parents it made


async def test_special_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="special file"):
        async with files.staged_copy_out("/root/src", tmp_path / "dest") as staged:
            staged.mkdir()
            os.mkfifo(staged / "pipe")
    assert entries(tmp_path) == []


async def test_a_failed_copy_leaves_an_existing_destination_untouched(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "mine").write_text("mine")

    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        async with files.staged_copy_out("/root/src", dest) as staged:
            staged.mkdir()
            (staged / "half").write_text("half")
            raise Boom
    assert [p.name for p in dest.iterdir()] == ["mine"]


async def test_a_file_is_not_copied_onto_a_directory(tmp_path: Path) -> None:
    (tmp_path / "dir" / "name").mkdir(parents=True)
    with pytest.raises(InvalidArgumentError, match="onto the directory"):
        async with files.staged_copy_out("/x/name", tmp_path / "dir") as staged:
            staged.write_text("file")
    assert (tmp_path / "dir" / "name").is_dir()


async def test_nothing_copied_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="produced nothing"):
        async with files.staged_copy_out("/root/none", tmp_path / "dest"):
            pass
    assert entries(tmp_path) == []


async def test_staged_export_renames_into_place_or_leaves_nothing(tmp_path: Path) -> None:
    final = tmp_path / "out" / "box.boxlite"
    async with files.staged_file(final) as partial:
        partial.write_bytes(b"archive")
    assert final.read_bytes() == b"archive"
    assert [p.name for p in final.parent.iterdir()] == ["box.boxlite"]

    other = tmp_path / "new" / "x.boxlite"
    with pytest.raises(RuntimeError):
        async with files.staged_file(other) as partial:
            partial.write_bytes(b"half")
            raise RuntimeError("export failed")
    assert not (tmp_path / "new").exists()


def test_export_target_names_the_archive_after_the_box_in_a_directory(tmp_path: Path) -> None:
    assert files.export_target(tmp_path, "web") == tmp_path / "web.boxlite"
    assert files.export_target(tmp_path / "a.boxlite", "web") == tmp_path / "a.boxlite"
