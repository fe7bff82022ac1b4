"""Unpacking on disk: permission bits, merges into what exists, and errors.

Each test looks at the destination afterwards: what an archive may change, what
it must leave alone when it is refused (all or nothing), and that every failure
of the file system reaches the caller as an ``InvalidArgumentError`` that names
the destination, never as a bare ``OSError`` or ``KeyError``.
"""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from boxlite_mcp.runtime.errors import InvalidArgumentError, NotFoundError
from boxlite_mcp.runtime.shared import archive
from boxlite_mcp.runtime.shared.archive import ExtractionMode, Limits, UnsafeArchiveError

from .tarbuild import directory, hardlink, reg, symlink, tar


def listing(root: Path) -> dict[str, str]:
    """Every path under root: file contents, link targets, or 'dir'."""
    out = {}
    for path in sorted(root.rglob("*")):
        key = path.relative_to(root).as_posix()
        if path.is_symlink():
            out[key] = "-> " + os.readlink(path)
        elif path.is_dir():
            out[key] = "dir"
        else:
            out[key] = path.read_text()
    return out


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


# --- permission bits -------------------------------------------------------------


def test_permission_bits_of_files_and_directories_are_kept(tmp_path: Path) -> None:
    # The stdlib data filter alone would drop group/other write bits and reset
    # directory modes; tools like `cp -a` expect them kept.
    files = tar(
        directory("d", mode=0o751),
        reg("d/shared", b"s", mode=0o666),
        reg("d/run", b"r", mode=0o741),
        reg("private", b"p", mode=0o600),
    )
    archive.unpack(files, tmp_path / "out")
    out = tmp_path / "out"
    assert [mode_of(out / n) for n in ("d", "d/shared", "d/run", "private")] == [
        0o751,
        0o666,
        0o741,
        0o600,
    ]


def test_setuid_setgid_and_sticky_bits_are_dropped(tmp_path: Path) -> None:
    archive.unpack(tar(directory("t", mode=0o1777), reg("t/su", b"x", mode=0o6755)), tmp_path / "o")
    assert mode_of(tmp_path / "o/t") == 0o777
    assert mode_of(tmp_path / "o/t/su") == 0o755


# --- merging into an existing directory ----------------------------------------------


def test_a_merge_keeps_what_exists_and_adds_and_replaces_files(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    (dest / "sub").mkdir(parents=True)
    (dest / "sub/keep.txt").write_text("kept")
    (dest / "top.txt").write_text("old")
    archive.unpack(
        tar(reg("sub/new.txt", b"new"), reg("sub/deeper/f", b"f"), reg("top.txt", b"new top")),
        dest,
    )
    assert listing(dest) == {
        "sub": "dir",
        "sub/deeper": "dir",
        "sub/deeper/f": "f",
        "sub/keep.txt": "kept",
        "sub/new.txt": "new",
        "top.txt": "new top",
    }


def test_a_directory_over_an_existing_file_is_refused_and_nothing_changes(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    (dest / "a").mkdir(parents=True)
    (dest / "a/sub").write_text("a file")
    before = listing(dest)
    new = [reg(f"a/new{i:02d}", b"x") for i in range(20)]
    with pytest.raises(InvalidArgumentError, match="exists and is not a directory"):
        archive.unpack(tar(*new, reg("a/sub/f", b"x")), dest)
    assert listing(dest) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dest"]  # no staging left


def test_a_file_over_an_existing_directory_is_refused_and_nothing_changes(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    (dest / "x").mkdir(parents=True)
    (dest / "x/inside").write_text("i")
    before = listing(dest)
    with pytest.raises(InvalidArgumentError, match="is a directory; the archive has a file there"):
        archive.unpack(tar(reg("new", b"n"), reg("x", b"file")), dest)
    assert listing(dest) == before


def test_a_symlink_over_an_existing_directory_is_refused(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    (dest / "l").mkdir(parents=True)
    with pytest.raises(InvalidArgumentError, match="is a directory; the archive has a file there"):
        archive.unpack(tar(directory("d"), symlink("l", "d")), dest)
    assert listing(dest) == {"l": "dir"}


def test_a_directory_through_an_existing_symlink_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "link").symlink_to(outside)
    with pytest.raises(UnsafeArchiveError, match="is a symlink; refusing to extract a directory"):
        archive.unpack(tar(reg("other", b"o"), reg("link/evil", b"x")), dest)
    assert list(outside.iterdir()) == []
    assert listing(dest) == {"link": f"-> {outside}"}


def test_files_and_links_replace_an_existing_symlink_without_following_it(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "f").write_text("outside")
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "file").symlink_to(outside / "f")
    (dest / "link").symlink_to(outside)
    archive.unpack(tar(reg("file", b"mine"), directory("d"), symlink("link", "d")), dest)
    assert listing(dest) == {"d": "dir", "file": "mine", "link": "-> d"}
    assert (outside / "f").read_text() == "outside"


# --- destinations ---------------------------------------------------------------------


def test_missing_parents_are_created_in_both_modes(tmp_path: Path) -> None:
    one = tar(reg("f", b"one"))
    assert archive.unpack(one, tmp_path / "a/b/file.txt") is ExtractionMode.FILE_TO_FILE
    assert (tmp_path / "a/b/file.txt").read_text() == "one"
    two = tar(reg("x", b"1"), reg("y", b"2"))
    assert archive.unpack(two, tmp_path / "c/d/tree") is ExtractionMode.INTO_DIRECTORY
    assert listing(tmp_path / "c") == {
        "d": "dir",
        "d/tree": "dir",
        "d/tree/x": "1",
        "d/tree/y": "2",
    }
    assert archive.unpack(two, tmp_path / "new") is ExtractionMode.INTO_DIRECTORY
    assert listing(tmp_path / "new") == {"x": "1", "y": "2"}


def test_without_mkdir_parents_a_missing_parent_is_not_found(tmp_path: Path) -> None:
    for dest in (tmp_path / "missing/file.txt", f"{tmp_path}/missing/dir/"):
        with pytest.raises(NotFoundError, match="does not exist; create it first"):
            archive.unpack(tar(reg("f", b"x")), dest, mkdir_parents=False)
    assert list(tmp_path.iterdir()) == []
    archive.unpack(tar(reg("f", b"x")), tmp_path / "here.txt", mkdir_parents=False)
    assert (tmp_path / "here.txt").read_text() == "x"


def test_a_file_where_the_parent_should_be_is_an_invalid_argument(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("f")
    with pytest.raises(InvalidArgumentError, match=r"file is not a directory"):
        archive.unpack(tar(reg("f", b"x")), f"{tmp_path}/file/")
    with pytest.raises(InvalidArgumentError, match=r"cannot create .*file/sub: Not a directory"):
        archive.unpack(tar(reg("f", b"x")), tmp_path / "file/sub/x.txt")
    assert listing(tmp_path) == {"file": "f"}


@pytest.mark.parametrize("dest", ["x" * 300, "x" * 300 + "/", "ok/" + "y" * 300])
def test_a_name_too_long_is_an_invalid_argument(tmp_path: Path, dest: str) -> None:
    full = f"{tmp_path}/{dest}"
    with pytest.raises(InvalidArgumentError) as caught:
        archive.unpack(tar(reg("a", b"x"), reg("b", b"y")), full)
    assert str(caught.value) in (
        f"cannot unpack into {full}: File name too long",
        f"cannot create {Path(full).parent}: File name too long",
    )
    assert [p.name for p in tmp_path.iterdir()] in ([], ["ok"])


def test_an_entry_name_too_long_for_the_file_system_is_an_invalid_argument(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    with pytest.raises(InvalidArgumentError) as caught:
        archive.unpack(tar(reg("a", b"x"), reg("n" * 300, b"y")), dest)
    assert str(caught.value) == f"cannot unpack into {dest}: File name too long"
    assert list(tmp_path.iterdir()) == []


def test_a_hard_link_to_an_entry_the_archive_lacks_is_an_invalid_argument(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="linkname 'missing' not found"):
        archive.unpack(tar(reg("a", b"x"), hardlink("h", "missing")), tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_unpack_takes_a_path_and_keyword_limits(tmp_path: Path) -> None:
    path = tmp_path / "a.tar"
    path.write_bytes(tar(reg("a", b"x" * 10), reg("b")).getvalue())
    with pytest.raises(UnsafeArchiveError, match="size cap of 9 bytes"):
        archive.unpack(path, tmp_path / "out", limits=Limits(max_bytes=9))
    archive.unpack(path, tmp_path / "out", limits=Limits(max_bytes=10))
    assert listing(tmp_path / "out") == {"a": "x" * 10, "b": ""}


# --- extract_tree ---------------------------------------------------------------------


def test_extract_tree_skips_the_root_entry_and_returns_top_level_names(tmp_path: Path) -> None:
    # `tar -C dir .` starts with "./": the destination itself, not a new directory.
    files = tar(
        directory("./"), reg("./a", b"a"), reg("b/c/d", b"d"), directory("e"), reg("e/f", b"f")
    )
    files.seek(5)
    assert archive.extract_tree(files, tmp_path) == ["a", "b", "e"]
    assert files.tell() == 0
    assert listing(tmp_path) == {
        "a": "a",
        "b": "dir",
        "b/c": "dir",
        "b/c/d": "d",
        "e": "dir",
        "e/f": "f",
    }


def test_the_stdlib_filter_stays_behind_our_checks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With our own check switched off, the data filter still stops an escaping link.
    def lax(member: tarfile.TarInfo, *, contained_links: bool = True) -> str:
        return member.name

    monkeypatch.setattr(archive, "check_member", lax)
    with pytest.raises(UnsafeArchiveError, match="refused while extracting"):
        archive.extract_tree(tar(symlink("l", "../../etc")), tmp_path)
    assert list(tmp_path.iterdir()) == []


# --- pack ---------------------------------------------------------------------------------


def test_pack_writes_into_a_given_file_and_rewinds_it(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"data")
    out = io.BytesIO()
    assert archive.pack(tmp_path / "f", out) is out
    assert out.tell() == 0
    with tarfile.open(fileobj=out, mode="r:") as t:
        assert [(m.name, m.size) for m in t] == [("f", 4)]


def test_pack_archives_a_symlink_to_a_directory_as_the_link(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d/inside").write_text("i")
    (tmp_path / "ln").symlink_to(tmp_path / "d")
    with tarfile.open(fileobj=archive.pack(tmp_path / "ln"), mode="r:") as t:
        members = [(m.name, m.issym()) for m in t]
    assert members == [("ln", True)]
