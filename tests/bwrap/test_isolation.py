"""What separates a bwrap box from other boxes and from the host."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from boxlite_mcp.runtime.bwrap import BwrapRuntime
from boxlite_mcp.runtime.bwrap.box import BwrapBox
from boxlite_mcp.runtime.types import BoxOptions, NetworkSpec

from .conftest import exists, listdir, read_text, run, sh, write_text

pytestmark = pytest.mark.anyio


async def test_boxes_do_not_see_each_others_files(runtime: BwrapRuntime) -> None:
    a, b = await runtime.create(BoxOptions()), await runtime.create(BoxOptions())
    assert (await sh(a, "echo secret > /root/only-a"))[0].exit_code == 0
    result, _, _ = await sh(b, "test -e /root/only-a")
    assert result.exit_code == 1


async def test_box_writes_never_reach_host_files(box: BwrapBox, tmp_path: Path) -> None:
    probe = Path("/etc/boxlite-mcp-isolation-probe")
    assert not exists(probe)
    result, _, err = await sh(box, f"echo x > {probe} && cat {probe} && rm -f /etc/hostname")
    assert result.exit_code == 0, err
    assert not exists(probe)
    assert exists(Path("/etc/hostname"))
    # The host's own OS files keep their host owner: box root may not change them.
    result, _, _ = await sh(box, "echo x > /usr/local/share/boxlite-mcp-isolation-probe")
    assert result.exit_code != 0
    assert not exists(Path("/usr/local/share/boxlite-mcp-isolation-probe"))
    # The host's /tmp (where tmp_path lives) is not the box's /tmp.
    marker = tmp_path / "host-only"
    write_text(marker, "host")
    result, _, _ = await sh(box, f"test -e {marker}")
    assert result.exit_code == 1


async def test_no_network_by_default(box: BwrapBox) -> None:
    _, out, _ = await sh(box, "cat /proc/net/dev")
    interfaces = {line.split(":")[0].strip() for line in out.decode().splitlines()[2:]}
    assert interfaces == {"lo"}
    result, _, _ = await run(
        box,
        "python3",
        "-c",
        "import socket; socket.create_connection(('1.1.1.1', 53), timeout=2)",
    )
    assert result.exit_code != 0


async def test_network_when_enabled_is_never_the_hosts(runtime: BwrapRuntime) -> None:
    box = await runtime.create(BoxOptions(network=NetworkSpec(mode="enabled")))
    _, out, _ = await sh(box, "cat /proc/net/dev; readlink /proc/self/ns/net")
    assert {line.split(":")[0].strip() for line in out.decode().splitlines()[2:-1]} == {"lo"}
    assert out.decode().splitlines()[-1] != os.readlink("/proc/self/ns/net")


async def test_hostname_defaults_to_the_id(box: BwrapBox) -> None:
    _, out, _ = await run(box, "hostname")
    assert out.decode().strip() == box.id


async def test_own_pid_namespace(box: BwrapBox) -> None:
    _, out, _ = await sh(box, "ls /proc | grep -c '^[0-9]'")
    assert int(out) < 10  # the box's PID 1, the shell, ls, grep
    result, _, _ = await sh(
        box, f"test -e /proc/{os.getpid()}/cmdline && grep -q pytest /proc/{os.getpid()}/cmdline"
    )
    assert result.exit_code != 0


async def test_box_root_is_confined_to_the_box(box: BwrapBox) -> None:
    """Root in the box owns its files but has no power over the host.

    Probes are harmless even if they succeeded: they write back the values the
    host already has.
    """
    _, out, _ = await run(box, "id", "-u")
    assert out == b"0\n"
    swappiness = read_text(Path("/proc/sys/vm/swappiness")).strip()
    core_pattern = read_text(Path("/proc/sys/kernel/core_pattern")).strip()
    for script in (
        f"echo {swappiness} > /proc/sys/vm/swappiness",
        f"echo '{core_pattern}' > /proc/sys/kernel/core_pattern",
        "mount -o remount,rw /proc/sys",
        "umount /proc/sys",
        "mknod /root/disk b 8 0",
        "mount -t tmpfs scratch /mnt",
        "ls /proc/1/root/",
        "unshare -Urmpf sh -c 'mount -t proc proc /mnt'",
    ):
        result, _, _ = await sh(box, script + " 2>/dev/null")
        assert result.exit_code != 0, script
    # Device nodes are the box's own: changing one leaves the host's alone.
    host_mode = os.stat("/dev/null").st_mode
    assert (await sh(box, "chmod 600 /dev/null"))[0].exit_code == 0
    assert os.stat("/dev/null").st_mode == host_mode
    # Box root owns the box's /etc (the default image's mask): it can replace a host
    # file there (in its own layer), but not write to the host's file in place.
    assert (await sh(box, "echo x >> /etc/hosts 2>/dev/null"))[0].exit_code != 0
    assert (
        await sh(
            box,
            "cp /etc/hosts /etc/hosts.new && echo x >> /etc/hosts.new && "
            "mv /etc/hosts.new /etc/hosts && chown 33:33 /etc/hosts && "
            'test "$(stat -c %u:%g /etc/hosts)" = 33:33',
        )
    )[0].exit_code == 0


async def test_planted_symlinks_do_not_lead_copies_to_the_host(
    box: BwrapBox, tmp_path: Path
) -> None:
    host_dir = tmp_path / "host-target"
    host_dir.mkdir()
    src = tmp_path / "payload.txt"
    src.write_text("payload")
    depth = "../" * 12
    assert (
        await sh(
            box,
            f"mkdir -p /root/trap && ln -s {host_dir} /root/trap/abs && "
            f"ln -s {depth}{str(host_dir).lstrip('/')} /root/trap/rel",
        )
    )[0].exit_code == 0
    await box.copy_in(src, "/root/trap/abs/")
    await box.copy_in(src, "/root/trap/rel/")
    await box.copy_in(src, "/root/trap/abs/renamed.txt")
    assert listdir(host_dir) == []
    # The copies landed in the box's own view of that path.
    _, out, _ = await sh(box, f"ls {host_dir}")
    assert out.split() == [b"payload.txt", b"renamed.txt"]

    secret = tmp_path / "host-secret.txt"
    secret.write_text("host secret")
    assert (await sh(box, f"ln -sf {secret} /root/trap/leak"))[0].exit_code == 0
    dest = tmp_path / "out"
    with pytest.raises(Exception):  # noqa: B017 - the box's target does not exist
        await box.copy_out("/root/trap/leak", dest)
    assert not dest.exists()


async def test_volumes_read_write_and_read_only(runtime: BwrapRuntime, tmp_path: Path) -> None:
    from boxlite_mcp.runtime.types import VolumeSpec

    shared, locked = tmp_path / "shared", tmp_path / "locked"
    shared.mkdir()
    locked.mkdir()
    write_text(locked / "ro.txt", "read only")
    box = await runtime.create(
        BoxOptions(
            volumes=[
                VolumeSpec(host_path=str(shared), guest_path="/mnt/shared"),
                VolumeSpec(host_path=str(locked), guest_path="/mnt/locked", read_only=True),
            ]
        )
    )
    assert (await sh(box, "echo from-box > /mnt/shared/out.txt"))[0].exit_code == 0
    assert read_text(shared / "out.txt") == "from-box\n"
    assert (await sh(box, "cat /mnt/locked/ro.txt"))[1] == b"read only"
    for script in ("echo x > /mnt/locked/new.txt", "mount -o remount,rw /mnt/locked"):
        assert (await sh(box, script + " 2>/dev/null"))[0].exit_code != 0, script
    assert listdir(locked) == ["ro.txt"]


async def test_network_allow_list_outside_the_operators_is_refused(
    runtime: BwrapRuntime,
) -> None:
    from boxlite_mcp.runtime.errors import InvalidArgumentError

    with pytest.raises(InvalidArgumentError, match=r"'10\.0\.0\.0/8'.*outside"):
        await runtime.create(
            BoxOptions(network=NetworkSpec(mode="enabled", allow_net=["pypi.org", "10.0.0.0/8"]))
        )
    assert await runtime.list() == []


async def test_loader_variables_reach_only_the_box(box: BwrapBox, tmp_path: Path) -> None:
    """LD_PRELOAD & co. must never be honoured by the runtime's host-side helpers."""
    host_only = tmp_path / "evil.so"
    write_text(host_only, "not an ELF file")  # exists on the host, not in the box
    result, out, err = await run(
        box,
        "sh",
        "-c",
        'echo "$LD_LIBRARY_PATH|$GCONV_PATH|$KEEP"',
        env={
            "LD_PRELOAD": str(host_only),
            "LD_LIBRARY_PATH": "/opt/lib",
            "GCONV_PATH": "/opt/gconv",
            "KEEP": "plain",
        },
    )
    assert result.exit_code == 0
    assert out == b"/opt/lib|/opt/gconv|plain\n"
    assert b"ELF" not in err and b"too short" not in err  # no host helper loaded it
