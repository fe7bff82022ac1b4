"""The seccomp filter (``seccomp``) on its own, outside any box: a fresh Python
process installs it and makes each call; the same calls unfiltered show that the
EPERM comes from the filter, not from the kernel refusing the arguments.

Every call gets -1 for each argument (a bad pointer, fd, flag or pid), so one
that a broken filter lets through fails harmlessly in the kernel; the probe runs
in its own session (no controlling terminal for ``vhangup``).
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys

import pyseccomp
import pytest

from boxlite_mcp.runtime.bwrap import seccomp

PROBE = """
import ctypes, json, sys
from boxlite_mcp.runtime.bwrap import seccomp
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
if sys.argv[1] == "filtered":
    seccomp._install()
out = {}
for name, nr, args in json.loads(sys.argv[2]):
    ctypes.set_errno(0)
    rc = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])
    out[name] = 0 if rc >= 0 else ctypes.get_errno()
print(json.dumps(out))
"""
#: Written out here, not read from ``seccomp``, so a wrong value there is caught.
NAMESPACE_FLAGS = {
    "CLONE_NEWTIME": 0x80,
    "CLONE_NEWNS": 0x20000,
    "CLONE_NEWCGROUP": 0x02000000,
    "CLONE_NEWUTS": 0x04000000,
    "CLONE_NEWIPC": 0x08000000,
    "CLONE_NEWUSER": 0x10000000,
    "CLONE_NEWPID": 0x20000000,
    "CLONE_NEWNET": 0x40000000,
}
CLONE_SIGHAND = 0x800  # without CLONE_VM the kernel refuses clone with EINVAL
SIGCHLD = 17


def _nr(name: str) -> int | None:
    try:
        nr = pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, name)
    except (OSError, ValueError):
        return None
    return nr if nr >= 0 else None


def probe(calls: list[tuple[str, int, list[int]]], filtered: bool) -> dict[str, int]:
    """errno of each call (0: it succeeded) in a fresh process, filtered or not."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE, "filtered" if filtered else "plain", json.dumps(calls)],
        capture_output=True,
        text=True,
        timeout=60,
        start_new_session=True,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
        check=True,
    )
    out: dict[str, int] = json.loads(result.stdout)
    return out


def test_every_denied_call_fails_with_eperm_from_the_filter() -> None:
    calls = [(n, nr, [-1] * 6) for n in seccomp.DENIED if (nr := _nr(n)) is not None]
    assert len(calls) > 40  # this libseccomp knows most of them on this arch
    filtered, plain = probe(calls, True), probe(calls, False)
    native_eperm = sorted(n for n, e in plain.items() if e == errno.EPERM)
    wrong = {n: os.strerror(e) for n, e in filtered.items() if e != errno.EPERM}
    assert wrong == {}, f"not refused by the filter: {wrong}"
    # The kernel itself refuses these few with EPERM for -1 arguments; all others
    # show the filter at work.
    assert len(native_eperm) < len(calls) // 4, native_eperm


@pytest.mark.parametrize("flag", NAMESPACE_FLAGS.values(), ids=NAMESPACE_FLAGS.keys())
def test_each_namespace_flag_is_refused_to_unshare_and_clone(flag: int) -> None:
    calls = [
        ("unshare", _nr("unshare") or -1, [flag]),
        ("clone", _nr("clone") or -1, [flag | CLONE_SIGHAND | SIGCHLD, 0, 0, 0, 0]),
    ]
    filtered, plain = probe(calls, True), probe(calls, False)
    assert filtered == {"unshare": errno.EPERM, "clone": errno.EPERM}
    assert plain["clone"] == errno.EINVAL  # the filter, not the kernel, said EPERM
    assert plain["unshare"] != errno.EPERM


def test_clone3_is_enosys_so_libc_falls_back_to_clone() -> None:
    calls = [("clone3", _nr("clone3") or 435, [-1, -1])]
    assert probe(calls, True) == {"clone3": errno.ENOSYS}
    assert probe(calls, False)["clone3"] != errno.ENOSYS


def test_ordinary_calls_and_flagless_unshare_still_work() -> None:
    calls = [
        ("getpid", _nr("getpid") or -1, []),
        ("unshare", _nr("unshare") or -1, [0]),
        ("setns", _nr("setns") or -1, [-1, 0]),  # allowed: the kernel says EBADF
    ]
    assert probe(calls, True) == {"getpid": 0, "unshare": 0, "setns": errno.EBADF}


def test_memfd_holds_the_exported_program_at_offset_zero() -> None:
    fd = seccomp.memfd()
    try:
        program = os.read(fd, 1 << 20)
    finally:
        os.close(fd)
    assert program == seccomp.bpf() and len(program) % 8 == 0 and program


def test_run_filtered_starts_processes_under_the_filter() -> None:
    """What the spawner thread starts cannot make a user namespace; the same
    command started normally can (so the refusal is the filter's)."""
    cmd = ["unshare", "--user", "true"]

    def start() -> int:
        return subprocess.run(cmd, capture_output=True, check=False).returncode

    assert start() == 0
    assert seccomp.run_filtered(start) != 0
    assert start() == 0  # the caller's own thread stays unfiltered
