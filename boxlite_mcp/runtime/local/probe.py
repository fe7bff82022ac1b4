"""Can this host boot a BoxLite micro-VM? A quick static check, then a real attempt.

``/dev/kvm`` existing proves little: under some nested-virtualisation emulators
the device answers every ioctl and the guest kernel still dies during boot. So
the answer comes in two steps:

1. ``host_check()`` (milliseconds): the SDK imports; on Linux ``/dev/kvm`` opens
   read-write, speaks KVM API 12, creates a VM, and the CPU advertises ``vmx`` or
   ``svm``; on macOS the machine is Apple Silicon with ``kern.hv_support``.
2. ``boot_check()`` (seconds, cached): boot a real box in a subprocess from an
   OCI layout built from this host's own programs (nothing is pulled), run
   ``echo`` in it, with a hard timeout. The subprocess and its process group are
   killed on timeout, so a hung or crashing VM cannot take the caller down. The
   verdict is cached per (SDK version, kernel, boot) in
   ``$XDG_CACHE_HOME/boxlite-mcp/vm-probe.json``.

``BOXLITE_MCP_LOCAL_PROBE`` chooses how ``--runtime auto`` uses them:

- ``auto`` (default): step 1, then step 2 from the cache or fresh;
- ``static``: step 1 only (trust the host; for hosts known to be good);
- ``fresh``: step 1, then step 2 ignoring the cache;
- ``on``: no checks: choose ``local`` whenever the SDK is installed (for hosts
  known to boot VMs that the checks misjudge);
- ``off``: never choose ``local`` automatically (``--runtime local`` still works).

Run ``python -m boxlite_mcp.runtime.local.probe [--boot] [--fresh]`` to see both
verdicts and why (``--boot`` tries a boot even when the host check fails;
``--fresh`` ignores the cache).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Literal

from . import sdk

PROBE_ENV = "BOXLITE_MCP_LOCAL_PROBE"
ProbeMode = Literal["auto", "static", "fresh", "on", "off"]
PROBE_MODES: tuple[ProbeMode, ...] = ("auto", "static", "fresh", "on", "off")

#: How long a boot attempt may take, image preparation included.
BOOT_TIMEOUT_SECONDS = 90.0
#: What the probe box prints when it ran.
_MARKER = "boxlite-probe-ok"

#: Fixes ``boxlite-mcp doctor`` shows for a failed check (see ``Verdict.fix``).
SDK_FIX = "pip install 'boxlite-mcp[local]'"
KVM_MODULE_FIX = (
    "modprobe kvm_intel  (kvm_amd on AMD; with VT-x/AMD-V on in the firmware, "
    "or nested virtualisation on for this VM)"
)
NO_HARDWARE_FIX = (
    "none on this machine: micro-VMs need a CPU with hardware virtualisation "
    "(bare-metal Linux, a VM type with nested virtualisation, or an Apple "
    "Silicon Mac); use the bwrap or rest runtime here"
)
BOOT_FIX = "python -m boxlite_mcp.runtime.local.probe --boot --fresh  (shows why it failed)"

_KVM_GET_API_VERSION = 0xAE00
_KVM_CREATE_VM = 0xAE01
_KVM_API_VERSION = 12


@dataclass(frozen=True)
class Verdict:
    """Whether VMs can boot here, and a sentence saying what was tried and seen."""

    ok: bool
    reason: str
    cached: bool = False
    #: When not ok: the one command (or action) that would fix it, for ``boxlite-mcp doctor``.
    fix: str = ""


def probe_mode(environ: dict[str, str] | None = None) -> ProbeMode:
    """The ``BOXLITE_MCP_LOCAL_PROBE`` setting; ValueError naming the choices if unknown."""
    raw = (os.environ if environ is None else environ).get(PROBE_ENV, "auto").strip().lower()
    for mode in PROBE_MODES:
        if raw == mode:
            return mode
    raise ValueError(f"{PROBE_ENV}={raw!r} is not one of {', '.join(PROBE_MODES)}")


def host_check() -> Verdict:
    """Step 1: the SDK and the host's virtualisation, without booting anything."""
    if not sdk.available():
        return Verdict(
            False, "the boxlite SDK is not installed (" + sdk.INSTALL_HINT + ")", fix=SDK_FIX
        )
    system = platform.system()
    if system == "Linux":
        return _linux_check()
    if system == "Darwin":
        return _macos_check()
    return Verdict(
        False,
        f"BoxLite micro-VMs run on Linux (KVM) and macOS; this is {system}",
        fix=NO_HARDWARE_FIX,
    )


def boot_check(
    *, timeout: float = BOOT_TIMEOUT_SECONDS, fresh: bool = False, cache_file: Path | None = None
) -> Verdict:
    """Step 2: boot a box for real (or reuse this boot's cached verdict)."""
    cache_file = cache_file or default_cache_file()
    key = _cache_key()
    if not fresh:
        cached = _read_cache(cache_file, key)
        if cached is not None:
            return cached
    verdict = _attempt_boot(timeout)
    _write_cache(cache_file, key, verdict)
    return verdict


def can_boot(
    mode: ProbeMode, *, timeout: float = BOOT_TIMEOUT_SECONDS, cache_file: Path | None = None
) -> Verdict:
    """The verdict ``--runtime auto`` acts on, per ``mode`` (see the module docstring)."""
    if mode == "off":
        return Verdict(
            False,
            f"{PROBE_ENV}=off: the local runtime is never chosen automatically",
            fix=f"unset {PROBE_ENV}",
        )
    if mode == "on":
        if not sdk.available():
            return Verdict(
                False, "the boxlite SDK is not installed (" + sdk.INSTALL_HINT + ")", fix=SDK_FIX
            )
        return Verdict(True, f"{PROBE_ENV}=on: the host is trusted to boot micro-VMs unchecked")
    static = host_check()
    if not static.ok or mode == "static":
        return static
    booted = boot_check(timeout=timeout, fresh=mode == "fresh", cache_file=cache_file)
    if booted.ok:
        return Verdict(True, f"{static.reason}, and {booted.reason}", booted.cached)
    return replace(booted, fix=BOOT_FIX)


def default_cache_file() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "boxlite-mcp" / "vm-probe.json"


# -- step 1 ----------------------------------------------------------------------------


def _linux_check() -> Verdict:
    kvm = kvm_check()
    if not kvm.ok:
        return kvm
    cpu = cpu_check()
    if not cpu.ok:
        return cpu
    return Verdict(True, f"{kvm.reason} and {cpu.reason}")


def kvm_check(device: Path = Path("/dev/kvm")) -> Verdict:
    """``/dev/kvm`` opens read-write, speaks KVM API 12 and creates a VM."""
    if not device.exists():
        return Verdict(
            False,
            f"{device} does not exist (no KVM: hardware virtualisation is off "
            "or not exposed to this machine)",
            fix=KVM_MODULE_FIX,
        )
    try:
        fd = os.open(device, os.O_RDWR | os.O_CLOEXEC)
    except OSError as exc:
        return Verdict(
            False,
            f"{device} exists but cannot be opened read-write ({exc.strerror}); "
            "add this user to the kvm group",
            fix='usermod -aG kvm "$USER"  (then log in again)',
        )
    try:
        version = fcntl.ioctl(fd, _KVM_GET_API_VERSION)
        if version != _KVM_API_VERSION:
            return Verdict(
                False,
                f"{device} speaks KVM API {version}, not {_KVM_API_VERSION}",
                fix=KVM_MODULE_FIX,
            )
        vm_fd = fcntl.ioctl(fd, _KVM_CREATE_VM, 0)
        os.close(vm_fd)
    except OSError as exc:
        return Verdict(
            False, f"{device} opened but creating a VM failed ({exc.strerror})", fix=KVM_MODULE_FIX
        )
    finally:
        os.close(fd)
    return Verdict(True, f"{device} is usable")


def cpu_check(cpuinfo: Path = Path("/proc/cpuinfo")) -> Verdict:
    """The CPU advertises hardware virtualisation (``vmx`` or ``svm``)."""
    flags = _cpu_flags(cpuinfo) & {"vmx", "svm"}
    if not flags:
        return Verdict(
            False,
            "the CPU advertises neither vmx nor svm (hardware virtualisation): a /dev/kvm "
            "here is emulated or nested KVM, where BoxLite guests do not boot",
            fix=NO_HARDWARE_FIX,
        )
    return Verdict(True, "the CPU has " + "/".join(sorted(flags)))


def _cpu_flags(cpuinfo: Path) -> set[str]:
    try:
        text = cpuinfo.read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return set()


def _macos_check() -> Verdict:
    if platform.machine() != "arm64":
        return Verdict(
            False,
            f"BoxLite on macOS needs Apple Silicon; this Mac is {platform.machine()}",
            fix=NO_HARDWARE_FIX,
        )
    try:
        out = subprocess.run(
            ["sysctl", "-n", "kern.hv_support"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        out = ""
    if out != "1":
        return Verdict(
            False,
            "Hypervisor.framework is not available (kern.hv_support != 1)",
            fix=NO_HARDWARE_FIX,
        )
    return Verdict(True, "Apple Silicon with Hypervisor.framework")


# -- step 2 ----------------------------------------------------------------------------


def _attempt_boot(timeout: float) -> Verdict:
    """Boot in a subprocess (own process group), killed after ``timeout`` seconds."""
    started = time.monotonic()
    what = (
        f"tried booting a BoxLite {sdk.version() or ''} micro-VM from a host-built OCI "
        f"layout (timeout {timeout:.0f} s)"
    )
    with tempfile.TemporaryDirectory(prefix="boxlite-probe-") as scratch:
        command = [sys.executable, "-m", "boxlite_mcp.runtime.local.probe", "--child", scratch]
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            text=True,
        )
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(process)
            diagnostic = _diagnostics(Path(scratch))
            return Verdict(
                False,
                f"{what}: no answer after {timeout:.0f} s, so it was killed"
                + (f" ({diagnostic})" if diagnostic else ""),
            )
        finally:
            _kill_group(process)
        elapsed = time.monotonic() - started
        try:
            report = json.loads(out.strip().splitlines()[-1])
        except (IndexError, ValueError):
            tail = " ".join(err.split())[-300:]
            return Verdict(
                False,
                f"{what}: the probe process exited {process.returncode} "
                f"without a verdict ({tail or 'no output'})",
            )
        if report.get("ok"):
            return Verdict(True, f"a probe VM booted and ran a command in {elapsed:.1f} s")
        diagnostic = report.get("diagnostic") or ""
        error = str(report.get("error") or "failed").rstrip(". ")
        return Verdict(
            False,
            f"{what}: {error}, after {elapsed:.0f} s" + (f" ({diagnostic})" if diagnostic else ""),
        )


def _kill_group(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _diagnostics(scratch: Path) -> str:
    """The telling lines BoxLite left behind: the shim's errors, the console's tail."""
    lines: list[str] = []
    for shim_log in sorted(scratch.glob("home/boxes/*/shim.stderr")):
        for line in shim_log.read_text(errors="replace").splitlines():
            if "ERROR" in line or "KVM" in line or "panic" in line.lower():
                lines.append(line.split("]", 1)[-1].strip() if "]" in line else line.strip())
    for console in sorted(scratch.glob("home/boxes/*/logs/console.log")):
        tail = [
            line.strip()
            for line in console.read_text(errors="replace").splitlines()
            if line.strip()
        ][-2:]
        lines.extend(f"console: {line}" for line in tail)
    text = "; ".join(dict.fromkeys(lines))
    return text[-400:]


async def _child(scratch: Path) -> dict[str, object]:
    """In the subprocess: boot a box from a host-built layout and run one command."""
    from ..errors import BoxliteError
    from ..types import BoxOptions, ExecRequest
    from .oci import build_layout, host_rootfs
    from .runtime import LocalRuntime

    layout = build_layout(host_rootfs(scratch / "rootfs"), scratch / "layout")
    runtime = LocalRuntime.embedded(scratch / "home")
    report: dict[str, object]
    try:
        box = await runtime.create(BoxOptions(rootfs_path=str(layout)))
        execution = await box.exec(ExecRequest(command="/bin/sh", args=["-c", f"echo {_MARKER}"]))
        output = b"".join([chunk.data async for chunk in execution.output()])
        result = await execution.wait()
        if result.exit_code == 0 and _MARKER.encode() in output:
            await runtime.remove(box.id, force=True)
            return {"ok": True}
        report = {
            "ok": False,
            "error": f"the probe command exited {result.exit_code} with {output[:200]!r}",
        }
    except BoxliteError as exc:
        report = {"ok": False, "error": exc.message.split(";")[0]}
    except Exception as exc:  # the verdict must come out whatever happened
        report = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    finally:
        # Read BoxLite's traces before closing the runtime tidies the failed box away.
        diagnostic = _diagnostics(scratch)
        await runtime.aclose()
    report["diagnostic"] = diagnostic
    return report


def _run_child(scratch: Path) -> int:
    import anyio  # here, not at the top: only the probe's child process runs an event loop

    try:
        report = anyio.run(_child, scratch)  # the asyncio backend, which the SDK needs
    except Exception as exc:  # setting up failed (no sh to build from, home unusable)
        report = {
            "ok": False,
            "error": f"{type(exc).__name__}: {exc}",
            "diagnostic": _diagnostics(scratch),
        }
    print(json.dumps(report), flush=True)
    return 0


# -- cache -----------------------------------------------------------------------------


def _cache_key() -> dict[str, str]:
    boot_id = ""
    with contextlib.suppress(OSError):
        boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    return {
        "sdk": sdk.version() or "",
        "kernel": platform.release(),
        "machine": platform.machine(),
        "boot_id": boot_id,
        "python": sys.executable,
    }


def _read_cache(cache_file: Path, key: dict[str, str]) -> Verdict | None:
    try:
        data = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("key") != key:
        return None
    verdict = data.get("verdict")
    if not isinstance(verdict, dict) or not isinstance(verdict.get("ok"), bool):
        return None
    reason = str(verdict.get("reason", ""))
    return Verdict(verdict["ok"], f"{reason} [cached from {data.get('when', 'earlier')}]", True)


def _write_cache(cache_file: Path, key: dict[str, str], verdict: Verdict) -> None:
    with contextlib.suppress(OSError):
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        temporary = cache_file.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(
            json.dumps(
                {
                    "key": key,
                    "when": time.strftime("%Y-%m-%d %H:%M:%S"),
                    "verdict": asdict(verdict),
                }
            )
        )
        os.replace(temporary, cache_file)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--child"] and len(args) == 2:
        return _run_child(Path(args[1]))
    static = host_check()
    print(("host check passed: " if static.ok else "host check failed: ") + static.reason)
    if not static.ok and "--boot" not in args:
        print("(pass --boot to try booting a VM anyway)")
        return 1
    booted = boot_check(fresh="--fresh" in args)
    print(("boot check passed: " if booted.ok else "boot check failed: ") + booted.reason)
    return 0 if static.ok and booted.ok else 1


if __name__ == "__main__":
    sys.exit(main())
