"""The fast variant of ``tools/leak_soak.py``: 40 vanishing clients of five kinds.

Each kind's clients create boxes, run commands (one leaves a background process in
its box), and every third leaves a long ``sleep`` running or an ``exec_run`` of one
in flight; then they vanish (killed, or just silent). After the TTL, one reap
interval and a margin, the box records, the host's processes, mounts and cgroups,
and a ``BwrapRuntime`` on each home are checked.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from tools.benchlib.procs import REPO
from tools.soaklib.soak import KINDS, SoakResult, run_soak, split


@pytest.fixture(scope="module")
def soak(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SoakResult]:
    root = tmp_path_factory.mktemp("leak-soak")
    yield anyio.run(lambda: run_soak(clients=40, ttl=4.0, reap_interval=0.3, margin=6.0,
                                     root=root))


def test_split_gives_every_kind_its_share() -> None:
    assert split(200) == {"stdio-killed": 50, "http-legacy-dropped": 50,
                          "http-modern-dropped": 50, "stdio-silent": 25,
                          "http-legacy-silent": 25}
    assert sum(split(7).values()) == 7


def test_every_client_did_its_work(soak: SoakResult) -> None:
    assert [k.spec.name for k in soak.kinds] == [k.name for k in KINDS]
    for kind in soak.kinds:
        assert kind.errors == [] and kind.ok == kind.clients, kind.spec.name
        assert len(kind.boxes) >= kind.clients and kind.busy, kind.spec.name
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
        idle_left = set(kind.left) - kind.busy
        assert idle_left == set(), kind.spec.name
        assert set(kind.runtime_left) <= kind.busy, kind.spec.name
        assert {Path(c).name for c in kind.cgroups} <= kind.busy, kind.spec.name
        assert kind.servers == [], kind.spec.name


def test_nothing_is_left_once_everything_stopped(soak: SoakResult) -> None:
    after = soak.after_shutdown
    assert after.clean and after.servers == [], after.summary()


@pytest.mark.xfail(strict=True, reason=(
    "boxlite_mcp/registry.py Registry.reap_idle skips a box while an execution runs in it "
    "(is_busy), and nothing else ends that execution when its client vanished without "
    "a session end (dropped HTTP session, 2026-07-28 client, silent client): the box, its "
    "processes and cgroups stay until the execution's own timeout (up to "
    "exec_max_timeout_seconds, 1 h). Fix: count idleness from the owner's last request "
    "about the box or its executions (exec_read/exec_write/exec_signal touch the box) and "
    "reap past the TTL even while a command runs, killing it; or cap how long a running "
    "execution may keep an untouched box alive."))
def test_busy_boxes_of_vanished_clients_are_removed_after_the_ttl(soak: SoakResult) -> None:
    for kind in soak.kinds:
        assert kind.left == [] and kind.processes == [], kind.spec.name


def test_the_command_prints_its_table() -> None:
    done = subprocess.run(
        [sys.executable, "tools/leak_soak.py", "--clients", "3", "--ttl", "1", "--margin", "4",
         "--long-every", "0", "--inflight-every", "0"],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "| kind | clients (ok) | boxes created |" in done.stdout
    assert "| **total** | 3 (3) |" in done.stdout and "PASSED: nothing left" in done.stdout
