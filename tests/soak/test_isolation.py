"""The isolation probe in full (``python -m tools.isolation_probe``): B never reaches A's things.

Both scenarios (bearer tokens; two handshake-era sessions without auth) over real
streamable HTTP. Every surface must give B nothing: a success is a breach. The last
two tests pin what the probe found and the fixes closed.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from tools.isolation_probe.isolation import KINDS, ProbeResult, run_probe

OWNER_SCOPED = [k for k in KINDS if k not in ("inside a box", "host roots")]


@pytest.fixture(scope="module")
def probe() -> Iterator[ProbeResult]:
    # Not under /tmp: boxes see /tmp as their own tmpfs, the default home is elsewhere.
    root = Path(tempfile.mkdtemp(prefix="boxlite-isolation-", dir="/var/tmp"))
    try:
        yield anyio.run(run_probe, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_both_scenarios_ran_every_attack(probe: ProbeResult) -> None:
    assert [s.name for s in probe.scenarios] == ["bearer", "sessions"]
    assert probe.scenarios[0].attackers == ["B legacy session", "B 2026-07-28"]
    for scenario in probe.scenarios:
        kinds = {a.kind for a in scenario.attempts}
        assert kinds == set(KINDS), scenario.name
    assert sum(len(s.attempts) for s in probe.scenarios) > 600


@pytest.mark.parametrize("kind", OWNER_SCOPED)
def test_no_attempt_succeeds(probe: ProbeResult, kind: str) -> None:
    for scenario in probe.scenarios:
        wins = [(a.attack, a.detail) for a in scenario.successes(kind)]
        assert wins == [], scenario.name


def test_errors_for_real_and_random_references_are_identical(probe: ProbeResult) -> None:
    for scenario in probe.scenarios:
        oracles = [a for a in scenario.attempts if a.kind == "error oracles"]
        assert len(oracles) >= 80 and all(a.detail == "identical" for a in oracles)


def test_no_box_reaches_another_owners_files_or_secrets(probe: ProbeResult) -> None:
    """Found by this probe: boxes on the host image read the runtime home (other boxes'
    layers and snapshots) and the tokens file; fixed by hiding both (bwrap/hide.py,
    384f730, d904819)."""
    for scenario in probe.scenarios:
        assert scenario.successes("inside a box") == [], scenario.name


def test_inside_attacks_aim_where_a_files_really_are(probe: ProbeResult) -> None:
    """Since issue 10 a box's layer is a disk image mounted detached, so the old
    ``home/boxes/<id>/upper`` paths hold nothing and missing them proves nothing: B's
    attacks also aim at A's images, loop devices, the server's mount fds and A's
    sandbox processes, each located and confirmed on the host first."""
    for scenario in probe.scenarios:
        where = scenario.where
        assert where is not None and all(where.checked.values()), (scenario.name, where)
        inside = [a.attack for a in scenario.attempts if a.kind == "inside a box"]
        for target in (
            *where.images,
            *where.loops,
            *where.server_fds,
            *(f"/proc/{pid}/ns/mnt" for pid in where.sandbox_pids),
        ):
            assert any(target in attack for attack in inside), (scenario.name, target)


def test_host_roots_are_not_shared_between_owners(probe: ProbeResult) -> None:
    """Found by this probe; fixed by a private directory per owner (boxlite_mcp/paths.py)."""
    for scenario in probe.scenarios:
        assert scenario.successes("host roots") == [], scenario.name
