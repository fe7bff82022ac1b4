"""``--runtime auto`` and the explicit choices, in real environments.

Each branch runs for real: a BoxLite server on 127.0.0.1 for ``rest``, bubblewrap
for ``bwrap``, the SDK's embedded runtime for ``local``; the "nothing works"
branch runs in a user namespace where this process is not root (so bwrap cannot
work) on this host whose KVM cannot boot guests.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from boxlite_mcp.app.select import SelectedRuntime, open_runtime
from boxlite_mcp.runtime import errors
from boxlite_mcp.runtime.bwrap import BwrapRuntime
from boxlite_mcp.runtime.local import LocalRuntime, probe, sdk
from boxlite_mcp.runtime.rest import RestRuntime
from boxlite_mcp.settings import Settings
from tools.boxlite_server import RunningServer, ServerConfig, serve

pytestmark = pytest.mark.anyio

API_KEY = "blk_test_select-key"
HOST_BOOTS_VMS = probe.host_check().ok
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    backend = BwrapRuntime(home=tmp_path / "server-home")
    try:
        config = ServerConfig(generation="0.10", api_key=SecretStr(API_KEY))
        async with serve(backend, config) as running:
            yield running
    finally:
        await backend.aclose()


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in (
        "BOXLITE_REST_URL",
        "BOXLITE_API_KEY",
        "BOXLITE_REST_API",
        "BOXLITE_REST_PATH_PREFIX",
        "BOXLITE_REST_CLIENT_ID",
        "BOXLITE_REST_CLIENT_SECRET",
        probe.PROBE_ENV,
    ):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


async def opened(settings: Settings) -> SelectedRuntime:
    selected = await open_runtime(settings)
    await selected.runtime.list()  # it works, not just constructs
    return selected


async def test_auto_picks_rest_when_the_url_is_in_the_environment(
    server: RunningServer,
    clean_env: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    clean_env.setenv("BOXLITE_REST_URL", server.url)
    clean_env.setenv("BOXLITE_API_KEY", API_KEY)
    selected = await opened(Settings(home=tmp_path / "home"))
    try:
        assert selected.kind == "rest" and isinstance(selected.runtime, RestRuntime)
        assert "BOXLITE_REST_URL" in selected.reason and server.url in selected.reason
        assert API_KEY not in selected.reason
    finally:
        await selected.runtime.aclose()


async def test_auto_picks_rest_for_a_url_setting(
    server: RunningServer,
    clean_env: pytest.MonkeyPatch,
) -> None:
    clean_env.setenv("BOXLITE_API_KEY", API_KEY)
    selected = await opened(Settings(url=server.url))
    try:
        assert selected.kind == "rest"
        assert "--url" in selected.reason
    finally:
        await selected.runtime.aclose()


async def test_explicit_rest_needs_a_url(clean_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(errors.InvalidArgumentError, match="BOXLITE_REST_URL"):
        await open_runtime(Settings(runtime="rest"))


async def test_explicit_rest_with_a_bad_url_says_so(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("BOXLITE_REST_URL", "not-a-url")
    with pytest.raises(errors.InvalidArgumentError, match="http"):
        await open_runtime(Settings(runtime="rest"))


@pytest.mark.skipif(HOST_BOOTS_VMS, reason="this host passes the VM host check")
async def test_auto_falls_back_to_bwrap_where_no_vm_boots(
    clean_env: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    selected = await opened(Settings(home=tmp_path / "home"))
    try:
        assert selected.kind == "bwrap" and isinstance(selected.runtime, BwrapRuntime)
        assert probe.host_check().reason in selected.reason  # why not local
        assert "weaker isolation" in selected.reason  # what bwrap gives
    finally:
        await selected.runtime.aclose()


async def test_probe_off_never_picks_local(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean_env.setenv(probe.PROBE_ENV, "off")
    selected = await opened(Settings(home=tmp_path / "home"))
    try:
        assert selected.kind == "bwrap"
        assert f"{probe.PROBE_ENV}=off" in selected.reason
    finally:
        await selected.runtime.aclose()


async def test_probe_on_picks_local_without_checks(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    clean_env.setenv(probe.PROBE_ENV, "on")
    selected = await opened(Settings(home=tmp_path / "home"))
    try:
        assert selected.kind == "local" and isinstance(selected.runtime, LocalRuntime)
        assert "SDK is installed" in selected.reason
        assert (await selected.runtime.info()).details["home"] == str(tmp_path / "home")
    finally:
        await selected.runtime.aclose()


async def test_an_unknown_probe_mode_lists_the_choices(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv(probe.PROBE_ENV, "sometimes")
    with pytest.raises(errors.InvalidArgumentError) as caught:
        await open_runtime(Settings())
    for mode in probe.PROBE_MODES:
        assert mode in caught.value.message


async def test_a_url_wins_over_everything_under_auto(
    server: RunningServer,
    clean_env: pytest.MonkeyPatch,
) -> None:
    clean_env.setenv(probe.PROBE_ENV, "on")
    clean_env.setenv("BOXLITE_API_KEY", API_KEY)
    selected = await opened(Settings(url=server.url))
    try:
        assert selected.kind == "rest"
    finally:
        await selected.runtime.aclose()


async def test_explicit_bwrap(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    selected = await opened(Settings(runtime="bwrap", home=tmp_path / "home"))
    try:
        assert selected.kind == "bwrap"
        assert "asked for" in selected.reason and "weaker isolation" in selected.reason
    finally:
        await selected.runtime.aclose()


async def test_servers_sharing_the_default_home_take_free_slots(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Two agents on one machine, both on the default home: the second is not refused."""
    clean_env.delenv("BOXLITE_HOME", raising=False)
    clean_env.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    first = await opened(Settings(runtime="bwrap"))
    second = await opened(Settings(runtime="bwrap"))
    try:
        default = tmp_path / "xdg" / "boxlite-mcp"
        assert first.runtime.home == default  # type: ignore[attr-defined]
        assert second.runtime.home == default / "instances" / "1"  # type: ignore[attr-defined]
    finally:
        await second.runtime.aclose()
        await first.runtime.aclose()
    # An explicit home in use is refused, not silently moved.
    held = await opened(Settings(runtime="bwrap", home=tmp_path / "mine"))
    try:
        with pytest.raises(errors.UnavailableError, match="is using the home"):
            await open_runtime(Settings(runtime="bwrap", home=tmp_path / "mine"))
    finally:
        await held.runtime.aclose()


async def test_explicit_local_opens_and_notes_a_failed_host_check(
    clean_env: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    selected = await opened(Settings(runtime="local", home=tmp_path / "home"))
    try:
        assert selected.kind == "local" and isinstance(selected.runtime, LocalRuntime)
        assert "asked for" in selected.reason
        check = probe.host_check()
        assert check.reason in selected.reason
        assert ("may fail to start" in selected.reason) is (not check.ok)
    finally:
        await selected.runtime.aclose()


async def test_explicit_local_without_the_sdk_says_how_to_install_it(
    clean_env: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    clean_env.setitem(sys.modules, "boxlite", None)  # what Python does for a missing module
    sdk.load.cache_clear()
    try:
        with pytest.raises(errors.UnsupportedError) as caught:
            await open_runtime(Settings(runtime="local", home=tmp_path / "home"))
        assert "boxlite-mcp[local]" in caught.value.message
        assert not probe.host_check().ok  # and auto would not pick local
        clean_env.setenv(probe.PROBE_ENV, "on")
        selected = await opened(Settings(home=tmp_path / "home"))
        await selected.runtime.aclose()
        assert selected.kind == "bwrap" and "not installed" in selected.reason
    finally:
        sdk.load.cache_clear()


def test_with_nothing_available_the_error_lists_the_ways_out(tmp_path: Path) -> None:
    """In a user namespace this process is not root, so bwrap cannot work here either.

    The server's startup error then names every way out, ``boxlite-mcp doctor`` among them.
    """
    if HOST_BOOTS_VMS:
        pytest.skip("this host passes the VM host check; local would be chosen")
    program = (
        "import json, anyio\n"
        "from boxlite_mcp.settings import Settings\n"
        "from boxlite_mcp.app.select import open_runtime\n"
        "from boxlite_mcp.runtime.errors import BoxliteError\n"
        "try:\n"
        f"    anyio.run(open_runtime, Settings(home={str(tmp_path / 'home')!r}))\n"
        "    print(json.dumps({'opened': True}))\n"
        "except BoxliteError as exc:\n"
        "    print(json.dumps({'kind': exc.kind, 'message': exc.message}))\n"
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        ["unshare", "--user", sys.executable, "-c", program],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    if done.returncode != 0 and "unshare" in done.stderr:
        pytest.skip(f"cannot make a user namespace here: {done.stderr.strip()}")
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer.get("kind") == "UnavailableError", answer
    message = answer["message"]
    assert "no runtime can run boxes here" in message
    assert "not local:" in message and "not bwrap:" in message
    for way_out in (
        "BOXLITE_REST_URL",
        "apt-get install bubblewrap",
        "boxlite-mcp[local]",
        "boxlite-mcp doctor",
    ):
        assert way_out in message


async def test_network_settings_reach_the_runtime_chosen(
    clean_env: pytest.MonkeyPatch,
    tmp_path: Path,
    server: RunningServer,
) -> None:
    """--net-allow, --secret (value from the environment) and the server's own port."""
    clean_env.setenv("BOXLITE_MCP_TEST_TOKEN", "value-from-env")
    settings = Settings(
        home=tmp_path / "home",
        runtime="bwrap",
        transport="streamable-http",
        port=8765,
        net_allow=["pypi.org"],
        secrets=["BOXLITE_MCP_TEST_TOKEN:api.example.com"],
    )
    selected = await opened(settings)
    try:
        rt = selected.runtime
        assert isinstance(rt, BwrapRuntime)
        rules = rt.net_rules
        assert str(rules.net_allow) == "pypi.org" and rules.server_ports == frozenset({8765})
        assert rules.secrets["BOXLITE_MCP_TEST_TOKEN"].hosts == ("api.example.com",)
        assert rt.host_port_refused(8765) is not None
    finally:
        await rt.aclose()
    clean_env.setenv("BOXLITE_API_KEY", API_KEY)
    selected = await opened(settings.model_copy(update={"runtime": "rest", "url": server.url}))
    try:
        rest = selected.runtime
        assert isinstance(rest, RestRuntime)
        assert str(rest.net_allow) == "pypi.org" and "BOXLITE_MCP_TEST_TOKEN" in rest.secrets
    finally:
        await rest.aclose()
