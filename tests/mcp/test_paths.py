"""Host path confinement on its own: each refusal and each allowance of ``HostPaths``.

``test_units.test_host_paths`` covers the everyday cases with one root; these tests
pin down the edges a broken check would let through (issue 14): empty and NUL paths,
a second allowed root, a root given through a symlink, and the per-owner private
directories of a shared server with their 0o700 mode.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from boxlite_mcp.runtime.errors import InvalidArgumentError, NotFoundError, UnsupportedError
from boxlite_mcp.sessions import naming
from boxlite_mcp.sessions.owners import LOCAL_OWNER
from boxlite_mcp.sessions.paths import ENABLE_HINT, OWNERS_DIR, HostPaths


@pytest.fixture
def roots(tmp_path: Path) -> tuple[Path, Path]:
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    return first, second


def test_empty_path_is_refused_not_taken_as_the_root(roots: tuple[Path, Path]) -> None:
    paths = HostPaths(list(roots))
    with pytest.raises(InvalidArgumentError) as caught:
        paths.confine("", purpose="export destination")
    assert caught.value.message == "The host export destination is empty or contains a NUL byte."


@pytest.mark.parametrize("raw", ["\x00", "a\x00b", "sub/\x00", "/etc/passwd\x00"])
def test_nul_byte_is_refused_with_a_clear_error(roots: tuple[Path, Path], raw: str) -> None:
    # Without the check the NUL reaches os.path.realpath and surfaces as a bare ValueError.
    with pytest.raises(InvalidArgumentError, match="empty or contains a NUL byte"):
        HostPaths(list(roots)).confine(raw)


def test_no_roots_means_host_access_is_off(tmp_path: Path) -> None:
    paths = HostPaths([])
    assert not paths.enabled
    assert paths.describe() == "(none)"
    # Checked before anything else: even an empty path gets the "how to enable" answer.
    for raw in ("", str(tmp_path)):
        with pytest.raises(UnsupportedError) as caught:
            paths.confine(raw)
        assert caught.value.message == ENABLE_HINT
    assert "--allow-path DIR" in ENABLE_HINT
    assert f"DIR1{os.pathsep}DIR2" in ENABLE_HINT


def test_every_allowed_root_is_allowed_not_only_the_first(roots: tuple[Path, Path]) -> None:
    first, second = roots
    paths = HostPaths([first, second])
    assert paths.enabled
    assert paths.describe() == f"{first}, {second}"
    assert paths.confine(str(second)) == second
    assert paths.confine(str(second / "new" / "file")) == second / "new" / "file"
    assert paths.confine(str(first / "x")) == first / "x"


def test_relative_paths_are_taken_under_the_first_root(roots: tuple[Path, Path]) -> None:
    first, second = roots
    assert HostPaths([first, second]).confine("out.tar") == first / "out.tar"
    assert HostPaths([second, first]).confine("out.tar") == second / "out.tar"
    assert HostPaths([first, second]).confine(".") == first


def test_a_sibling_sharing_the_root_prefix_is_outside(tmp_path: Path) -> None:
    root = tmp_path / "data"
    root.mkdir()
    (tmp_path / "data-private").mkdir()
    paths = HostPaths([root])
    raw = str(tmp_path / "data-private" / "key")
    with pytest.raises(InvalidArgumentError) as caught:
        paths.confine(raw, purpose="volume source")
    assert caught.value.message == (
        f"The host volume source {raw!r} resolves to {raw!r}, outside the allowed roots: "
        f"{root}. Use a path inside one of them."
    )


def test_the_parent_of_a_root_is_outside_even_with_two_roots(roots: tuple[Path, Path]) -> None:
    first, second = roots
    paths = HostPaths([first, second])
    for raw in (str(first.parent), str(second / ".."), "..", str(second / "x" / ".." / "..")):
        with pytest.raises(InvalidArgumentError, match="outside the allowed roots"):
            paths.confine(raw)


def test_a_symlink_from_one_root_into_another_is_followed_and_allowed(
    roots: tuple[Path, Path],
) -> None:
    first, second = roots
    (second / "target").write_text("x")
    os.symlink(second / "target", first / "link")
    assert HostPaths([first, second]).confine("link") == second / "target"
    with pytest.raises(InvalidArgumentError, match="outside the allowed roots"):
        HostPaths([first]).confine("link")


def test_roots_given_through_a_symlink_are_resolved(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    alias = tmp_path / "alias"
    os.symlink(real, alias)
    paths = HostPaths([alias])
    assert paths.roots == [real]
    # A path under the alias and one under the real directory are the same, allowed path.
    assert paths.confine(str(alias / "f")) == real / "f"
    assert paths.confine(str(real / "f")) == real / "f"


def test_must_exist(roots: tuple[Path, Path]) -> None:
    first, second = roots
    (second / "there").write_text("x")
    paths = HostPaths([first, second])
    assert paths.confine(str(second / "there"), must_exist=True) == second / "there"
    assert paths.confine("absent") == first / "absent"  # fine unless it must exist
    with pytest.raises(NotFoundError) as caught:
        paths.confine("absent", must_exist=True, purpose="archive")
    assert caught.value.message == f"The host archive {str(first / 'absent')!r} does not exist."


def test_must_exist_and_purpose_are_keyword_only(roots: tuple[Path, Path]) -> None:
    """``confine(raw, True)`` would read as "allow" at a call site: it is not accepted."""
    with pytest.raises(TypeError):
        HostPaths(list(roots)).confine("x", True)  # type: ignore[call-arg]


def test_the_local_owner_gets_the_roots_themselves(roots: tuple[Path, Path]) -> None:
    paths = HostPaths(list(roots))
    assert paths.for_owner(LOCAL_OWNER) is paths
    assert not (roots[0] / OWNERS_DIR).exists()
    empty = HostPaths([])
    assert empty.for_owner("principal:alice") is empty


def test_a_shared_server_owner_gets_a_private_0o700_directory_under_each_root(
    roots: tuple[Path, Path],
) -> None:
    first, second = roots
    alice = HostPaths([first, second]).for_owner("principal:alice")
    digest = naming.owner_hash("principal:alice")
    assert alice.roots == [first / "owners" / digest, second / "owners" / digest]
    for private in alice.roots:
        assert private.is_dir()
        assert stat.S_IMODE(private.stat().st_mode) == 0o700
    # Asking again (every request does) is fine and keeps the directories.
    (alice.roots[1] / "kept").write_text("x")
    again = HostPaths([first, second]).for_owner("principal:alice")
    assert again.roots == alice.roots
    assert (again.roots[1] / "kept").read_text() == "x"


def test_owners_cannot_reach_each_others_private_directories(roots: tuple[Path, Path]) -> None:
    first, second = roots
    shared = HostPaths([first, second])
    alice, bob = shared.for_owner("principal:alice"), shared.for_owner("principal:bob")
    assert alice.roots != bob.roots
    assert alice.confine("notes") == alice.roots[0] / "notes"
    for raw in (str(bob.roots[0] / "notes"), str(bob.roots[1]), "../" + bob.roots[0].name, "/"):
        with pytest.raises(InvalidArgumentError, match="outside the allowed roots"):
            alice.confine(raw)
    # Nor the shared roots themselves.
    with pytest.raises(InvalidArgumentError, match="outside the allowed roots"):
        alice.confine(str(second / "shared-file"))
