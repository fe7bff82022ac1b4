"""``--state``: the store is opened and pinged at startup, so a wrong or silent store
is one clear line and an exit status, never a server that fails on its first call."""

from __future__ import annotations

from tests.transport.test_cli import run_cli
from tools.redislib.server import free_port


def test_a_state_url_of_another_kind_is_a_configuration_error() -> None:
    done = run_cli("--state", "http://cache.internal:6379")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "boxlite-mcp: error: --state / BOXLITE_MCP_STATE_URL: expected 'memory' or a Redis "
        "URL (redis://HOST:PORT/DB, rediss://..., unix:///path?db=N), not a http URL"
    ]


def test_a_store_that_does_not_answer_stops_the_server_at_once_without_its_password() -> None:
    port = free_port()  # nothing listens there
    done = run_cli(
        "--runtime",
        "bwrap",
        env={"BOXLITE_MCP_STATE_URL": f"redis://:s3cret-pw@127.0.0.1:{port}/0"},
    )
    assert done.returncode == 1
    error = [line for line in done.stderr.splitlines() if "error" in line]
    assert error == [
        f"boxlite-mcp: error: the state store redis://127.0.0.1:{port}/0 does not answer "
        "(StateUnavailable); start it, or correct --state / BOXLITE_MCP_STATE_URL"
    ], done.stderr
    assert "s3cret-pw" not in done.stderr and "Traceback" not in done.stderr
    assert "serving MCP" not in done.stderr
