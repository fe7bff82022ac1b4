"""The VM probe: the host check, the bounded boot attempt, its cache, the modes."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from boxlite_mcp.runtime.local import probe, sdk


def cpu_has_virtualisation() -> bool:
    flags = next(
        (
            line
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("flags")
        ),
        "",
    )
    return bool({"vmx", "svm"} & set(flags.partition(":")[2].split()))


def test_modes_come_from_the_environment() -> None:
    assert probe.probe_mode({}) == "auto"
    assert probe.probe_mode({probe.PROBE_ENV: " Static "}) == "static"
    for mode in probe.PROBE_MODES:
        assert probe.probe_mode({probe.PROBE_ENV: mode}) == mode
    with pytest.raises(ValueError, match="off"):
        probe.probe_mode({probe.PROBE_ENV: "maybe"})


@pytest.mark.skipif(not Path("/dev/kvm").exists(), reason="no /dev/kvm on this host")
def test_the_host_check_does_not_trust_dev_kvm_alone() -> None:
    verdict = probe.host_check()
    assert verdict.ok is cpu_has_virtualisation()
    if not verdict.ok:
        assert "vmx" in verdict.reason and "svm" in verdict.reason


def test_modes_off_static_and_on() -> None:
    assert not probe.can_boot("off").ok
    assert probe.can_boot("static") == probe.host_check()
    on = probe.can_boot("on")
    assert on.ok is sdk.available()
    assert probe.PROBE_ENV in on.reason


def test_a_boot_attempt_that_overruns_is_killed_and_says_so(tmp_path: Path) -> None:
    cache = tmp_path / "probe.json"
    started = time.monotonic()
    verdict = probe.boot_check(timeout=0.5, fresh=True, cache_file=cache)
    assert time.monotonic() - started < 30
    assert not verdict.ok
    assert "tried booting" in verdict.reason and "killed" in verdict.reason
    saved = json.loads(cache.read_text())
    assert saved["verdict"]["ok"] is False and saved["key"]["sdk"] == sdk.version()


def test_a_cached_verdict_is_reused_only_for_the_same_boot_and_sdk(tmp_path: Path) -> None:
    cache = tmp_path / "probe.json"
    probe.boot_check(timeout=0.5, fresh=True, cache_file=cache)  # writes this boot's key
    saved = json.loads(cache.read_text())
    saved["verdict"] = {"ok": True, "reason": "booted earlier", "cached": False}
    cache.write_text(json.dumps(saved))
    reused = probe.boot_check(cache_file=cache)
    assert reused.ok and reused.cached and "booted earlier" in reused.reason

    saved["key"]["boot_id"] = "another-boot"
    cache.write_text(json.dumps(saved))
    again = probe.boot_check(timeout=0.5, cache_file=cache)
    assert not again.cached and not again.ok  # attempted afresh (and overran)


def test_a_corrupt_cache_is_ignored(tmp_path: Path) -> None:
    cache = tmp_path / "probe.json"
    cache.write_text("{not json")
    verdict = probe.boot_check(timeout=0.5, cache_file=cache)
    assert not verdict.cached


def test_the_default_cache_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert probe.default_cache_file() == tmp_path / "boxlite-mcp" / "vm-probe.json"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert probe.default_cache_file().parent.parent == Path(os.path.expanduser("~/.cache"))
