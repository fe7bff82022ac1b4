"""The default image's mask on its own (``runtime/bwrap/hostimage``): the rules, the
plan's pieces, the mask as built on a detached tmpfs, and when it is rebuilt.

The box-level behaviour (what a default box sees) is in ``test_boundary.py``; these
tests pin each rule where it is made, so that switching one off fails here
(``docs/mutation.md``). They use paths under ``tmp_path`` where the function takes
them, and the host's own layout only read-only.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from boxlite_mcp.runtime.bwrap import hostimage
from boxlite_mcp.runtime.bwrap.hostimage import ALLOW, DENY, EMPTY, REPLACE, Entry


def _fd_path(fd: int, path: str = "") -> str:
    return f"/proc/self/fd/{fd}{path}"


@pytest.fixture
def mask() -> Iterator[hostimage.Mask]:
    m = hostimage.Mask()
    try:
        yield m
    finally:
        m.close()


# -- the operator's knobs -----------------------------------------------------------


def test_includes_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(hostimage.INCLUDE_ENV, f"/a{os.pathsep} {os.pathsep}{os.pathsep}/b c")
    assert hostimage.includes_from_env() == ["/a", "/b c"]
    monkeypatch.delenv(hostimage.INCLUDE_ENV)
    assert hostimage.includes_from_env() == []


def test_the_description_names_the_os_dirs_and_the_includes() -> None:
    plain = hostimage.describe([])
    assert "only (/usr, /bin, /sbin, /lib, /var/lib/dpkg" in plain
    assert plain.endswith("every other host path is absent")
    named = hostimage.describe(["/data", "/models"])
    assert named == plain + "; also shown, as the operator asked: /data, /models"


# -- the rules ----------------------------------------------------------------------


def test_the_rules_allow_the_os_and_empty_the_data_dirs() -> None:
    rules = hostimage._rules([], [])
    assert all(rules[d] == ALLOW for d in hostimage.OS_DIRS)
    assert all(rules[d] == EMPTY for d in ("/root", "/home", "/var/log", "/var/lib"))
    assert rules["/var/lib/dpkg"] == ALLOW
    assert rules["/etc/passwd"] == rules["/etc/group"] == REPLACE
    assert rules["/etc"] == DENY
    for name in os.listdir("/etc"):
        if name in ("hosts", "nsswitch.conf", "ssl", "os-release"):
            assert rules[f"/etc/{name}"] == ALLOW, name  # named ones
        if name.startswith("ld.so.") or name.startswith("python3"):
            assert rules[f"/etc/{name}"] == ALLOW, name  # patterns
        if name in ("shadow", "gshadow", "ssh", "sudoers"):
            assert f"/etc/{name}" not in rules, name  # hidden by /etc's DENY
    # Never shown, even under an allowed directory.
    if os.path.isdir("/etc/ssl"):
        assert rules["/etc/ssl/private"] == DENY


def test_includes_and_hidden_paths(tmp_path: Path) -> None:
    rules = hostimage._rules([f"{tmp_path}/shown/", "/srv/data"], ["/", "/usr/secret", "/home"])
    assert rules[f"{tmp_path}/shown"] == ALLOW  # normalized
    assert rules["/srv/data"] == ALLOW
    assert rules["/usr/secret"] == DENY  # would show under /usr
    assert rules["/home"] == EMPTY  # already hidden: left as it is
    assert "/" not in rules
    assert f"{tmp_path}/other" not in hostimage._rules([], [f"{tmp_path}/other"])


def test_a_path_inherits_allow_only_from_an_allowed_parent() -> None:
    rules = {"/a": ALLOW, "/a/b": EMPTY, "/c": REPLACE, "/d": DENY}
    assert hostimage._action("/a", rules) == ALLOW
    assert hostimage._action("/a/x/y", rules) == ALLOW
    assert hostimage._action("/a/b", rules) == EMPTY
    assert hostimage._action("/a/b/x", rules) == DENY
    assert hostimage._action("/c/x", rules) == DENY
    assert hostimage._action("/d/x", rules) == DENY
    assert hostimage._action("/e/x", rules) == DENY


def test_a_directory_is_walked_only_where_a_rule_below_changes_it() -> None:
    rules = {"/a": ALLOW, "/a/b": ALLOW, "/c": ALLOW, "/c/d": DENY, "/e": EMPTY, "/ef": DENY}
    assert not hostimage._walk_needed("/a", ALLOW, rules)  # all allowed below
    assert hostimage._walk_needed("/a", EMPTY, rules)  # an allowed path in an emptied dir
    assert hostimage._walk_needed("/c", ALLOW, rules)  # a hidden path in an allowed dir
    assert not hostimage._walk_needed("/e", EMPTY, rules)  # nothing below ("/ef" is beside)
    assert hostimage._walk_needed("/", DENY, rules)


def test_password_fields_are_blanked() -> None:
    data = b"root:$6$hash:0:0:root:/root:/bin/bash\n# comment:with:colons\nshort:line\n\ngrp:*:5:\n"
    assert hostimage._blank_passwords(data) == (b"root:x:0:0:root:/root:/bin/bash\ngrp:x:5:\n")
    assert hostimage._blank_passwords(b"a:b:c") == b"a:x:c\n"


# -- a symlink to hidden data --------------------------------------------------------


def test_a_symlink_to_a_hidden_file_is_copied_up_to_the_cap(tmp_path: Path) -> None:
    at_cap = tmp_path / "at-cap"
    at_cap.write_bytes(b"a" * hostimage.MAX_COPY)
    over = tmp_path / "over"
    over.write_bytes(b"b" * (hostimage.MAX_COPY + 1))
    for target in (at_cap, over):
        (tmp_path / f"link-{target.name}").symlink_to(target)

    def copy(name: str, rules: dict[str, str] | None = None) -> bytes | None:
        path = str(tmp_path / name)
        return hostimage._hidden_target(path, os.lstat(path), rules or {})

    assert copy("link-at-cap") == at_cap.read_bytes()
    assert copy("link-over") is None
    assert copy("link-at-cap", {str(tmp_path): ALLOW}) is None  # the box sees the target
    assert copy("at-cap") is None  # not a symlink
    (tmp_path / "link-dir").symlink_to(tmp_path)
    assert copy("link-dir") is None
    (tmp_path / "link-mem").symlink_to("/proc/self/mem")  # a file that cannot be read
    assert copy("link-mem") is None


def test_the_plan_shows_such_a_copy_as_a_root_file(tmp_path: Path) -> None:
    shown = tmp_path / "shown"
    shown.mkdir()
    (tmp_path / "hidden").write_text("data\n")
    (shown / "link").symlink_to(tmp_path / "hidden")
    os.chown(shown / "link", 7, 7, follow_symlinks=False)
    entries = {e.path: e for e in hostimage.plan([f"{shown}/link"])}
    assert entries[f"{shown}/link"] == Entry(f"{shown}/link", "file", 0o644, 0, 0, b"data\n")


def test_the_plan_carries_on_past_what_it_cannot_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A directory or entry that vanishes (or cannot be read) while the plan walks is
    skipped; the rest is planned."""
    shown = tmp_path / "shown"
    for name in ("a", "b", "c"):
        (shown / name).mkdir(parents=True)
    (shown / "c" / "x").mkdir()
    hidden = [f"{shown}/a/secret", f"{shown}/b/secret", f"{shown}/c/x/secret"]
    for path in hidden:
        Path(path).write_text("")
    real_lstat, real_listdir = os.lstat, os.listdir

    def lstat(path: str, *args: object, **kw: object) -> os.stat_result:
        if path == f"{shown}/a":
            raise FileNotFoundError(path)
        return real_lstat(path, *args, **kw)  # type: ignore[arg-type]

    def listdir(path: str) -> list[str]:
        if path == f"{shown}/c/x":
            raise PermissionError(path)
        return real_listdir(path)

    monkeypatch.setattr(hostimage.os, "lstat", lstat)
    monkeypatch.setattr(hostimage.os, "listdir", listdir)
    entries = {e.path: e.kind for e in hostimage.plan([str(shown)], hidden)}
    assert f"{shown}/a" not in entries
    assert entries[f"{shown}/b"] == "dir" and entries[f"{shown}/b/secret"] == "whiteout"
    assert entries[f"{shown}/c/x"] == "dir" and f"{shown}/c/x/secret" not in entries


def test_entries_are_values() -> None:
    entry = Entry("/a", "whiteout")
    assert {entry, Entry("/a", "whiteout")} == {entry}
    with pytest.raises(dataclasses.FrozenInstanceError):
        entry.path = "/b"  # type: ignore[misc]


def test_the_digest_covers_every_field() -> None:
    base = Entry("/a", "file", 0o644, 1, 2, b"x")
    variants = [
        dataclasses.replace(base, path="/b"),
        dataclasses.replace(base, kind="dir"),
        dataclasses.replace(base, mode=0o600),
        dataclasses.replace(base, uid=3),
        dataclasses.replace(base, gid=3),
        dataclasses.replace(base, content=b"y"),
    ]
    digests = {hostimage._digest([base])} | {hostimage._digest([v]) for v in variants}
    assert len(digests) == len(variants) + 1
    assert hostimage._digest([base]) == hostimage._digest([Entry("/a", "file", 0o644, 1, 2, b"x")])
    assert len(hostimage._digest([])) == 16


# -- the mask as built ---------------------------------------------------------------


def test_the_mask_is_built_as_planned() -> None:
    big = os.urandom(300 * 1024)  # more than one write
    entries = [
        Entry("/w", "whiteout"),
        Entry("/d", "dir", 0o751, 5, 6),
        Entry("/d/o", "opaque", 0o710, 7, 8),
        Entry("/d/f", "file", 0o640, 9, 10, big),
        Entry("/d/o/w", "whiteout"),
        Entry("/d/empty", "file", 0o600, 0, 0, b""),
    ]
    fd = hostimage._build(entries)
    try:
        st = os.lstat(_fd_path(fd, "/w"))
        assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(0, 0)
        assert stat.S_IMODE(st.st_mode) == 0
        for path, mode, uid, gid in (("/d", 0o751, 5, 6), ("/d/o", 0o710, 7, 8)):
            st = os.lstat(_fd_path(fd, path))
            assert stat.S_ISDIR(st.st_mode)
            assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (mode, uid, gid), path
        assert os.getxattr(_fd_path(fd, "/d/o"), hostimage.OPAQUE_XATTR) == b"y"
        with pytest.raises(OSError):
            os.getxattr(_fd_path(fd, "/d"), hostimage.OPAQUE_XATTR)
        st = os.lstat(_fd_path(fd, "/d/f"))
        assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o640, 9, 10)
        assert Path(_fd_path(fd, "/d/f")).read_bytes() == big
        assert Path(_fd_path(fd, "/d/empty")).read_bytes() == b""
        assert sorted(os.listdir(_fd_path(fd))) == ["d", "w"]
        assert sorted(os.listdir(_fd_path(fd, "/d"))) == ["empty", "f", "o"]
    finally:
        os.close(fd)


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def test_a_failed_build_leaks_no_fd() -> None:
    before = _open_fds()
    with pytest.raises(KeyError):  # an entry whose parent is not planned
        hostimage._build([Entry("/d", "dir"), Entry("/d/e", "dir"), Entry("/x/y", "whiteout")])
    with pytest.raises(FileExistsError):
        hostimage._build([Entry("/d", "dir"), Entry("/d", "file")])
    assert _open_fds() <= before


def test_the_mask_is_kept_until_the_host_changes(
    tmp_path: Path, mask: hostimage.Mask, monkeypatch: pytest.MonkeyPatch
) -> None:
    shown = tmp_path / "shown"
    (shown / "sub").mkdir(parents=True)  # walked for the hidden path, not an include
    mask.includes, mask.hidden = [str(shown)], [f"{shown}/sub/secret"]

    held: list[int] = []  # kept open, so that no device number is used twice

    def dev(fd: int) -> int:
        held.append(fd)
        return os.fstat(fd).st_dev

    try:
        first = dev(mask.fd())
        assert dev(mask.fd()) == first  # nothing changed: the same tmpfs
        (shown / "sub" / "other").write_text("")  # a change that does not change the plan
        assert dev(mask.fd()) == first
        (shown / "sub" / "secret").write_text("")  # one that does: a new whiteout
        second = dev(mask.fd())
        assert second != first
        st = os.lstat(_fd_path(held[-1], f"{shown}/sub/secret"))
        assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
        mask.close()
        mask.close()  # twice is fine
        assert dev(mask.fd()) not in (first, second)  # made anew after close
    finally:
        for fd in held:
            os.close(fd)


def test_an_opaque_directory_s_content_is_not_watched(tmp_path: Path) -> None:
    """``/tmp`` changes all the time; only its own identity matters."""
    stamps = hostimage._stamp([(str(tmp_path), False), (str(tmp_path), True)])
    (tmp_path / "new").write_text("")
    after = hostimage._stamp([(str(tmp_path), False), (str(tmp_path), True)])
    assert after[0] == stamps[0] and after[1] != stamps[1]
    st = os.stat(tmp_path)
    assert after[0] == (st.st_ino, st.st_mode, st.st_uid, st.st_gid)
    missing = hostimage._stamp([(str(tmp_path / "missing"), True), (str(tmp_path), False)])
    assert missing == [None, after[0]]  # and the paths after it still count
    os.chmod(tmp_path, 0o755)
    assert hostimage._stamp([(str(tmp_path), False)]) != after[:1]


def test_an_unreadable_etc_hides_all_of_it(monkeypatch: pytest.MonkeyPatch) -> None:
    real_listdir = os.listdir

    def listdir(path: str) -> list[str]:
        if path == "/etc":
            raise PermissionError(path)
        return real_listdir(path)

    monkeypatch.setattr(hostimage.os, "listdir", listdir)
    rules = hostimage._rules([], [])
    assert rules["/etc"] == DENY
    assert sorted(p for p in rules if p.startswith("/etc/")) == ["/etc/group", "/etc/passwd"]


def test_a_new_top_level_directory_is_hidden_at_the_next_box(mask: hostimage.Mask) -> None:
    canary = Path(f"/boxlite-mask-canary-{secrets.token_hex(6)}")
    fds: list[int] = []
    try:
        fds.append(mask.fd())
        assert not os.path.lexists(_fd_path(fds[0], str(canary)))
        canary.mkdir()
        fds.append(mask.fd())
        st = os.lstat(_fd_path(fds[1], str(canary)))
        assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    finally:
        for fd in fds:
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            canary.rmdir()
