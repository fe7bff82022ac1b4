"""The bwrap box as a boundary (issue 10), each layer tested on its own:

- the default image shows the host's OS and none of its data (``hostimage``);
- box ids are host ids 100000+ (``idmap``): box root is "other" to host files;
- a seccomp filter modelled on Docker's default (``seccomp``).

Canary files are created on the host and removed in ``finally`` blocks.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import sys
import tarfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from boxlite_mcp.runtime.bwrap import BwrapRuntime, hostimage, idmap, seccomp
from boxlite_mcp.runtime.bwrap.box import BwrapBox
from boxlite_mcp.runtime.types import BoxOptions, VolumeSpec

from .conftest import run, sh

pytestmark = pytest.mark.anyio

SYSCALL = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
nr = {"keyctl": 250, "bpf": 321, "perf_event_open": 298, "userfaultfd": 323,
      "clone3": 435, "add_key": 248, "request_key": 249}[sys.argv[1]]
rc = libc.syscall(nr, 0, 0, 0, 0, 0)
print(rc, os.strerror(ctypes.get_errno()) if rc < 0 else "ok")
"""


@contextlib.contextmanager
def _canaries() -> Iterator[dict[str, Path]]:
    """Host files a default box must not see, removed again whatever happens."""
    token = secrets.token_hex(6)
    root_file = Path(f"/root/.boxlite-canary-{token}")
    home_dir = Path(f"/home/boxlite-canary-{token}")
    top_dir = Path(f"/boxlite-canary-{token}")
    cwd_dir = Path(f"/usr/local/share/boxlite-canary-{token}")
    made: list[Path] = []
    try:
        fd = os.open(root_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, b"root's secret\n")
        os.close(fd)
        made.append(root_file)
        for d in (home_dir, top_dir, cwd_dir):
            d.mkdir(mode=0o755)
            made.append(d)
            (d / "canary.txt").write_text("host data\n")
            os.chmod(d / "canary.txt", 0o644)
        yield {
            "root": root_file,
            "home": home_dir / "canary.txt",
            "top": top_dir / "canary.txt",
            "cwd": cwd_dir / "canary.txt",
            "cwd_dir": cwd_dir,
        }
    finally:
        for path in made:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()


@contextlib.asynccontextmanager
async def _runtime(home: Path, **kw: object) -> AsyncIterator[BwrapRuntime]:
    runtime = BwrapRuntime(home=home, **kw)  # type: ignore[arg-type]
    try:
        yield runtime
    finally:
        await runtime.aclose()


# -- the default image ------------------------------------------------------------


async def test_default_image_shows_no_host_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _canaries() as canary:
        monkeypatch.chdir(canary["cwd_dir"])  # the server's working directory
        async with _runtime(tmp_path / "home") as runtime:
            box = await runtime.create(BoxOptions())
            for name in ("root", "home", "top", "cwd"):
                result, _, _ = await sh(box, f"test -e {canary[name]}")
                assert result.exit_code == 1, f"{name} canary {canary[name]} is visible"
            # The cwd is hidden, not its OS parent.
            assert (await sh(box, "test -d /usr/local/share"))[0].exit_code == 0
            for d in (
                "/root",
                "/home",
                "/srv",
                "/mnt",
                "/media",
                "/run",
                "/opt",
                "/var/log",
                "/var/cache",
                "/var/tmp",
            ):
                _, out, _ = await sh(box, f"ls -A {d}")
                assert out == b"", f"{d} is not empty in the box: {out!r}"
            _, out, _ = await sh(box, "ls -A /var/lib")
            assert set(out.split()) <= {b"dpkg"}
            _, out, _ = await sh(box, "ls -A /")
            top = {n.decode() for n in out.split()}
            assert canary["top"].parent.name not in top
            assert top <= {
                "bin",
                "sbin",
                "lib",
                "lib32",
                "lib64",
                "libx32",
                "usr",
                "etc",
                "var",
                "root",
                "home",
                "srv",
                "mnt",
                "media",
                "run",
                "opt",
                "tmp",
                "proc",
                "dev",
                "sys",
            }, top
            info = await runtime.info()
            assert info.details["image"].startswith("default image: the host's operating")


async def test_etc_has_what_programs_need_and_no_secrets(tmp_path: Path) -> None:
    async with _runtime(tmp_path / "home") as runtime:
        box = await runtime.create(BoxOptions())
        for path in ("/etc/shadow", "/etc/gshadow", "/etc/ssl/private", "/etc/ssh"):
            assert (await sh(box, f"test -e {path}"))[0].exit_code == 1, path
        for path in (
            "/etc/passwd",
            "/etc/group",
            "/etc/hosts",
            "/etc/nsswitch.conf",
            "/etc/ld.so.cache",
            "/etc/ssl/certs",
            "/etc/os-release",
        ):
            assert (await sh(box, f"test -e {path}"))[0].exit_code == 0, path
        _, out, _ = await run(box, "cat", "/etc/passwd")
        rows = [line.split(b":") for line in out.splitlines()]
        assert rows and all(row[1] == b"x" for row in rows)
        assert rows[0][0] == b"root"


async def test_python_and_shell_tools_work(box: BwrapBox) -> None:
    result, out, err = await run(box, "python3", "-c", "print(1)")
    assert (result.exit_code, out) == (0, b"1\n"), err
    result, out, err = await sh(
        box,
        "echo hello | grep -o ell | sed s/e/a/ | awk '{print $1}' && "
        "tar -cf /tmp/t.tar /etc/hosts 2>/dev/null && ls /tmp/t.tar && id -un",
    )
    assert (result.exit_code, out) == (0, b"all\n/tmp/t.tar\nroot\n"), err


async def test_image_include_shows_a_named_host_path(tmp_path: Path) -> None:
    with _canaries() as canary:
        async with _runtime(
            tmp_path / "home", image_include=[str(canary["home"].parent)]
        ) as runtime:
            box = await runtime.create(BoxOptions())
            _, out, _ = await run(box, "cat", str(canary["home"]))
            assert out == b"host data\n"
            assert (await sh(box, f"test -e {canary['top']}"))[0].exit_code == 1
    with pytest.raises(Exception, match="must be an existing absolute host path"):
        BwrapRuntime(home=tmp_path / "home2", image_include=["relative/path"])


def test_the_mask_plan_hides_everything_outside_the_os() -> None:
    entries = {e.path: e.kind for e in hostimage.plan()}
    for path in ("/root", "/home", "/srv", "/var/log"):
        if os.path.isdir(path):
            assert entries[path] == "opaque", path
    assert entries.get("/etc/shadow", "whiteout") == "whiteout"
    assert entries["/etc/passwd"] == "file"
    for path in ("/usr", "/etc/hosts", "/var/lib/dpkg"):
        assert path not in entries  # shown as the host has it
    for name in os.listdir("/"):
        if f"/{name}" not in hostimage.OS_DIRS and f"/{name}" not in hostimage.EMPTY_DIRS:
            assert entries[f"/{name}"] in ("whiteout", "dir"), name


def test_an_allowed_symlink_to_hidden_data_is_shown_as_a_copy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """/etc/resolv.conf -> /run/...: the box gets the file, not a dangling link."""
    token = secrets.token_hex(6)
    target_dir = Path(f"/run/boxlite-canary-{token}")
    link = Path(f"/etc/boxlite-canary-{token}.conf")
    monkeypatch.setattr(hostimage, "ETC_ALLOW", (*hostimage.ETC_ALLOW, link.name))
    try:
        target_dir.mkdir()
        (target_dir / "conf").write_text("nameserver 127.0.0.53\n")
        link.symlink_to(target_dir / "conf")
        entries = {e.path: e for e in hostimage.plan()}
        assert entries[str(link)].kind == "file"
        assert entries[str(link)].content == b"nameserver 127.0.0.53\n"
        assert entries["/run"].kind == "opaque"
    finally:
        with contextlib.suppress(FileNotFoundError):
            link.unlink()
        shutil.rmtree(target_dir, ignore_errors=True)


# -- box ids are not host ids -------------------------------------------------------


async def test_box_root_is_other_to_host_files(tmp_path: Path) -> None:
    """The mapping on its own: host files shown on purpose are still closed."""
    with _canaries() as canary:
        async with _runtime(
            tmp_path / "home", image_include=["/etc/shadow", str(canary["root"])]
        ) as runtime:
            box = await runtime.create(BoxOptions())
            result, out, err = await run(box, "cat", "/etc/shadow")
            assert result.exit_code != 0 and out == b"", out
            assert b"Permission denied" in err
            result, out, err = await run(box, "cat", str(canary["root"]))
            assert result.exit_code != 0 and b"Permission denied" in err
            _, out, _ = await run(box, "cat", "/proc/self/uid_map", "/proc/self/gid_map")
            assert out.split() == [b"0", b"100000", b"65536"] * 2
            # Seen from the host, a box process runs as uid 100000.
            await sh(box, "sleep 30 >/dev/null 2>&1 &")
            state = runtime._states[box.id]
            assert state.sandbox is not None
            pids = state.sandbox.box_pids()
            assert pids
            assert {os.stat(f"/proc/{pid}").st_uid for pid in pids} == {idmap.HOST_BASE}


async def test_box_root_owns_its_own_files(runtime: BwrapRuntime, box: BwrapBox) -> None:
    result, _, err = await sh(
        box,
        "mkdir /app && echo x > /app/f && chown -R 1000:1000 /app && "
        "cd /root && python3 -m venv v && ./v/bin/python -c 'import sys; print(sys.prefix)'",
    )
    assert result.exit_code == 0, err
    upper = await runtime.layer_dir(box.id) / "upper"
    st = os.stat(upper / "app" / "f")
    assert (st.st_uid, st.st_gid) == (idmap.HOST_BASE + 1000, idmap.HOST_BASE + 1000)
    assert os.stat(upper / "root" / "v").st_uid == idmap.HOST_BASE
    _, out, _ = await run(box, "stat", "-c", "%u:%g", "/app/f", "/", "/etc", "/root")
    assert out.split() == [b"1000:1000", b"0:0", b"0:0", b"0:0"]


async def test_copy_in_out_and_export_keep_box_owners(
    runtime: BwrapRuntime, box: BwrapBox, tmp_path: Path
) -> None:
    src = tmp_path / "in.txt"
    src.write_text("in")
    await box.copy_in(src, "/root/in.txt")
    _, out, _ = await run(box, "stat", "-c", "%u:%g", "/root/in.txt")
    assert out == b"0:0\n"
    upper = await runtime.layer_dir(box.id) / "upper"
    assert os.stat(upper / "root" / "in.txt").st_uid == idmap.HOST_BASE
    assert (await sh(box, "echo y > /root/owned && chown 1234:2345 /root/owned"))[0].exit_code == 0
    await box.stop()
    archive = await box.export(tmp_path)
    with tarfile.open(archive) as tar:
        member = tar.getmember("upper/root/owned")
        assert (member.uid, member.gid) == (1234, 2345)
        assert tar.getmember("upper/root/in.txt").uid == 0
    imported = await runtime.import_box(archive, name="imported")
    _, out, _ = await run(imported, "stat", "-c", "%u:%g", "/root/owned", "/root/in.txt")
    assert out.split() == [b"1234:2345", b"0:0"]


async def test_volumes_show_host_owners_to_box_root(runtime: BwrapRuntime, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "host.txt").write_text("from host")
    box = await runtime.create(
        BoxOptions(
            volumes=[
                VolumeSpec(host_path=str(shared), guest_path="/mnt/shared"),
            ]
        )
    )
    result, out, err = await sh(
        box,
        "stat -c %u /mnt/shared/host.txt && echo box > /mnt/shared/box.txt && "
        "cat /mnt/shared/host.txt",
    )
    assert (result.exit_code, out) == (0, b"0\nfrom host"), err
    assert os.stat(shared / "box.txt").st_uid == 0
    assert (shared / "box.txt").read_text() == "box\n"


# -- seccomp ---------------------------------------------------------------------


def test_the_filter_on_its_own_refuses_with_eperm() -> None:
    """A host process started by the filtered thread, outside any box."""

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                sys.executable,
                "-I",
                "-S",
                "-c",
                SYSCALL + "\nimport os\nprint(os.system('unshare -U true 2>/dev/null') != 0)",
                "keyctl",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )

    proc = seccomp.run_filtered(start)
    out, err = proc.communicate(timeout=30)
    assert out.split(b"\n")[:2] == [b"-1 Operation not permitted", b"True"], err
    # The thread that spawns is itself filtered; the rest of the server is not.
    assert b"Seccomp:\t0" in Path("/proc/self/status").read_bytes()


async def test_box_processes_are_filtered(box: BwrapBox) -> None:
    for script in ("unshare -U true", "unshare -Urn true", "unshare -m true"):
        result, _, err = await sh(box, script)
        assert result.exit_code != 0, script
    for name in ("keyctl", "add_key", "request_key", "bpf", "perf_event_open", "userfaultfd"):
        _, out, err = await run(box, "python3", "-c", SYSCALL, name)
        assert out == b"-1 Operation not permitted\n", (name, out, err)
    _, out, _ = await run(box, "python3", "-c", SYSCALL, "clone3")
    assert out == b"-1 Function not implemented\n"  # libc falls back to clone
    # Ordinary work is untouched: threads, fork, a pty.
    result, out, err = await run(
        box,
        "python3",
        "-c",
        "import threading, os, subprocess\n"
        "t = threading.Thread(target=lambda: None); t.start(); t.join()\n"
        "print(subprocess.run(['sh', '-c', 'echo forked'], capture_output=True).stdout)",
    )
    assert (result.exit_code, out) == (0, b"b'forked\\n'\n"), err
    for tty in (False, True):
        _, out, _ = await run(box, "grep", "^Seccomp:", "/proc/self/status", tty=tty)
        assert out.split() == [b"Seccomp:", b"2"], (tty, out)


def test_the_filter_lists_dockers_blocked_calls() -> None:
    program = seccomp.bpf()
    assert program and len(program) % 8 == 0
    for name in (
        "keyctl",
        "add_key",
        "request_key",
        "bpf",
        "perf_event_open",
        "userfaultfd",
        "init_module",
        "finit_module",
        "delete_module",
        "reboot",
        "swapon",
        "swapoff",
        "clock_settime",
        "settimeofday",
        "kexec_load",
        "kexec_file_load",
        "mount",
        "umount2",
        "pivot_root",
        "open_by_handle_at",
    ):
        assert name in seccomp.DENIED, name


# -- the box's disk --------------------------------------------------------------


def _attached(image: Path) -> bool:
    target = str(image.resolve())
    for backing in Path("/sys/block").glob("loop*/loop/backing_file"):
        with contextlib.suppress(OSError):
            if backing.read_text().strip() == target:
                return True
    return False


async def test_a_full_disk_is_enospc_for_the_box_only(runtime: BwrapRuntime) -> None:
    box = await runtime.create(BoxOptions(disk_size_gb=1))
    image = runtime.store.box_dir(box.id) / "disk.img"
    try:
        _, out, _ = await sh(box, "df -k / | tail -1")
        assert 900_000 < int(out.split()[1]) <= 1024 * 1024, out  # a 1 GiB file system
        before = os.statvfs(image.parent)
        result, out, _ = await sh(
            box, "dd if=/dev/zero of=/root/big bs=1M count=1536 conv=fsync 2>&1"
        )
        assert result.exit_code != 0 and b"No space left on device" in out, out
        after = os.statvfs(image.parent)
        dropped = (before.f_bavail - after.f_bavail) * after.f_frsize
        assert dropped < 1.1 * 1024**3, dropped
        # Deleting frees the box's disk again.
        result, out, err = await sh(
            box, "rm /root/big && echo again > /root/small && cat /root/small"
        )
        assert (result.exit_code, out) == (0, b"again\n"), err
    finally:
        await runtime.remove(box.id, force=True)
    assert not image.exists()
    assert not _attached(image)  # the loop device freed itself


async def test_disks_stay_sparse_through_snapshot_clone_export(
    runtime: BwrapRuntime, tmp_path: Path
) -> None:
    box = await runtime.create(BoxOptions(disk_size_gb=2))
    assert (
        await sh(
            box,
            "head -c 3000000 /dev/urandom > /root/data && "
            "chown 7:7 /root/data && md5sum /root/data",
        )
    )[0].exit_code == 0
    _, digest, _ = await run(box, "md5sum", "/root/data")
    await box.stop()
    image = runtime.store.box_dir(box.id) / "disk.img"
    st = os.stat(image)
    assert st.st_size == 2 * 1024**3 and st.st_blocks * 512 < 64 * 1024**2
    await box.snapshot_create("s1")
    assert (await sh(box, "rm /root/data && echo changed > /root/other"))[0].exit_code == 0
    await box.stop()
    clone = await box.clone("twin")
    clone_image = runtime.store.box_dir(clone.id) / "disk.img"
    assert os.stat(clone_image).st_size == 2 * 1024**3
    assert os.stat(clone_image).st_blocks * 512 < 64 * 1024**2
    assert (await run(clone, "cat", "/root/other"))[1] == b"changed\n"
    await box.snapshot_restore("s1")
    assert (await run(box, "md5sum", "/root/data"))[1] == digest
    assert (await run(box, "stat", "-c", "%u:%g", "/root/data"))[1] == b"7:7\n"
    assert (await sh(box, "test -e /root/other"))[0].exit_code == 1
    await box.stop()
    archive = await box.export(tmp_path)
    imported = await runtime.import_box(archive, name="back")
    assert (await run(imported, "md5sum", "/root/data"))[1] == digest
    imported_image = runtime.store.box_dir(imported.id) / "disk.img"
    assert os.stat(imported_image).st_size == 2 * 1024**3  # the archive's disk_size_gb
