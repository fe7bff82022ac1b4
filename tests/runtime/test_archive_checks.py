"""Our own archive checks, called directly: ``clean_name``, ``check_member``, ``scan``.

Unpacking also runs the standard library's ``data_filter``, which refuses most
of the same archives a second time; testing only through ``unpack`` let each of
our checks be switched off unnoticed (issue 14). Every test here calls the check
itself, so each one is tested on its own, with the input that just passes next
to the input that just fails.
"""

from __future__ import annotations

import dataclasses
import io
import tarfile

import pytest

from boxlite_mcp.runtime.errors import InvalidArgumentError
from boxlite_mcp.runtime.shared import archive
from boxlite_mcp.runtime.shared.archive import Limits, UnsafeArchiveError

from .tarbuild import directory, entry, hardlink, reg, symlink, tar, with_size


def info(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    member = tarfile.TarInfo(name)
    member.type = kind
    member.linkname = linkname
    return member


# --- names -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["..", "../x", "a/../b", "a/b/..", "a/../../x"])
def test_a_name_with_dotdot_is_refused(name: str) -> None:
    with pytest.raises(UnsafeArchiveError, match=r"contains '\.\.'"):
        archive.clean_name(name)
    with pytest.raises(UnsafeArchiveError, match=r"contains '\.\.'"):
        archive.scan(tar(reg(name, b"x")), contained_links=False)


@pytest.mark.parametrize("name", ["/etc/passwd", "\\windows\\x", "//x"])
def test_an_absolute_name_is_refused(name: str) -> None:
    with pytest.raises(UnsafeArchiveError, match="absolute path"):
        archive.clean_name(name)


def test_a_name_is_normalised_and_dotted_names_are_kept() -> None:
    assert archive.clean_name("./a//b/./c/") == "a/b/c"
    assert archive.clean_name("./") == ""
    assert archive.clean_name("..a/b..") == "..a/b.."
    assert archive.check_member(info("./d/f")) == "d/f"


# --- entry types ---------------------------------------------------------------


@pytest.mark.parametrize(
    "kind",
    [tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE, b"Z"],
    ids=["char-device", "block-device", "fifo", "unknown-type"],
)
def test_devices_fifos_and_unknown_types_are_refused(kind: bytes) -> None:
    with pytest.raises(UnsafeArchiveError, match="device, fifo or special file"):
        archive.check_member(info("dev", kind))


def test_files_directories_and_links_inside_are_accepted() -> None:
    members = [
        info("d", tarfile.DIRTYPE),
        info("d/f"),
        info("d/up", tarfile.SYMTYPE, "../d/f"),
        info("d/same", tarfile.SYMTYPE, "f"),
        info("top", tarfile.SYMTYPE, "."),
        info("h", tarfile.LNKTYPE, "d/f"),
    ]
    assert [archive.check_member(m) for m in members] == ["d", "d/f", "d/up", "d/same", "top", "h"]


# --- symlinks ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "target"),
    [
        ("l", "/etc"),
        ("d/l", "/"),
        ("l", ".."),
        ("l", "../x"),
        ("d/l", "../.."),
        ("d/l", "x/../../../y"),
    ],
    ids=["absolute", "root", "parent", "up", "nested-up", "up-after-down"],
)
def test_a_symlink_leaving_the_destination_is_refused(name: str, target: str) -> None:
    with pytest.raises(UnsafeArchiveError, match=r"is a symlink to .* outside the destination"):
        archive.check_member(info(name, tarfile.SYMTYPE, target))
    with pytest.raises(UnsafeArchiveError, match="outside the destination"):
        archive.scan(tar(symlink(name, target)))


def test_symlinks_may_point_anywhere_for_writers_that_confine_every_path() -> None:
    members = [info("l", tarfile.SYMTYPE, "/etc"), info("d/l", tarfile.SYMTYPE, "../../x")]
    assert [archive.check_member(m, contained_links=False) for m in members] == ["l", "d/l"]
    scanned = archive.scan(tar(symlink("l", "/etc"), symlink("u", "../..")), contained_links=False)
    assert len(scanned) == 2


# --- hard links ----------------------------------------------------------------


@pytest.mark.parametrize("target", ["/etc/passwd", "../x", "a/../../x", ".."])
@pytest.mark.parametrize("contained_links", [True, False])
def test_a_hard_link_leaving_the_destination_is_refused(target: str, contained_links: bool) -> None:
    # Hard links are judged whatever contained_links says: a box cannot confine them.
    with pytest.raises(UnsafeArchiveError, match=r"is a hard link to .* outside the destination"):
        archive.check_member(info("h", tarfile.LNKTYPE, target), contained_links=contained_links)


def test_a_hard_link_inside_the_destination_is_accepted() -> None:
    scanned = archive.scan(tar(reg("d/f", b"x"), hardlink("d/h", "d/f"), hardlink("h", "./d/f")))
    assert len(scanned) == 3


# --- chains of symlinks --------------------------------------------------------


@pytest.mark.parametrize(
    ("entries", "crossed"),
    [
        ([symlink("l1", "."), symlink("l2", "l1/..")], "l1"),
        ([symlink("l1", "."), symlink("d/l2", "../l1/..")], "l1"),
        ([directory("d"), symlink("d/l", "."), symlink("d/m", "l/../..")], "d/l"),
        ([symlink("x", "sub"), symlink("d/l", "../x/f")], "x"),
        ([symlink("l", "sub"), reg("l/f", b"x")], "l"),
        ([symlink("l", "sub"), symlink("l/m", "f")], "l"),
        ([symlink("l", "sub"), hardlink("l/h", "f")], "l"),
        ([reg("f", b"x"), symlink("l", "f"), hardlink("h", "l")], "l"),
        ([symlink("l", "d"), hardlink("h", "l/f")], "l"),
    ],
    ids=[
        "dot-then-dotdot",
        "nested-dot-then-dotdot",
        "chain-in-a-directory",
        "dotdot-then-through",
        "file-through-link",
        "link-through-link",
        "hardlink-named-through-link",
        "hardlink-to-a-symlink",
        "hardlink-through-link",
    ],
)
def test_a_path_through_an_earlier_symlink_is_refused(entries: list[bytes], crossed: str) -> None:
    with pytest.raises(UnsafeArchiveError, match=f"goes through the archive's symlink '{crossed}'"):
        archive.scan(tar(*entries))


def test_links_to_links_and_paths_beside_links_are_accepted() -> None:
    scanned = archive.scan(
        tar(
            reg("d/f", b"x"),
            symlink("l1", "d/f"),
            symlink("l2", "l1"),  # ends at l1, does not cross it
            symlink("d/l3", "../l2"),
            reg("l1x/f", b"y"),  # a name that merely starts like a link
            symlink("d/up", "../d/f"),
        )
    )
    assert len(scanned) == 6


def test_chains_are_allowed_for_writers_that_confine_every_path() -> None:
    scanned = archive.scan(
        tar(symlink("l1", "."), symlink("l2", "l1/.."), reg("l1/f", b"x")), contained_links=False
    )
    assert len(scanned) == 3


# --- caps ------------------------------------------------------------------------


def test_the_entry_cap_allows_exactly_max_entries() -> None:
    three = [directory("d"), symlink("d/l", "f"), reg("d/f", b"x")]
    assert len(archive.scan(tar(*three), limits=Limits(max_entries=3))) == 3
    with pytest.raises(UnsafeArchiveError, match="more than 2 entries"):
        archive.scan(tar(*three), limits=Limits(max_entries=2))


def test_the_byte_cap_allows_exactly_max_bytes_of_file_data() -> None:
    files = tar(reg("a", b"x" * 600), directory("d"), reg("d/b", b"y" * 400))
    assert archive.scan(files, limits=Limits(max_bytes=1000)).total_bytes == 1000
    with pytest.raises(UnsafeArchiveError, match="size cap of 999 bytes"):
        archive.scan(files, limits=Limits(max_bytes=999))


def test_the_default_caps_are_the_documented_ones() -> None:
    # docs/faults.md and docs/soak.md promise an 8 GiB copy cap and 1,000,000 entries.
    assert Limits() == Limits(max_bytes=8 * 2**30, max_entries=1_000_000)


def test_limits_cannot_be_changed_in_place() -> None:
    # A Limits() is every function's default argument: changing one would change all calls.
    with pytest.raises(dataclasses.FrozenInstanceError):
        Limits().max_bytes = 1  # type: ignore[misc]


def test_a_negative_size_is_refused_without_looping() -> None:
    # A base-256 size of -512 makes tarfile read the same header forever.
    looping = tar(reg("a", b"x" * 1000), with_size(entry("neg", tarfile.REGTYPE), -512))
    with pytest.raises(UnsafeArchiveError, match="negative size"):
        archive.scan(looping)
    with pytest.raises(UnsafeArchiveError, match="negative size"):
        archive.scan(tar(with_size(entry("neg", tarfile.REGTYPE), -1)))


# --- what a scan returns ------------------------------------------------------


def test_a_scan_keeps_the_count_the_total_and_the_first_entry_only() -> None:
    f = tar(reg("first", b"abc"), directory("d"), reg("d/last", b"de"))
    f.seek(7)
    scanned = archive.scan(f)
    assert f.tell() == 0
    assert (len(scanned), scanned.total_bytes) == (3, 5)
    assert scanned[0].name == "first" and scanned[-3] is scanned[0]
    for index in (1, -1, 3):
        with pytest.raises(IndexError):
            scanned[index]
    with pytest.raises(TypeError, match="cannot be sliced"):
        scanned[0:1]
    one = archive.scan(tar(reg("only")))
    assert one[-1] is one[0]
    with pytest.raises(IndexError):
        archive.scan(tar())[0]


def test_a_refused_scan_leaves_the_file_at_its_start() -> None:
    f = tar(reg("ok", b"x"), reg("../bad", b"y"))
    with pytest.raises(UnsafeArchiveError):
        archive.scan(f)
    assert f.tell() == 0


def test_garbage_is_not_a_tar_archive() -> None:
    with pytest.raises(InvalidArgumentError, match="not a valid tar archive") as caught:
        archive.scan(io.BytesIO(b"this is not a tar archive\n" * 40))
    assert not isinstance(caught.value, UnsafeArchiveError)


def test_extraction_mode_follows_boxlite_rules() -> None:
    one = archive.scan(tar(reg("f", b"x")))
    into, to_file = archive.ExtractionMode.INTO_DIRECTORY, archive.ExtractionMode.FILE_TO_FILE
    assert archive.detect_mode("out", False, one) is to_file
    assert archive.detect_mode("out/", False, one) is into
    assert archive.detect_mode("out", True, one) is into
    assert archive.detect_mode("out", False, archive.scan(tar(directory("d")))) is into
    assert archive.detect_mode("out", False, archive.scan(tar(reg("a"), reg("b")))) is into
    assert archive.detect_mode("out", False, archive.scan(tar())) is into
