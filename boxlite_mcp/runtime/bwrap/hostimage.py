"""The default image: the host's operating system, without the host's data.

A box on the default image must see the host's programs, libraries,
certificates and the ``/etc`` files programs need, and none of the host's user
or service data (homes, ``/root``, ``/srv``, ``/var`` data, the server's working
directory, whatever else the operator keeps outside the OS directories).

How: the host's ``/`` stays the overlay's bottom layer, and a *mask layer* sits
on top of it (``lowerdir=mask:/``). The mask holds only overlayfs metadata:

- a whiteout (a 0/0 character device) for every path the box must not see;
- an empty *opaque* directory (``trusted.overlay.opaque=y``) where the box gets
  the directory but none of its content (``/root``, ``/home``, ``/var/log``...);
- a generated file where the host's must be filtered (``/etc/passwd`` and
  ``/etc/group`` without password fields);
- plain directories, with the host directory's owner and mode, on the way to
  deeper entries.

So nothing is copied (the box reads the host's live ``/usr``), the box still
writes anywhere through its own upper layer, and a masked path is gone for the
kernel, not merely covered by a mount box root could look beneath. The rules
are an allowlist: a top-level directory, ``/etc`` entry or ``/var/lib`` entry
not named here is hidden, so data the operator puts somewhere new stays out.
``--image-include PATH`` (``BOXLITE_MCP_IMAGE_INCLUDE``) adds paths back.

The mask is shown to the box with the box's ids (``idmap``): box root owns the
box's ``/``, ``/etc``, ``/root``..., while the host's files beneath keep their
host owners. It lives on a detached tmpfs (see ``Mask``) and is rebuilt when the
host's layout changes: the directories it walked are checked at each box start
(a few ``stat`` calls), and the plan is redone and compared by hash when one
changed.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import stat
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .mountapi import detached_tmpfs
from .syscall import write_all

ALLOW, EMPTY, DENY, REPLACE = "allow", "empty", "deny", "replace"

#: Top-level directories of the OS: programs and libraries.
OS_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
#: Directories a box gets empty (they exist on every Linux, programs expect them).
EMPTY_DIRS = (
    "/root",
    "/home",
    "/srv",
    "/mnt",
    "/media",
    "/run",
    "/opt",
    "/tmp",
    "/proc",
    "/dev",
    "/sys",
    "/var",
    "/var/tmp",
    "/var/log",
    "/var/cache",
    "/var/spool",
    "/var/mail",
    "/var/backups",
    "/var/local",
    "/var/opt",
    "/var/lib",
)
#: OS metadata under /var the package manager needs.
VAR_ALLOW = ("/var/lib/dpkg",)
#: /etc entries programs need (fnmatch patterns on the name); everything else is hidden.
ETC_ALLOW = (
    "adduser.conf",
    "alternatives",
    "apt",
    "bash.bashrc",
    "bash_completion*",
    "bindresvport.blacklist",
    "ca-certificates*",
    "debconf.conf",
    "debian_version",
    "default",
    "deluser.conf",
    "dpkg",
    "environment",
    "ethertypes",
    "fonts",
    "gai.conf",
    "host.conf",
    "hostname",
    "hosts",
    "inputrc",
    "issue",
    "issue.net",
    "ld.so.*",
    "locale.*",
    "localtime",
    "login.defs",
    "lsb-release",
    "magic*",
    "mailcap",
    "mime.types",
    "mke2fs.conf",
    "mtab",
    "nanorc",
    "netconfig",
    "networks",
    "nsswitch.conf",
    "os-release",
    "pam.conf",
    "pam.d",
    "perl",
    "profile",
    "profile.d",
    "protocols",
    "python3*",
    "resolv.conf",
    "rpc",
    "security",
    "selinux",
    "services",
    "shells",
    "skel",
    "ssl",
    "terminfo",
    "timezone",
    "ucf.conf",
    "vim",
    "wgetrc",
    "xattr.conf",
    "xdg",
)
#: Generated from the host's, password fields blanked ('x': "see the shadow file",
#: which the box does not have).
ETC_REPLACE = ("/etc/passwd", "/etc/group")
#: Never shown, even under an allowed directory.
ALWAYS_DENY = ("/etc/ssl/private", "/etc/security/opasswd")
OPAQUE_XATTR = "trusted.overlay.opaque"
#: Largest file copied into the mask (a symlink's hidden target, see ``_hidden_target``).
MAX_COPY = 1024 * 1024
INCLUDE_ENV = "BOXLITE_MCP_IMAGE_INCLUDE"
DESCRIPTION = (
    "default image: the host's operating system only ({dirs}, /var/lib/dpkg and the /etc "
    "files programs need, passwd/group without password fields); /root, /home, /srv, "
    "/mnt, /media, /run, /opt and /var are empty and every other host path is absent{extra}"
)


@dataclass(frozen=True)
class Entry:
    """One mask entry: what to put at ``path`` (host metadata copied for dirs)."""

    path: str
    kind: str  # "dir" | "opaque" | "whiteout" | "file"
    mode: int = 0o755
    uid: int = 0
    gid: int = 0
    content: bytes = b""


def includes_from_env() -> list[str]:
    """Paths named by ``BOXLITE_MCP_IMAGE_INCLUDE`` (``os.pathsep``-separated)."""
    raw = os.environ.get(INCLUDE_ENV, "")
    return [p for p in raw.split(os.pathsep) if p.strip()]


def describe(includes: Sequence[str]) -> str:
    extra = f"; also shown, as the operator asked: {', '.join(includes)}" if includes else ""
    return DESCRIPTION.format(dirs=", ".join(OS_DIRS[:4]), extra=extra)


def _rules(includes: Sequence[str], hidden: Sequence[str]) -> dict[str, str]:
    rules: dict[str, str] = {d: ALLOW for d in OS_DIRS}
    rules.update({d: EMPTY for d in EMPTY_DIRS})
    rules.update({d: ALLOW for d in VAR_ALLOW})
    rules.update({p: REPLACE for p in ETC_REPLACE})
    rules["/etc"] = DENY
    try:
        names = os.listdir("/etc")
    except OSError:
        names = []
    for name in names:
        if any(fnmatch.fnmatchcase(name, pat) for pat in ETC_ALLOW):
            rules.setdefault(f"/etc/{name}", ALLOW)
    for path in includes:
        rules[os.path.normpath(path)] = ALLOW
    # A path to hide needs a rule only where it would otherwise show.
    for path in (*ALWAYS_DENY, *hidden):
        if path != "/" and _action(path, rules) == ALLOW:
            rules[path] = DENY
    return rules


def _action(path: str, rules: dict[str, str]) -> str:
    """The rule of ``path`` itself, else what it inherits (ALLOW only from an ALLOW)."""
    if path in rules:
        return rules[path]
    parent = os.path.dirname(path)
    while parent != "/":
        if parent in rules:
            return ALLOW if rules[parent] == ALLOW else DENY
        parent = os.path.dirname(parent)
    return DENY


def _walk_needed(path: str, action: str, rules: dict[str, str]) -> bool:
    """Whether a directory needs entries of its own in the mask (rules below it that
    change what the box would otherwise see there)."""
    prefix = path.rstrip("/") + "/"
    below = [rules[r] for r in rules if r.startswith(prefix)]
    if not below:
        return False
    return action != ALLOW or any(a != ALLOW for a in below)


def _meta(st: os.stat_result) -> tuple[int, int, int]:
    return stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid


def _blank_passwords(data: bytes) -> bytes:
    out: list[bytes] = []
    for line in data.splitlines():
        fields = line.split(b":")
        if len(fields) >= 3 and not line.startswith(b"#"):
            fields[1] = b"x"
            out.append(b":".join(fields))
    return b"\n".join(out) + b"\n"


def plan(includes: Sequence[str] = (), hidden: Sequence[str] = ()) -> list[Entry]:
    """The mask's entries for the host as it is now."""
    rules = _rules(includes, hidden)
    entries: list[Entry] = []

    def walk(directory: str) -> None:
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            return
        for name in names:
            path = os.path.join(directory, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            action = _action(path, rules)
            mode, uid, gid = _meta(st)
            if stat.S_ISDIR(st.st_mode) and _walk_needed(path, action, rules):
                entries.append(Entry(path, "dir", mode, uid, gid))
                walk(path)
            elif action == ALLOW:
                content = _hidden_target(path, st, rules)
                if content is not None:
                    entries.append(Entry(path, "file", 0o644, 0, 0, content))
            elif action == EMPTY and stat.S_ISDIR(st.st_mode):
                entries.append(Entry(path, "opaque", mode, uid, gid))
            elif action == REPLACE and stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    content = _blank_passwords(f.read(4 * 1024 * 1024))
                entries.append(Entry(path, "file", mode, uid, gid, content))
            else:
                entries.append(Entry(path, "whiteout"))

    walk("/")
    return entries


def _hidden_target(path: str, st: os.stat_result, rules: dict[str, str]) -> bytes | None:
    """The content of an allowed symlink whose target the box cannot see (e.g.
    ``/etc/resolv.conf -> /run/systemd/resolve/stub-resolv.conf``), to show a copy."""
    if not stat.S_ISLNK(st.st_mode):
        return None
    real = os.path.realpath(path)
    if _action(real, rules) == ALLOW or not os.path.isfile(real):
        return None
    try:
        with open(real, "rb") as f:
            data = f.read(MAX_COPY + 1)
    except OSError:
        return None
    return data if len(data) <= MAX_COPY else None


def _digest(entries: Iterable[Entry]) -> str:
    h = hashlib.sha256()
    for e in entries:
        h.update(json.dumps([e.path, e.kind, e.mode, e.uid, e.gid]).encode())
        h.update(hashlib.sha256(e.content).digest())
    return h.hexdigest()[:16]


class Mask:
    """The current mask, kept by the runtime as a detached tmpfs (see ``mountapi``).

    A detached tmpfs because overlayfs refuses a lower layer inside another one
    (the mask cannot live under the host's ``/``), and one that no host path
    reaches, so nothing on the host can change it under a running box. It is
    rebuilt when the host's layout changes; boxes running on the old one keep it
    (their overlay holds a reference) until they stop.
    """

    def __init__(self, includes: Sequence[str] = (), hidden: Sequence[str] = ()) -> None:
        self.includes = list(includes)
        self.hidden = list(hidden)
        self._lock = threading.Lock()
        self._digest = ""
        self._fd = -1
        self._watched: list[tuple[str, bool]] = []
        self._stamp: list[tuple[int, ...] | None] = []

    def fd(self) -> int:
        """A new fd of the mask for the host as it is now; the caller closes it.

        The plan (a few ms) is redone only when a directory it walked, or a file
        it generated from, changed (a directory's mtime moves when an entry is
        added, removed or renamed in it): a few ``stat`` calls per box start.
        """
        with self._lock:
            if self._fd >= 0 and _stamp(self._watched) == self._stamp:
                return os.dup(self._fd)
            entries = plan(self.includes, self.hidden)
            digest = _digest(entries)
            # An opaque directory's content does not matter (``/tmp`` changes all the time).
            watched = [
                ("/", True),
                *((p, True) for p in self.includes),
                *((e.path, e.kind != "opaque") for e in entries if e.kind != "whiteout"),
            ]
            if digest != self._digest or self._fd < 0:
                fresh = _build(entries)
                if self._fd >= 0:
                    os.close(self._fd)
                self._fd, self._digest = fresh, digest
            self._watched, self._stamp = watched, _stamp(watched)
            return os.dup(self._fd)

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1


def _stamp(paths: Sequence[tuple[str, bool]]) -> list[tuple[int, ...] | None]:
    """What identifies each (path, whether its content matters) as it is now."""
    stamps: list[tuple[int, ...] | None] = []
    for path, content in paths:
        try:
            st = os.stat(path)  # a copied symlink target's changes count too
        except OSError:
            stamps.append(None)
            continue
        times = (st.st_mtime_ns, st.st_ctime_ns) if content else ()
        stamps.append((st.st_ino, st.st_mode, st.st_uid, st.st_gid, *times))
    return stamps


def _build(entries: Sequence[Entry]) -> int:
    root = detached_tmpfs()
    dirs: dict[str, int] = {"/": root}
    try:
        for e in entries:
            parent = dirs[os.path.dirname(e.path)]
            name = os.path.basename(e.path)
            if e.kind == "whiteout":
                os.mknod(name, stat.S_IFCHR | 0o000, os.makedev(0, 0), dir_fd=parent)
                continue
            if e.kind == "file":
                fd = os.open(
                    name,
                    os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW,
                    0o600,
                    dir_fd=parent,
                )
                try:
                    write_all(fd, e.content)
                    os.fchown(fd, e.uid, e.gid)
                    os.fchmod(fd, e.mode)
                finally:
                    os.close(fd)
                continue
            os.mkdir(name, 0o700, dir_fd=parent)
            fd = os.open(
                name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent
            )
            dirs[e.path] = fd
            if e.kind == "opaque":
                os.setxattr(fd, OPAQUE_XATTR, b"y")
            os.fchown(fd, e.uid, e.gid)
            os.fchmod(fd, e.mode)
    except BaseException:
        os.close(root)
        raise
    finally:
        for path, fd in dirs.items():
            if path != "/":
                os.close(fd)
    return root
