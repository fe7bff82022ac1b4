"""The local runtime on real BoxLite micro-VMs, where this host can boot one.

Whether it can is decided by an actual bounded attempt (``probe.boot_check``:
a probe VM booted in a killable subprocess, the verdict cached for this boot),
not by ``/dev/kvm`` existing. Where no VM boots, every test here is skipped
with the probe's account of what was tried and what happened.

Boxes boot from an OCI layout built in a temporary directory from this host's
own programs (``oci.host_rootfs``): nothing is pulled. The checks mirror the
contract suite's, with ``/bin/sh`` instead of Python (which the tiny rootfs lacks).
"""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from boxlite_mcp.runtime import errors
from boxlite_mcp.runtime.base import Box
from boxlite_mcp.runtime.local import LocalRuntime, probe
from boxlite_mcp.runtime.local.oci import build_layout, host_rootfs
from boxlite_mcp.runtime.types import BoxOptions, BoxStatus, ExecRequest, ExecResult

pytestmark = [pytest.mark.realvm, pytest.mark.anyio]

DEADLINE = 120.0


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def vm_host() -> probe.Verdict:
    verdict = probe.boot_check()
    if not verdict.ok:
        pytest.skip(f"no BoxLite micro-VM boots on this host: {verdict.reason}")
    return verdict


@pytest.fixture(scope="module")
def layout(vm_host: probe.Verdict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    scratch = tmp_path_factory.mktemp("vm-image")
    return build_layout(host_rootfs(scratch / "rootfs"), scratch / "layout")


@pytest.fixture(scope="module")
async def runtime(
    vm_host: probe.Verdict, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[LocalRuntime]:
    rt = LocalRuntime.embedded(tmp_path_factory.mktemp("vm-home"))
    yield rt
    await rt.aclose()


@pytest.fixture
async def box(runtime: LocalRuntime, layout: Path) -> AsyncIterator[Box]:
    made = await runtime.create(BoxOptions(rootfs_path=str(layout)))
    yield made
    with anyio.fail_after(DEADLINE):
        await runtime.remove(made.id, force=True)


async def sh(
    box: Box, script: str, stdin: bytes | None = None, **fields: object
) -> tuple[bytes, bytes, ExecResult]:
    with anyio.fail_after(DEADLINE):
        execution = await box.exec(ExecRequest(command="/bin/sh", args=["-c", script], **fields))  # type: ignore[arg-type]
        if stdin is not None:
            await execution.write_stdin(stdin)
        await execution.close_stdin()
        out, err = bytearray(), bytearray()
        async for chunk in execution.output():
            (out if chunk.stream == "stdout" else err).extend(chunk.data)
        return bytes(out), bytes(err), await execution.wait()


async def test_exec_runs_in_the_vm(box: Box) -> None:
    out, err, result = await sh(box, "echo out; echo err >&2; uname -s; exit 3")
    assert (out, err, result.exit_code) == (b"out\nLinux\n", b"err\n", 3)
    assert (await box.info()).status is BoxStatus.RUNNING


async def test_env_working_dir_and_stdin(box: Box) -> None:
    out, _, result = await sh(
        box,
        'printf "%s|%s|" "$A" "$(pwd)"; cat',
        stdin=b"in put",
        env={"A": "a b"},
        working_dir="/root",
    )
    assert result.exit_code == 0 and out == b"a b|/root|in put"


async def test_output_arrives_while_the_process_runs(box: Box) -> None:
    with anyio.fail_after(DEADLINE):
        execution = await box.exec(
            ExecRequest(command="/bin/sh", args=["-c", "echo first; read line; echo second"])
        )
        stream = execution.output()
        first = await stream.__anext__()
        assert first.data == b"first\n"  # before the process could finish
        await execution.write_stdin(b"go\n")
        await execution.close_stdin()
        assert b"".join([chunk.data async for chunk in stream]) == b"second\n"
        assert (await execution.wait()).exit_code == 0


async def test_signals_kill_and_timeout(box: Box) -> None:
    _, _, result = await sh(box, "kill -TERM $$")
    assert result.exit_code == -signal.SIGTERM
    with anyio.fail_after(DEADLINE):
        execution = await box.exec(
            ExecRequest(command="/bin/sh", args=["-c", "echo up; exec sleep 1000"])
        )
        await execution.kill()
        assert (await execution.wait()).exit_code != 0
        timed = await box.exec(ExecRequest(command="sleep", args=["1000"], timeout_seconds=1))
        result = await timed.wait()
    assert result.timed_out and result.exit_code != 0


async def test_tty_and_resize(box: Box) -> None:
    with anyio.fail_after(DEADLINE):
        plain = await box.exec(ExecRequest(command="true"))
        with pytest.raises(errors.InvalidStateError):
            await plain.resize(80, 24)
        await plain.wait()
        execution = await box.exec(
            ExecRequest(command="/bin/sh", tty=True, args=["-c", "test -t 1 && echo tty"])
        )
        await execution.resize(100, 30)
        out = b"".join([chunk.data async for chunk in execution.output()])
        await execution.wait()
    assert b"tty" in out


async def test_files_in_and_out(box: Box, tmp_path: Path) -> None:
    source = tmp_path / "src"
    (source / "sub").mkdir(parents=True)
    (source / "sub" / "a.txt").write_text("alpha")
    (source / "top.bin").write_bytes(os.urandom(4096))
    with anyio.fail_after(DEADLINE):
        await box.copy_in(source, "/root/copied")
        out, _, _ = await sh(box, "cat /root/copied/sub/a.txt")
        assert out == b"alpha"
        back = tmp_path / "back"
        await box.copy_out("/root/copied", back)
    assert (back / "sub" / "a.txt").read_text() == "alpha"
    assert (back / "top.bin").read_bytes() == (source / "top.bin").read_bytes()


async def test_stop_start_snapshot_clone_export_import(
    runtime: LocalRuntime,
    box: Box,
    tmp_path: Path,
) -> None:
    with anyio.fail_after(DEADLINE * 3):
        await sh(box, "echo v1 > /root/state")
        await box.stop()
        assert (await box.info()).status is BoxStatus.STOPPED
        await box.snapshot_create("v1")
        assert [s.name for s in await box.snapshot_list()] == ["v1"]
        await sh(box, "echo v2 > /root/state")
        await box.stop()
        await box.snapshot_restore("v1")
        assert (await sh(box, "cat /root/state"))[0] == b"v1\n"
        await box.stop()
        clone = await box.clone()
        archive = await box.export(tmp_path)
        imported = await runtime.import_box(archive)
        try:
            for other in (clone, imported):
                assert (await sh(other, "cat /root/state"))[0] == b"v1\n"
        finally:
            for other in (clone, imported):
                await runtime.remove(other.id, force=True)


async def test_metrics_report_boot_timing(box: Box) -> None:
    await sh(box, "true")
    metrics = await box.metrics()
    assert metrics.commands_executed_total >= 1
    assert metrics.total_create_ms is not None or metrics.guest_boot_ms is not None
