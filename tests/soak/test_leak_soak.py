"""The fast variant of ``python -m tools.leak_soak``: 40 vanishing clients of five kinds.

Each kind's clients create boxes, run commands (one leaves a background process in
its box), and every third leaves a long ``sleep`` running or an ``exec_run`` of one
in flight; then they vanish (killed, or just silent). After the TTL, one reap
interval and a margin, the box records, the host's processes, mounts and cgroups,
and a ``BwrapRuntime`` on each home (once its server is gone) are checked.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from tools.benchlib.procs import REPO
from tools.leak_soak.soak import KINDS, SoakResult, run_soak, split


@pytest.fixture(scope="module")
def soak(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SoakResult]:
    root = tmp_path_factory.mktemp("leak-soak")
    yield anyio.run(lambda: run_soak(clients=40, ttl=4.0, reap_interval=0.3, margin=6.0, root=root))


def test_split_gives_every_kind_its_share() -> None:
    assert split(200) == {
        "stdio-killed": 50,
        "http-legacy-dropped": 50,
        "http-modern-dropped": 50,
        "stdio-silent": 25,
        "http-legacy-silent": 25,
    }
    assert sum(split(7).values()) == 7


def test_every_client_did_its_work(soak: SoakResult) -> None:
    assert [k.spec.name for k in soak.kinds] == [k.name for k in KINDS]
    for kind in soak.kinds:
        assert kind.errors == [] and kind.ok == kind.clients, kind.spec.name
        assert len(kind.boxes) >= kind.clients and kind.jobs and kind.inflight, kind.spec.name
    protocols = {p for k in soak.kinds for p in k.protocols}
    assert {"2025-11-25", "2026-07-28"} <= protocols


def test_killed_stdio_clients_leave_nothing(soak: SoakResult) -> None:
    """EOF ends the server, which removes every box, busy or not, and exits."""
    killed = next(k for k in soak.kinds if k.spec.name == "stdio-killed")
    assert not killed.leaked, (killed.left, killed.processes, killed.servers)
    assert killed.cleared_after is not None


def test_idle_boxes_of_vanished_clients_are_gone_after_the_ttl(soak: SoakResult) -> None:
    """Every box that was not running a command is gone from all four witnesses."""
    for kind in soak.kinds:
        busy = kind.jobs | kind.inflight
        assert set(kind.left) - busy == set(), kind.spec.name
        assert set(kind.runtime_left) <= busy, kind.spec.name
        assert {Path(c).name for c in kind.cgroups} <= busy, kind.spec.name
        assert {p.box for p in kind.processes} <= busy, kind.spec.name
        assert kind.servers == [], kind.spec.name


def test_a_job_left_running_does_not_keep_its_box(soak: SoakResult) -> None:
    """A command started with exec_start and left alone: its box is reaped at the TTL.

    Found by the leak soak; fixed by 1bc0019 (only an attending request keeps a box).
    """
    for kind in soak.kinds:
        assert set(kind.left) & kind.jobs == set(), kind.spec.name


def test_a_silent_client_keeps_only_the_boxes_it_waits_on(soak: SoakResult) -> None:
    """A client still connected and waiting on an exec_run attends its box: not a leak."""
    for kind in soak.kinds:
        if kind.spec.vanish == "silent":
            assert not kind.leaked, kind.unexpected()


def test_nothing_is_left_that_no_runtime_knows_about(soak: SoakResult) -> None:
    """Servers SIGKILLed, a runtime on each home removed what it listed: the host is clean."""
    after = soak.at_the_end
    assert after.clean and after.servers == [], after.summary()


def test_killed_clients_leave_nothing_after_the_ttl(soak: SoakResult) -> None:
    """Even a legacy HTTP client killed with an exec_run in flight: the SDK serves that
    request on, but it attends its box only while its client can hear it.

    Found by the leak soak; fixed by ``response_heard`` (server/sdk.py), which the
    registry asks each reap round (``Registry.in_use``).
    """
    for kind in soak.kinds:
        if kind.spec.vanish == "kill":
            assert not kind.leaked, (kind.spec.name, kind.unexpected())


def test_the_command_prints_its_table() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tools.leak_soak",
            "--clients",
            "3",
            "--ttl",
            "1",
            "--margin",
            "4",
            "--long-every",
            "0",
            "--inflight-every",
            "0",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "| kind | clients (ok) | boxes created |" in done.stdout
    assert "| **total** | 3 (3) |" in done.stdout and "PASSED: nothing left" in done.stdout
