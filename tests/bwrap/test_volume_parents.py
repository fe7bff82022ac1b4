"""A mount at a path the image lacks must be reachable by box root (found by the
python session tests after issue 10's id mapping): ``runtime/bwrap/mountparents``.

The box tests show the behaviour end to end; the unit tests check the layer lookup
on its own (whiteouts, opaque directories, idmapped owners), on plain directories.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from boxlite_mcp.runtime.bwrap import BwrapRuntime, hostimage, idmap, mountparents
from boxlite_mcp.runtime.types import BoxOptions, VolumeSpec
from tests.bwrap.conftest import run, sh

pytestmark = pytest.mark.anyio
BOX_ROOT = idmap.to_host(0)


def _shared(tmp_path: Path) -> Path:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "f").write_text("hello\n")
    return shared


async def test_a_volume_under_new_directories_is_reachable(tmp_path: Path) -> None:
    runtime = BwrapRuntime(home=tmp_path / "home")
    try:
        box = await runtime.create(
            BoxOptions(
                volumes=[VolumeSpec(host_path=str(_shared(tmp_path)), guest_path="/work/a/b")]
            )
        )
        result, out, err = await run(box, "cat", "/work/a/b/f")
        assert (result.exit_code, out, err) == (0, b"hello\n", b"")
    finally:
        await runtime.aclose()


async def test_a_deep_volume_under_a_hidden_directory(tmp_path: Path) -> None:
    """``/srv`` is emptied by the default image's mask (an opaque directory): the new
    directories there belong to box root and show nothing of the host's. Below the
    box's fresh ``/tmp`` they are reachable too (bubblewrap's, so nobody's)."""
    runtime = BwrapRuntime(home=tmp_path / "home")
    deep = "/srv/d1/d2/d3/d4/d5/d6"
    try:
        shared = str(_shared(tmp_path))
        box = await runtime.create(
            BoxOptions(
                volumes=[
                    VolumeSpec(host_path=shared, guest_path=deep),
                    VolumeSpec(host_path=shared, guest_path="/tmp/t1/t2", read_only=True),
                ]
            )
        )
        script = (
            f"cat {deep}/f /tmp/t1/t2/f && stat -c '%u:%g %a %n' /srv/d1 {deep}/.. /tmp/t1 "
            "&& ls -A /srv && touch /srv/d1/mine"
        )
        result, out, err = await sh(box, script)
        assert (result.exit_code, err) == (0, b"")
        nobody = idmap.OVERFLOW
        assert out.decode().splitlines() == [
            "hello",
            "hello",
            "0:0 755 /srv/d1",
            f"0:0 755 {deep}/..",
            f"{nobody}:{nobody} 755 /tmp/t1",
            "d1",
        ]
        # Made once in the box's layer and kept: a restart finds them as they were.
        await box.stop()
        await box.start()
        result, out, _ = await sh(box, f"cat {deep}/f /tmp/t1/t2/f && ls /srv/d1")
        assert (result.exit_code, out) == (0, b"hello\nhello\nd2\nmine\n")
    finally:
        await runtime.aclose()


# The lookup on its own: plain directories stand for the layers.


def _layers(tmp_path: Path) -> tuple[Path, Path, Path]:
    upper, mask, lower = tmp_path / "upper", tmp_path / "mask", tmp_path / "lower"
    for d in (upper, mask, lower):
        d.mkdir()
    return upper, mask, lower


def _make(upper: Path, mask: Path, lower: Path, *targets: str) -> None:
    layers = [mountparents.Layer(str(mask), True), mountparents.Layer(str(lower), False)]
    mountparents.make(str(upper), layers, targets)


def _whiteout(path: Path) -> None:
    os.mknod(path, stat.S_IFCHR, os.makedev(0, 0))


def _opaque(path: Path) -> bool:
    try:
        return os.getxattr(path, hostimage.OPAQUE_XATTR) == b"y"
    except OSError:
        return False


def _meta(path: Path) -> tuple[int, int, int]:
    st = os.lstat(path)
    return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)


def test_missing_parents_are_new_opaque_box_root_directories(tmp_path: Path) -> None:
    upper, mask, lower = _layers(tmp_path)
    _make(upper, mask, lower, "/a/b/c/target")
    for d in ("a", "a/b", "a/b/c"):
        assert _meta(upper / d) == (BOX_ROOT, BOX_ROOT, 0o755), d
        assert _opaque(upper / d), d
    assert not (upper / "a/b/c/target").exists()  # the mount point is bubblewrap's


def test_a_directory_the_view_has_is_copied_with_its_owner(tmp_path: Path) -> None:
    upper, mask, lower = _layers(tmp_path)
    (lower / "host").mkdir(mode=0o751)
    os.chown(lower / "host", 7, 8)
    (lower / "host").chmod(0o751)
    (mask / "img").mkdir()
    os.chown(mask / "img", 3, 4)
    (mask / "img").chmod(0o711)
    _make(upper, mask, lower, "/host/new/t", "/img/new/t")
    # The host layer keeps host ids; the idmapped mask's ids are box ids.
    assert _meta(upper / "host") == (7, 8, 0o751)
    assert _meta(upper / "img") == (idmap.to_host(3), idmap.to_host(4), 0o711)
    assert not _opaque(upper / "host") and not _opaque(upper / "img")
    assert _opaque(upper / "host/new") and _opaque(upper / "img/new")


def test_the_topmost_layer_decides(tmp_path: Path) -> None:
    upper, mask, lower = _layers(tmp_path)
    for layer in (mask, lower):
        (layer / "d").mkdir()
    os.chown(mask / "d", 5, 5)
    os.chown(lower / "d", 6, 6)
    (lower / "d/deep").mkdir()  # only in the bottom layer, seen through d
    os.chown(lower / "d/deep", 9, 9)
    _make(upper, mask, lower, "/d/deep/t")
    assert _meta(upper / "d")[:2] == (idmap.to_host(5), idmap.to_host(5))
    assert _meta(upper / "d/deep")[:2] == (9, 9)


def test_a_whiteout_or_opaque_directory_hides_the_layers_below(tmp_path: Path) -> None:
    upper, mask, lower = _layers(tmp_path)
    (lower / "gone/sub").mkdir(parents=True)
    _whiteout(mask / "gone")
    (mask / "empty").mkdir()
    os.setxattr(mask / "empty", hostimage.OPAQUE_XATTR, b"y")
    (lower / "empty/sub").mkdir(parents=True)
    os.chown(lower / "empty/sub", 6, 6)
    _make(upper, mask, lower, "/gone/sub/t", "/empty/sub/t")
    assert _meta(upper / "gone") == (BOX_ROOT, BOX_ROOT, 0o755) and _opaque(upper / "gone")
    assert _meta(upper / "gone/sub") == (BOX_ROOT, BOX_ROOT, 0o755)
    assert _meta(upper / "empty/sub") == (BOX_ROOT, BOX_ROOT, 0o755)
    assert _opaque(upper / "empty/sub")


def test_a_directory_the_box_deleted_is_made_anew(tmp_path: Path) -> None:
    upper, mask, lower = _layers(tmp_path)
    (lower / "old/sub").mkdir(parents=True)
    os.chown(lower / "old/sub", 6, 6)
    _whiteout(upper / "old")
    _make(upper, mask, lower, "/old/sub/t")
    assert (upper / "old").is_dir() and _opaque(upper / "old")
    assert _meta(upper / "old/sub") == (BOX_ROOT, BOX_ROOT, 0o755)


def test_what_the_upper_layer_has_is_kept(tmp_path: Path) -> None:
    upper, mask, lower = _layers(tmp_path)
    (upper / "mine").mkdir(mode=0o700)
    (upper / "mine").chmod(0o700)
    (lower / "mine/sub").mkdir(parents=True)
    os.chown(lower / "mine/sub", 6, 6)
    _make(upper, mask, lower, "/mine/sub/t")
    assert _meta(upper / "mine") == (0, 0, 0o700)  # untouched
    assert _meta(upper / "mine/sub")[:2] == (6, 6)  # copied from below: the merge goes on
    _make(upper, mask, lower, "/mine/sub/t")  # a second start changes nothing


def test_a_file_or_symlink_on_the_way_is_left_to_bubblewrap(tmp_path: Path) -> None:
    upper, mask, lower = _layers(tmp_path)
    (lower / "file").write_text("")
    (mask / "d").mkdir()
    (lower / "d").mkdir()
    (lower / "d" / "link").symlink_to("/nowhere")
    (upper / "u").write_text("")
    (lower / "u").mkdir()
    _make(upper, mask, lower, "/file/x/t", "/d/link/x/t", "/u/x/t")
    assert sorted(os.listdir(upper)) == ["d", "u"]
    assert os.listdir(upper / "d") == []
    assert (upper / "u").is_file()


def test_fresh_mounts_get_bubblewrap_directories() -> None:
    fresh = ("/dev", "/tmp", "/dev/shm")
    args = mountparents.fresh_dirs(["/dev/shm/a/b/t", "/tmp/t", "/tmpx/a/t", "/srv/a/t"], fresh)
    assert args == [
        "--perms",
        "0755",
        "--dir",
        "/dev/shm/a",
        "--perms",
        "0755",
        "--dir",
        "/dev/shm/a/b",
    ]
