"""The seccomp filter on every process of a bwrap box, modelled on Docker's default.

Box root holds capabilities in its own user namespace, so the kernel lets it
reach code paths an unprivileged user never reaches; most kernel exploits of the
last years came through such doors (nested user namespaces, keyrings, BPF,
perf, userfaultfd, io_uring). Docker's default profile (moby
``profiles/seccomp/default.json``) is the best-known answer and the anchor here:
the calls it refuses to a container without extra capabilities are refused to
a box, with EPERM (not a kill), so programs see "not permitted" and carry on.

Differences from Docker, and why:

- a denylist with default-allow, where Docker allowlists: a box runs whatever
  the agent installs, and an unknown new syscall should not break it; every
  syscall Docker blocks *for a reason* (its documentation's table) is listed;
- ``setns`` is allowed: the runtime's own ``nsenter`` runs under the filter
  (it is applied before the exec joins the box), and box root can setns into
  nothing, since every namespace of the box but its user namespace belongs to
  the host's user namespace;
- ``personality`` is not narrowed (it needs a "not one of" test per value).

``clone``/``unshare`` with any namespace flag fail with EPERM (no nested user
namespace, the main point); ``clone3`` fails with ENOSYS, as in Docker, because
its flags sit in memory a filter cannot read, and libc then falls back to
``clone``.

The filter is built with libseccomp (through ``pyseccomp``, a ctypes binding:
no compiler needed at install, unlike libseccomp's own Cython bindings, which
are not on PyPI) and exported as classic BPF once per process. bubblewrap
applies it to the box's PID 1 (``--seccomp FD``); every exec is started by a
thread that carries the filter (``run_filtered``), so it holds before the exec
joins the box.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import errno
import functools
import os
import platform
import threading
from collections.abc import Callable
from typing import TypeVar

import pyseccomp

from ..errors import UnavailableError

#: Refused with EPERM: Docker's list of syscalls blocked by its default profile.
DENIED = (
    "acct",
    "add_key",
    "bpf",
    "clock_adjtime",
    "clock_settime",
    "create_module",
    "delete_module",
    "fanotify_init",
    "finit_module",
    "fsconfig",
    "fsmount",
    "fsopen",
    "fspick",
    "get_kernel_syms",
    "get_mempolicy",
    "init_module",
    "io_uring_enter",
    "io_uring_register",
    "io_uring_setup",
    "ioperm",
    "iopl",
    "kcmp",
    "kexec_file_load",
    "kexec_load",
    "keyctl",
    "lookup_dcookie",
    "mbind",
    "migrate_pages",
    "mount",
    "mount_setattr",
    "move_mount",
    "move_pages",
    "name_to_handle_at",
    "nfsservctl",
    "open_by_handle_at",
    "open_tree",
    "perf_event_open",
    "pivot_root",
    "query_module",
    "quotactl",
    "quotactl_fd",
    "reboot",
    "request_key",
    "set_mempolicy",
    "settimeofday",
    "stime",
    "swapoff",
    "swapon",
    "_sysctl",
    "sysfs",
    "syslog",
    "umount",
    "umount2",
    "uselib",
    "userfaultfd",
    "ustat",
    "vhangup",
    "vm86",
    "vm86old",
)
#: Namespace flags refused to clone/unshare (CLONE_NEWTIME, NEWNS, NEWCGROUP, NEWUTS,
#: NEWIPC, NEWUSER, NEWPID, NEWNET).
NAMESPACE_FLAGS = (
    0x80,
    0x20000,
    0x02000000,
    0x04000000,
    0x08000000,
    0x10000000,
    0x20000000,
    0x40000000,
)
_EXTRA_ARCHES = {
    "x86_64": (pyseccomp.Arch.X86, pyseccomp.Arch.X32),
    "aarch64": (pyseccomp.Arch.ARM,),
}
T = TypeVar("T")
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2


def _filter() -> pyseccomp.SyscallFilter:
    f = pyseccomp.SyscallFilter(pyseccomp.ALLOW)
    for arch in _EXTRA_ARCHES.get(platform.machine(), ()):
        try:
            f.add_arch(arch)
        except OSError:  # this libseccomp cannot; the native arch is still filtered
            pass
    f.set_attr(pyseccomp.Attr.ACT_BADARCH, pyseccomp.ERRNO(errno.EPERM))
    eperm = pyseccomp.ERRNO(errno.EPERM)
    for name in DENIED:
        try:
            f.add_rule(eperm, name)
        except (OSError, ValueError):  # unknown to every arch of this libseccomp
            pass
    for name in ("unshare", "clone"):
        for flag in NAMESPACE_FLAGS:
            # clone's flags are argument 0 on x86-64 and arm64 (and on s390 argument 1).
            f.add_rule(eperm, name, pyseccomp.Arg(0, pyseccomp.MASKED_EQ, flag, flag))
    try:
        f.add_rule(pyseccomp.ERRNO(errno.ENOSYS), "clone3")
    except (OSError, ValueError):
        pass
    return f


@functools.lru_cache(maxsize=1)
def bpf() -> bytes:
    """The filter as a classic BPF program (``struct sock_filter[]``)."""
    try:
        fd = os.memfd_create("boxlite-seccomp", os.MFD_CLOEXEC)
    except OSError as exc:  # pragma: no cover - memfd exists since Linux 3.17
        raise UnavailableError(f"cannot build the box's seccomp filter: {exc}") from exc
    try:
        with os.fdopen(os.dup(fd), "wb") as f:
            try:
                _filter().export_bpf(f)
            except OSError as exc:
                raise UnavailableError(
                    f"cannot build the box's seccomp filter with libseccomp: {exc}; "
                    "install libseccomp2 (Debian/Ubuntu: apt-get install libseccomp2)"
                ) from exc
        size = os.lseek(fd, 0, os.SEEK_END)
        return os.pread(fd, size, 0)
    finally:
        os.close(fd)


def memfd() -> int:
    """A file holding the filter, at offset 0, for bubblewrap's ``--seccomp FD``."""
    fd = os.memfd_create("boxlite-seccomp", os.MFD_CLOEXEC)
    os.write(fd, bpf())
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


class _Fprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _install() -> None:
    """Install the filter on the calling thread (and so on its future children).

    The caller is host root (CAP_SYS_ADMIN), so no ``no_new_privs`` is needed:
    set-uid programs in the box keep working.
    """
    program = bpf()
    buffer = ctypes.create_string_buffer(program, len(program))
    prog = _Fprog(len(program) // 8, ctypes.addressof(buffer))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) != 0:
        err = ctypes.get_errno()
        raise UnavailableError(f"cannot install the box's seccomp filter: {os.strerror(err)}")


class _Spawner:
    """One thread of the runtime, itself under the filter, that starts every exec.

    A seccomp filter belongs to a thread and is inherited by the processes it
    forks, so processes this thread starts are filtered from their first
    instruction, before they join the box. Filtering in the child instead
    (``preexec_fn``) would force a full ``fork`` of the server with Python code
    run in the child: measured at +20-30 ms per exec, where this costs a thread hop.
    """

    def __init__(self) -> None:
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=1,
            thread_name_prefix="boxlite-seccomp",
            initializer=_install,
        )

    def run(self, fn: Callable[[], T]) -> T:
        try:
            return self._pool.submit(fn).result()
        except concurrent.futures.BrokenExecutor as exc:  # _install failed
            raise UnavailableError(
                "cannot install the box's seccomp filter; boxes cannot run without it"
            ) from exc


_spawner: _Spawner | None = None
_spawner_lock = threading.Lock()


def run_filtered(fn: Callable[[], T]) -> T:
    """Run ``fn`` (which starts a process) on the filtered thread; its result."""
    global _spawner
    with _spawner_lock:
        if _spawner is None:
            _spawner = _Spawner()
    return _spawner.run(fn)
