"""The ``boxlite-mcp`` command: parse flags and environment, pick a runtime, serve.

stdout belongs to the stdio transport, so everything human-readable goes to
stderr. A configuration mistake is one line on stderr and exit status 2, never a
traceback.
"""

from __future__ import annotations

import argparse
import difflib
import logging
import os
import re
import socket
import sys
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, get_args

import anyio
from mcp.server.auth.provider import TokenVerifier
from pydantic import ValidationError

from .. import __version__
from ..runtime.errors import BoxliteError, InternalError
from ..runtime.local.probe import PROBE_ENV
from ..runtime.rest.settings import URL_ENV as REST_URL_ENV
from ..sessions.owners import SHARED_OWNER_NOTE
from ..settings import (
    AUTO_ORDER,
    ENV_PREFIX,
    HOME_ENV,
    LogLevel,
    Settings,
    TransportChoice,
    env_name,
)
from ..transport.anonymous import AnonymousBindError, check_anonymous_bind
from ..transport.auth import TOKENS_ENV, AuthConfigError, load_verifier

if TYPE_CHECKING:
    from ..sessions.state import StateStore
from ..transport.http import TransportConfigError

logger = logging.getLogger("boxlite_mcp")

PROG = "boxlite-mcp"

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 2
EXIT_INTERRUPTED = 130

#: Flag → Settings field; the flag's environment variable is ENV_PREFIX + FIELD.
FLAG_FIELDS: dict[str, str] = {
    "--transport": "transport",
    "--host": "host",
    "--port": "port",
    "--runtime": "runtime",
    "--url": "url",
    "--allow-path": "allow_paths",
    "--log-level": "log_level",
    "--home": "home",
    "--image-include": "image_include",
    "--auth-tokens-file": "auth_tokens_file",
    "--allow-anonymous": "allow_anonymous",
    "--allowed-host": "allowed_hosts",
    "--allowed-origin": "allowed_origins",
    "--net-allow": "net_allow",
    "--secret": "secrets",
    "--net-ca-file": "net_ca_file",
    "--tools": "tools",
    "--state": "state_url",
}
_FIELD_FLAGS = {field: flag for flag, field in FLAG_FIELDS.items()}

#: Environment variables read directly rather than through Settings.
_OTHER_ENV = {TOKENS_ENV, PROBE_ENV}


class ConfigError(Exception):
    """A configuration mistake; the message is the whole story, on one line."""


class _Parser(argparse.ArgumentParser):
    """argparse, but errors are one line and exit 2 (no usage block)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_CONFIG, f"{self.prog}: error: {message} (see --help)\n")


def _env_help(field: str, extra: str = "") -> str:
    return f"[env {env_name(field)}{extra}]"


def _add_runtime_flags(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    default: Any = argparse.SUPPRESS if suppress else None
    parser.add_argument(
        "--runtime",
        choices=["auto", *AUTO_ORDER],
        default=default,
        help="where boxes run: auto picks rest when a URL is set, else local micro-VMs "
        "when the host can boot them, else bwrap (default: auto) " + _env_help("runtime"),
    )
    parser.add_argument(
        "--url",
        default=default,
        metavar="URL",
        help="BoxLite REST server for the rest runtime " + _env_help("url", f", or {REST_URL_ENV}"),
    )
    parser.add_argument(
        "--home",
        type=Path,
        default=default,
        metavar="DIR",
        help=f"state directory of the bwrap/local runtime (default: {HOME_ENV}, else the "
        "XDG data directory) " + _env_help("home"),
    )
    parser.add_argument(
        "--log-level",
        choices=list(get_args(LogLevel)),
        default=default,
        help="log verbosity; logs go to stderr only (default: info) " + _env_help("log_level"),
    )


def build_parser() -> argparse.ArgumentParser:
    flagged = set(FLAG_FIELDS.values())
    others = [env_name(f) for f in Settings.model_fields if f not in flagged]
    epilog = "\n".join(
        [
            "Every flag has the environment variable shown beside it; flags win.",
            f"Lists in the environment: {env_name('allow_paths')} separated by "
            f"'{os.pathsep}', the others by ','.",
            "",
            *textwrap.wrap(
                f"Bearer auth (HTTP transports): tokens in {TOKENS_ENV}='token:subject,...' "
                "and/or --auth-tokens-file (lines 'token subject'); the subject of the token a "
                "request carries owns the boxes it creates.",
                78,
            ),
            "",
            *textwrap.wrap("Environment only: " + ", ".join(others) + ".", 78),
            "",
            f"'{PROG} demo' starts this server over stdio and walks a scenario with a live",
            "transcript; it takes --runtime, --url, --home and --log-level.",
            f"'{PROG} doctor' says which runtimes can run boxes here, why not, and the fix.",
        ]
    )
    parser = _Parser(
        prog=PROG,
        description="An MCP server that gives LLM agents secure boxes to run code in, on BoxLite.",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--transport",
        choices=list(get_args(TransportChoice)),
        help="how clients connect (default: stdio) " + _env_help("transport"),
    )
    parser.add_argument(
        "--host",
        help="address to listen on, HTTP transports (default: 127.0.0.1) " + _env_help("host"),
    )
    parser.add_argument(
        "--port",
        type=int,
        help="port to listen on, HTTP transports; 0 picks a free one (default: 8000) "
        + _env_help("port"),
    )
    _add_runtime_flags(parser, suppress=False)
    parser.add_argument(
        "--allow-path",
        dest="allow_paths",
        action="append",
        type=Path,
        metavar="DIR",
        help="host directory that copy_in/copy_out/export/import may touch; repeatable "
        "(default: none) " + _env_help("allow_paths"),
    )
    parser.add_argument(
        "--image-include",
        dest="image_include",
        action="append",
        type=Path,
        metavar="PATH",
        help="host path to show in bwrap boxes on the default image, which otherwise has "
        "the host's operating system only; repeatable " + _env_help("image_include"),
    )
    parser.add_argument(
        "--auth-tokens-file",
        dest="auth_tokens_file",
        type=Path,
        metavar="FILE",
        help="bearer tokens for the HTTP transports, lines 'token subject' "
        + _env_help("auth_tokens_file"),
    )
    parser.add_argument(
        "--allow-anonymous",
        dest="allow_anonymous",
        action="store_const",
        const=True,
        help="serve HTTP without bearer tokens on a non-loopback address (refused otherwise: "
        "anyone who reaches it runs commands, and all clients share one owner) "
        + _env_help("allow_anonymous", "=1"),
    )
    parser.add_argument(
        "--allowed-host",
        dest="allowed_hosts",
        action="append",
        metavar="HOST[:PORT]",
        help="extra Host header value accepted over HTTP (DNS-rebinding protection; "
        "'name:*' for any port); repeatable " + _env_help("allowed_hosts"),
    )
    parser.add_argument(
        "--allowed-origin",
        dest="allowed_origins",
        action="append",
        metavar="ORIGIN",
        help="extra Origin header value accepted over HTTP; repeatable "
        + _env_help("allowed_origins"),
    )
    parser.add_argument(
        "--net-allow",
        dest="net_allow",
        type=lambda text: [part for part in text.split(",") if part.strip()],
        metavar="LIST",
        help="comma-separated destinations boxes with network may reach, the widest set "
        "(host names, *.domain, IPs, CIDRs, host.boxlite.internal for the host's "
        "loopback; each optionally :PORT); boxes narrow it with allow_net (default: *, "
        "the public internet only: never the host, link-local or private ranges) "
        + _env_help("net_allow"),
    )
    parser.add_argument(
        "--secret",
        dest="secrets",
        action="append",
        metavar="NAME[:HOST,...]",
        help="a secret boxes may use without seeing it: its value is this server's "
        "environment variable NAME; boxes get <BOXLITE_SECRET:NAME>, swapped for the value "
        "in their HTTP(S) requests to HOST (default: any host); repeatable "
        + _env_help("secrets", ", items separated by ';'"),
    )
    parser.add_argument(
        "--net-ca-file",
        type=Path,
        metavar="FILE",
        help="extra CA certificates the proxy trusts when it opens HTTPS for a secret "
        + _env_help("net_ca_file"),
    )
    parser.add_argument(
        "--tools",
        metavar="SET",
        help="which tools to offer: all, core (the common loop in at most 12 tools), or a "
        "comma list of tool names, which may include core (default: all) " + _env_help("tools"),
    )
    parser.add_argument(
        "--state",
        dest="state_url",
        metavar="URL",
        help="where replicas share state (owners' boxes and their lifetimes): memory "
        "(this process only, the default) or redis://HOST:PORT/DB for several replicas "
        "behind one load balancer " + _env_help("state_url"),
    )
    commands = parser.add_subparsers(dest="command", metavar="{demo,doctor}")
    demo = commands.add_parser(
        "demo",
        help="run the server over stdio and walk a scenario with a live transcript",
        description="Start the server as a subprocess over stdio, connect an MCP client and "
        "walk a scenario: box, streaming exec, files, snapshot and restore, metrics.",
    )
    _add_runtime_flags(demo, suppress=True)
    doctor = commands.add_parser(
        "doctor",
        help="say which runtimes can run boxes here, why not, and the command that fixes it",
        description="Check each runtime (rest, local, bwrap) on this machine, say which one "
        "--runtime auto would pick, and give one fix per runtime that cannot run. "
        "Exit 0 when some runtime works, else 1.",
    )
    _add_runtime_flags(doctor, suppress=True)
    return parser


def settings_from_args(ns: argparse.Namespace, environ: Mapping[str, str]) -> Settings:
    """Settings from environment then flags, checked; ConfigError names flag and variable."""
    overrides: dict[str, object] = {}
    for field in FLAG_FIELDS.values():
        value = getattr(ns, field, None)
        if value is not None:
            overrides[field] = value
    if "url" not in overrides and env_name("url") not in environ and environ.get(REST_URL_ENV):
        overrides["url"] = environ[REST_URL_ENV]
    try:
        settings = Settings.from_env(dict(environ), **overrides)
    except ValidationError as exc:
        raise ConfigError(_describe_validation(exc)) from None
    _check_net_allow(settings)
    return _check_paths(settings)


def _check_net_allow(settings: Settings) -> None:
    from ..runtime.network import secrets
    from ..runtime.network.policy import AllowList, PolicyError

    try:
        AllowList.parse(settings.net_allow)
    except PolicyError as exc:
        raise ConfigError(f"--net-allow / {env_name('net_allow')}: {exc}") from None
    try:
        secrets.load(secrets.parse_specs(settings.secrets), os.environ)
    except secrets.SecretError as exc:
        raise ConfigError(f"--secret / {env_name('secrets')}: {exc}") from None
    if settings.net_ca_file is not None and not settings.net_ca_file.is_file():
        raise ConfigError(
            f"--net-ca-file / {env_name('net_ca_file')}: {str(settings.net_ca_file)!r} is not "
            "a file; name a PEM file of CA certificates"
        )


def _describe_validation(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else ""
        flag = _FIELD_FLAGS.get(field)
        where = f"{flag} / {env_name(field)}" if flag else env_name(field)
        problems.append(f"{where}: {error['msg']}")
    return "invalid configuration: " + "; ".join(problems)


def _check_paths(settings: Settings) -> Settings:
    roots: list[Path] = []
    for root in settings.allow_paths:
        resolved = root.expanduser().resolve()
        if not resolved.is_dir():
            raise ConfigError(f"--allow-path {root}: no such directory")
        roots.append(resolved)
    home = settings.home.expanduser() if settings.home is not None else None
    if home is not None and home.exists() and not home.is_dir():
        raise ConfigError(f"--home {home}: exists and is not a directory")
    tokens_file = settings.auth_tokens_file
    if tokens_file is not None and not tokens_file.expanduser().is_file():
        raise ConfigError(f"--auth-tokens-file {tokens_file}: no such file")
    return settings.model_copy(
        update={
            "allow_paths": roots,
            "home": home,
            "auth_tokens_file": tokens_file.expanduser() if tokens_file else None,
        }
    )


def _check_tools(settings: Settings) -> None:
    """A ``--tools`` naming no tool of this build is a config error before anything starts."""
    from ..server.build import tool_names
    from ..server.toolsets import ToolsetError, select

    try:
        select(settings.tools, tool_names())
    except ToolsetError as exc:
        raise ConfigError(str(exc)) from None


class _RedactIds(logging.Filter):
    """Shorten session ids (32 hex digits) in logs: on a server without auth they are keys."""

    _ID = re.compile(r"\b([0-9a-f]{8})[0-9a-f]{24}\b")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = self._ID.sub(r"\1…", message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def configure_logging(level: str) -> None:
    """One stderr handler with level and logger name; noisy HTTP client logs only when debugging."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
    )
    handler.addFilter(_RedactIds())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    quiet = logging.DEBUG if level == "debug" else logging.WARNING
    for name in ("httpx", "httpcore", "httpx_ws", "sse_starlette", "mcp.server.lowlevel.server"):
        logging.getLogger(name).setLevel(quiet)


def _warn_unknown_env(environ: Mapping[str, str]) -> None:
    """Point out a likely misspelt BOXLITE_MCP_* variable (others may belong to a runtime)."""
    known = {env_name(f) for f in Settings.model_fields} | _OTHER_ENV
    for name in sorted(environ):
        if name.startswith(ENV_PREFIX) and name not in known:
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.85)
            if close:
                logger.warning("ignoring environment variable %s; did you mean %s?", name, close[0])


async def run_server(settings: Settings, verifier: TokenVerifier | None) -> int:
    """Open the state store and the runtime, build the server, serve it; close both
    whatever happens."""
    from ..transport import http as transport

    # Bind before opening the runtime: a taken port is a quick, clear error.
    sock = None if settings.transport == "stdio" else transport.bind(settings.host, settings.port)
    try:
        state = await _open_state(settings)
    except BaseException:
        if sock is not None:
            sock.close()
        raise
    try:
        return await _serve(settings, verifier, sock, state)
    finally:
        with anyio.CancelScope(shield=True):
            await state.aclose()


async def _open_state(settings: Settings) -> StateStore:
    """The store --state names, answering: a store that does not is a clear error now,
    not on the first tool call."""
    from ..sessions.state import StateConfigError, StateUnavailableError, open_state

    try:
        state = open_state(
            settings.state_url,
            max_executions_kept=settings.max_executions_kept,
            stored_output_cap_bytes=settings.stored_output_cap_bytes,
        )
    except StateConfigError as exc:
        raise ConfigError(str(exc)) from None
    try:
        await state.ping()
    except StateUnavailableError as exc:
        with anyio.CancelScope(shield=True):
            await state.aclose()
        raise StateUnavailableError(
            f"the state store {state.description} does not answer ({exc.kind}); start it, "
            "or correct --state / BOXLITE_MCP_STATE_URL"
        ) from None
    except BaseException:
        with anyio.CancelScope(shield=True):
            await state.aclose()
        raise
    logger.info("state: %s", state.description)
    return state


async def _serve(
    settings: Settings,
    verifier: TokenVerifier | None,
    sock: socket.socket | None,
    state: StateStore,
) -> int:
    from ..transport import http as transport

    try:
        from ..server import build_server
        from .select import open_runtime

        # Boxes' proxies refuse the server's own port: the one really bound (--port 0
        # picks it only now).
        bound = (
            settings
            if sock is None
            else settings.model_copy(update={"port": int(sock.getsockname()[1])})
        )
        selected = await open_runtime(bound)
    except BaseException:
        if sock is not None:
            sock.close()
        raise
    logger.info("runtime: %s (%s)", selected.kind, selected.reason)
    if sock is not None and verifier is None:
        logger.warning("%s", SHARED_OWNER_NOTE)
    try:
        server = build_server(
            selected.runtime, settings, runtime_reason=selected.reason, state=state
        )
        await transport.serve(server, settings, verifier=verifier, sock=sock)
    finally:
        with anyio.CancelScope(shield=True):
            try:
                await selected.runtime.aclose()
            except BoxliteError as exc:
                logger.warning("closing the runtime: %s", exc)
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    parser = build_parser()
    ns = parser.parse_args(argv)
    environ = dict(os.environ)
    try:
        settings = settings_from_args(ns, environ)
        configure_logging(settings.log_level)
        _warn_unknown_env(environ)
        if ns.command == "demo":
            from .demo import run_demo

            return anyio.run(run_demo, settings)
        if ns.command == "doctor":
            from .doctor import run_doctor

            return anyio.run(run_doctor, settings)
        _check_tools(settings)
        try:
            verifier = load_verifier(settings.auth_tokens_file, environ)
        except AuthConfigError as exc:
            raise ConfigError(str(exc)) from None
        try:
            check_anonymous_bind(settings, authenticated=verifier is not None)
        except AnonymousBindError as exc:
            raise ConfigError(str(exc)) from None
        return anyio.run(run_server, settings, verifier)
    except ConfigError as exc:
        return _fail(EXIT_CONFIG, str(exc))
    except TransportConfigError as exc:
        return _fail(EXIT_CONFIG, str(exc))
    except BoxliteError as exc:
        status = EXIT_FAILURE if isinstance(exc, InternalError) else EXIT_CONFIG
        return _fail(status, str(exc))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def _fail(status: int, message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return status
