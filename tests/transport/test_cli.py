"""The command line: --help documents every flag and its variable; mistakes are one line, exit 2."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from boxlite_mcp.app.cli import (
    FLAG_FIELDS,
    build_parser,
    configure_logging,
    main,
    settings_from_args,
)
from boxlite_mcp.settings import Settings, env_name


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    """``python -m boxlite_mcp ARGS`` with a clean BOXLITE_* environment plus ``env``."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("BOXLITE")}
    return subprocess.run(
        [sys.executable, "-m", "boxlite_mcp", *args],
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def test_help_documents_every_flag_and_its_environment_variable() -> None:
    done = run_cli("--help")
    assert done.returncode == 0
    for flag, field in FLAG_FIELDS.items():
        assert flag in done.stdout
        assert env_name(field) in done.stdout
    assert "BOXLITE_REST_URL" in done.stdout
    assert "BOXLITE_MCP_AUTH_TOKENS" in done.stdout
    for field in Settings.model_fields:  # the environment-only ones too
        assert env_name(field) in done.stdout
    assert "stdio" in done.stdout and "streamable-http" in done.stdout and "demo" in done.stdout
    assert done.stderr == ""


@pytest.fixture
def root_logging() -> Iterator[None]:
    """main() configures the root logger; put it back for the tests that follow."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.parametrize(
    ("args", "env", "says"),
    [
        (["--bogus"], {}, "unrecognized arguments: --bogus"),
        (["--transport", "carrier-pigeon"], {}, "invalid choice: 'carrier-pigeon'"),
        (["--port", "http"], {}, "--port: invalid int value"),
        (["--port", "70000"], {}, "--port / BOXLITE_MCP_PORT: Input should be less than"),
        ([], {"BOXLITE_MCP_PORT": "eighty"}, "--port / BOXLITE_MCP_PORT"),
        ([], {"BOXLITE_MCP_RUNTIME": "docker"}, "--runtime / BOXLITE_MCP_RUNTIME"),
        ([], {"BOXLITE_MCP_MAX_BOXES_PER_OWNER": "0"}, "BOXLITE_MCP_MAX_BOXES_PER_OWNER"),
        (["--allow-path", "/no/such/dir"], {}, "--allow-path /no/such/dir: no such directory"),
        (["--auth-tokens-file", "/no/such/file"], {}, "--auth-tokens-file /no/such/file"),
        ([], {"BOXLITE_MCP_AUTH_TOKENS": "tooshort:alice"}, "shorter than 16"),
        (["demo", "--transport", "sse"], {}, "unrecognized arguments"),
    ],
)
@pytest.mark.usefixtures("root_logging")
def test_bad_configuration_is_one_line_and_exit_2(
    args: list[str],
    env: dict[str, str],
    says: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name in [n for n in os.environ if n.startswith("BOXLITE")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    try:
        status = main(args)
    except SystemExit as exited:  # argparse's own errors
        status = exited.code  # type: ignore[assignment]
    out, err = capsys.readouterr()
    assert status == 2, err
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("boxlite-mcp: error: ")
    assert says in lines[0]
    assert "tooshort" not in err


def test_exit_status_and_stderr_of_the_real_command() -> None:
    done = run_cli("--port", "70000")
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == (
        "boxlite-mcp: error: invalid configuration: --port / BOXLITE_MCP_PORT: "
        "Input should be less than or equal to 65535\n"
    )


def test_bad_token_file_line_is_named_not_echoed(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("a-very-secret-token-value\n")
    done = run_cli("--transport", "streamable-http", "--auth-tokens-file", str(tokens))
    assert done.returncode == 2
    assert "line 1 needs two fields" in done.stderr
    assert "a-very-secret-token-value" not in done.stderr


def test_taken_port_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_cli("--transport", "streamable-http", "--port", str(port))
    assert done.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "choose another --port" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_flags_override_environment_and_rest_url_is_honoured(tmp_path: Path) -> None:
    parser = build_parser()
    env = {
        "BOXLITE_MCP_PORT": "9000",
        "BOXLITE_MCP_ALLOWED_HOSTS": "a.example,b.example",
        "BOXLITE_MCP_ALLOW_PATHS": f"{tmp_path}{os.pathsep}{tmp_path}",
        "BOXLITE_REST_URL": "http://boxlite.internal:8100",
    }
    settings = settings_from_args(parser.parse_args(["--port", "9001"]), env)
    assert settings.port == 9001
    assert settings.allowed_hosts == ["a.example", "b.example"]
    assert settings.allow_paths == [tmp_path.resolve(), tmp_path.resolve()]
    assert settings.url == "http://boxlite.internal:8100"
    own = settings_from_args(
        parser.parse_args(["--url", "http://x:1", "--allowed-host", "c.example"]), env
    )
    assert own.url == "http://x:1" and own.allowed_hosts == ["c.example"]
    mcp_url = settings_from_args(parser.parse_args([]), {**env, "BOXLITE_MCP_URL": "http://y:2"})
    assert mcp_url.url == "http://y:2"


def test_demo_takes_runtime_flags() -> None:
    ns = build_parser().parse_args(["--home", "/a", "demo", "--runtime", "bwrap"])
    settings = settings_from_args(ns, {})
    assert ns.command == "demo" and settings.runtime == "bwrap" and str(settings.home) == "/a"


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert "boxlite-mcp" in capsys.readouterr().out


def test_misspelt_variable_is_pointed_out() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_cli(
            "--transport", "streamable-http", "--port", str(port), env={"BOXLITE_MCP_PROT": "1"}
        )
    assert done.returncode == 2
    assert "BOXLITE_MCP_PROT; did you mean BOXLITE_MCP_PORT?" in done.stderr


@pytest.mark.usefixtures("root_logging")
def test_logs_go_to_stderr_with_level_and_logger_and_session_ids_shortened(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("info")
    session = "fbc38494" + "0" * 24
    logging.getLogger("mcp.server.streamable_http").info("Terminating session: %s", session)
    probe = logging.getLogger("cli-test-probe")  # no ancestor but root: its level rules
    probe.setLevel(logging.NOTSET)
    probe.debug("not shown at info")
    out, err = capsys.readouterr()
    assert out == ""
    assert "INFO mcp.server.streamable_http: Terminating session: fbc38494…" in err
    assert session not in err
    assert "not shown" not in err
