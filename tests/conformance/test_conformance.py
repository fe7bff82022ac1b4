"""The official MCP conformance suite's generic server scenarios against boxlite-mcp.

The fast variant of ``python -m tools.conformance``: the real server over streamable
HTTP (bwrap runtime), every generic scenario of every leg, one test each. Needs Node
(for ``npm ci`` of the pinned packages in tools/conformance); without it the tests
skip and say why, unless ``BOXLITE_MCP_REQUIRE_CONFORMANCE=1`` (CI) makes that a
failure.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from boxlite_mcp.runtime.bwrap.host import find_bwrap
from boxlite_mcp.runtime.errors import BoxliteError
from tools.conformance.catalogue import LEGS, NEXT_2026, STABLE, Leg, ServerFacts
from tools.conformance.runner import (
    ScenarioRun,
    Toolchain,
    Unavailable,
    boxlite_server,
    judge,
    listed_scenarios,
    node_toolchain,
    plan,
    probe,
    run_scenario,
)

REQUIRED = os.environ.get("BOXLITE_MCP_REQUIRE_CONFORMANCE") == "1"


def _unavailable(reason: str) -> None:
    if REQUIRED:
        pytest.fail(f"{reason} (BOXLITE_MCP_REQUIRE_CONFORMANCE=1)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def toolchain() -> Toolchain:
    try:
        return node_toolchain(install=True)
    except Unavailable as exc:
        _unavailable(f"MCP conformance suite unavailable: {exc}")
        raise  # unreachable: _unavailable raises


@pytest.fixture(scope="module")
def server_url(toolchain: Toolchain, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    try:
        find_bwrap()  # the system's or the bundled one, as the runtime chooses
    except BoxliteError as exc:
        _unavailable(f"{exc.message}; the server under test uses it")
    with boxlite_server("bwrap", tmp_path_factory.mktemp("conformance-server")) as url:
        yield url


@pytest.fixture(scope="module")
def facts(server_url: str) -> ServerFacts:
    return probe(server_url)


def _judged() -> list[Any]:
    return [
        pytest.param(leg, name, id=f"{leg.name}:{name}") for leg in LEGS for name in leg.judged()
    ]


@pytest.mark.parametrize("leg", LEGS, ids=[leg.name for leg in LEGS])
def test_catalogue_classifies_every_scenario(
    toolchain: Toolchain, facts: ServerFacts, leg: Leg
) -> None:
    """After a version bump, a new scenario must be classified before it is trusted."""
    steps = plan(leg, listed_scenarios(toolchain, leg), facts)
    assert steps.unclassified == [], "classify these in tools/conformance/catalogue.py"
    assert steps.missing == [], f"{leg.package} no longer offers these at this revision"


@pytest.mark.parametrize(("leg", "scenario"), _judged())
def test_generic_scenario(
    toolchain: Toolchain,
    server_url: str,
    facts: ServerFacts,
    tmp_path: Path,
    leg: Leg,
    scenario: str,
) -> None:
    condition = leg.conditional.get(scenario)
    if condition is not None and not condition.applies(facts):
        pytest.skip(f"not applicable: {condition.reason_not}")
    run = run_scenario(toolchain, leg, scenario, server_url, tmp_path)
    verdict = judge(leg, run, facts)
    assert verdict.status == "pass", (
        f"{leg.name} {scenario} failed:\n  "
        + "\n  ".join(verdict.failures)
        + f"\n(checks and CLI output under {tmp_path})"
    )
    assert verdict.passed > 0


# --- The judge itself: it must be able to say "fail" ---------------------------------


def _check(check_id: str, status: str) -> dict[str, Any]:
    return {"id": check_id, "status": status, "description": check_id}


def test_judge_excuses_only_checks_whose_fixture_is_absent() -> None:
    excusable = "sep-2575-server-rejects-undeclared-capability"
    run = ScenarioRun(
        NEXT_2026.name,
        "server-stateless",
        [_check("a", "SUCCESS"), _check(excusable, "FAILURE"), _check("b", "WARNING")],
        exit_code=1,
        output="",
        seconds=0.0,
    )
    without = ServerFacts(capabilities={}, tools={"exec_run": {}})
    with_fixture = ServerFacts(capabilities={}, tools={"test_missing_capability": {}})

    lenient = judge(NEXT_2026, run, without)
    assert lenient.status == "pass" and lenient.passed == 1
    assert len(lenient.excused) == 1 and len(lenient.warnings) == 1

    strict = judge(NEXT_2026, run, with_fixture)
    assert strict.status == "fail" and strict.failures[0].startswith(excusable)


def test_judge_fails_a_run_without_results() -> None:
    run = ScenarioRun("stable", "ping", [], exit_code=None, output="hung\n", seconds=1.0)
    verdict = judge(STABLE, run, ServerFacts(capabilities={}, tools={}))
    assert verdict.status == "fail"
    assert "timed out without results" in verdict.failures[0]


class _PermissiveServer:
    """A deliberately non-conforming HTTP endpoint: 200 to anything, any Host header."""

    def __init__(self) -> None:
        import uvicorn

        config = uvicorn.Config(self.app, host="127.0.0.1", port=0, log_level="error")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @staticmethod
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "result": {}}).encode()
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/mcp"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def test_a_server_without_dns_rebinding_protection_fails(
    toolchain: Toolchain, tmp_path: Path
) -> None:
    """The pipeline end to end reports a real failure, not just passes."""
    with _PermissiveServer() as url:
        run = run_scenario(toolchain, STABLE, "dns-rebinding-protection", url, tmp_path)
    verdict = judge(STABLE, run, ServerFacts(capabilities={}, tools={}))
    assert verdict.status == "fail"
    assert any(f.startswith("localhost-host-rebinding-rejected") for f in verdict.failures)
