"""``boxlite-mcp doctor``: can each runtime run boxes here, why not, and the fix.

For ``rest``, ``local`` and ``bwrap`` in turn, doctor runs the checks the runtimes
themselves enforce (``runtime.select``, ``runtime.local.probe``,
``runtime.bwrap.host``: no second copies of their rules), prints each fact with
``ok``/``no``, the one fix for the first "no", and which runtime ``--runtime auto``
would pick. It exits 0 when some runtime works, else 1.

Every host fact comes through ``Host``, whose defaults are those real checks; tests
replace single facts (no ``/dev/kvm``, not root, ...) and run the rest for real.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TextIO

import anyio

from ..runtime.bwrap import host as bwrap_host
from ..runtime.bwrap.limits import cgroup_mode
from ..runtime.errors import AuthError, BoxliteError
from ..runtime.local import probe, sdk
from ..runtime.rest.errors import display_url
from ..runtime.rest.settings import URL_ENV as REST_URL_ENV
from ..settings import AUTO_ORDER, RuntimeName, Settings
from . import select

#: How long the BoxLite server may take to answer doctor's two requests.
REST_TIMEOUT_SECONDS = 20.0

REST_URL_FIX = f"export {REST_URL_ENV}=https://your-boxlite-server  (or pass --url)"
REST_AUTH_FIX = (
    "export BOXLITE_API_KEY=<your key>  (a 0.9 server: BOXLITE_REST_CLIENT_ID "
    "and BOXLITE_REST_CLIENT_SECRET)"
)
ROOT_FIX = "sudo boxlite-mcp  (the bwrap runtime needs root for overlay mounts and cgroups)"
USERNS_FIX = "sysctl -w user.max_user_namespaces=15000"
TRIAL_FIX = (
    "in a container, start it with `--privileged` (the default seccomp profile "
    "forbids the namespaces bubblewrap makes)"
)


async def _rest_answer(url: str, env: Mapping[str, str]) -> str:
    """What the server at ``url`` says about itself, through the rest runtime's own client."""
    runtime = await select.open_rest(url, env)
    try:
        with anyio.fail_after(REST_TIMEOUT_SECONDS):
            info = await runtime.info()
            boxes = await runtime.list()  # needs the credentials, unlike discovery
    finally:
        await runtime.aclose()
    auth = info.details.get("auth", "none")
    return (
        f"answers: BoxLite REST API {info.api_generation}, auth {auth}, "
        f"{len(boxes)} boxes visible to these credentials"
    )


@dataclass(frozen=True)
class Host:
    """Where doctor learns about this machine: the runtimes' own checks by default."""

    system: Callable[[], str] = platform.system
    sdk_version: Callable[[], str | None] = sdk.version
    kvm: Callable[[], probe.Verdict] = probe.kvm_check
    cpu: Callable[[], probe.Verdict] = probe.cpu_check
    host_check: Callable[[], probe.Verdict] = probe.host_check
    vm_verdict: Callable[[probe.ProbeMode], probe.Verdict] = probe.can_boot
    find_bwrap: Callable[[], bwrap_host.BwrapBinary] = bwrap_host.find_bwrap
    bwrap_version: Callable[[str], str] = bwrap_host.bwrap_version
    find_programs: Callable[[], dict[str, str]] = bwrap_host.find_programs
    check_root: Callable[[], None] = bwrap_host.check_root
    user_namespaces: Callable[[], str] = bwrap_host.check_user_namespaces
    cgroups: Callable[[], str] = cgroup_mode
    trial_sandbox: Callable[[str], None] = select.trial_sandbox
    rest_answer: Callable[[str, Mapping[str, str]], Awaitable[str]] = _rest_answer


@dataclass(frozen=True)
class Fact:
    """One thing checked: ``ok`` True/False, or None when it could not be tried."""

    name: str
    ok: bool | None
    text: str
    fix: str = ""


@dataclass(frozen=True)
class RuntimeReport:
    """Whether one runtime can run boxes here, the facts behind it, and the fix."""

    kind: RuntimeName
    facts: tuple[Fact, ...]

    @property
    def ok(self) -> bool:
        return all(fact.ok is not False for fact in self.facts)

    @property
    def first_no(self) -> Fact | None:
        return next((fact for fact in self.facts if fact.ok is False), None)


@dataclass(frozen=True)
class Report:
    """Every runtime's report and what ``auto`` would do."""

    runtimes: tuple[RuntimeReport, ...]
    url_configured: bool
    auto: RuntimeName | None = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "auto", self._auto_pick())

    def _auto_pick(self) -> RuntimeName | None:
        """``AUTO_ORDER``: rest whenever a URL is set, else the first that works."""
        by_kind = {report.kind: report for report in self.runtimes}
        for kind in AUTO_ORDER:
            if kind == "rest":
                if self.url_configured:
                    return "rest"
            elif by_kind[kind].ok:
                return kind
        return None

    @property
    def ok(self) -> bool:
        return any(report.ok for report in self.runtimes)

    def render(self) -> str:
        lines = ["boxlite-mcp doctor: which runtimes can run boxes on this machine", ""]
        for report in self.runtimes:
            first_no = report.first_no
            lines.append(f"{report.kind}: " + ("yes" if first_no is None else "no"))
            for fact in report.facts:
                mark = {True: "ok", False: "no", None: "--"}[fact.ok]
                lines.append(f"  {mark:<3} {fact.name}: {fact.text}")
            if first_no is not None:
                lines.append(f"  fix: {first_no.fix}")
            lines.append("")
        by_kind = {report.kind: report for report in self.runtimes}
        if self.auto is None:
            lines.append(
                "auto would pick: nothing; no runtime can run boxes here. "
                "Apply one of the fixes above."
            )
        elif self.auto == "rest" and not by_kind["rest"].ok:
            works = [r.kind for r in self.runtimes if r.ok]
            alternative = f"; --runtime {works[0]} works here" if works else ""
            lines.append(
                "auto would pick: rest (a BoxLite server URL is set), but the "
                f"server does not answer: see the fix above{alternative}"
            )
        else:
            why = (
                "a BoxLite server URL is set"
                if self.auto == "rest"
                else "the first of " + ", ".join(AUTO_ORDER[1:]) + " that can run here"
            )
            lines.append(f"auto would pick: {self.auto} ({why})")
        return "\n".join(lines) + "\n"


async def diagnose(
    settings: Settings, environ: Mapping[str, str] | None = None, host: Host | None = None
) -> Report:
    """Check every runtime on this machine (or on ``host``'s facts)."""
    env = os.environ if environ is None else environ
    facts = host or Host()
    url = select.configured_url(settings, env)
    rest = await _check_rest(facts, url, env)
    local = await anyio.to_thread.run_sync(_check_local, facts, env)
    bwrap = await anyio.to_thread.run_sync(_check_bwrap, facts)
    return Report((rest, local, bwrap), url_configured=url is not None)


async def _check_rest(host: Host, url: str | None, env: Mapping[str, str]) -> RuntimeReport:
    if url is None:
        return RuntimeReport(
            "rest",
            (
                Fact(
                    "server",
                    False,
                    f"no BoxLite server is configured (--url, BOXLITE_MCP_URL or {REST_URL_ENV})",
                    REST_URL_FIX,
                ),
            ),
        )
    try:
        shown = display_url(url)
    except Exception:  # an unparseable URL: say so below without echoing it whole
        shown = "the configured URL"
    try:
        answer = await host.rest_answer(url, env)
    except TimeoutError:
        fact = Fact(
            "server",
            False,
            f"{shown} did not answer within {REST_TIMEOUT_SECONDS:.0f} s",
            f"start the BoxLite server at {shown}, or point {REST_URL_ENV} at one",
        )
    except AuthError as exc:
        fact = Fact("server", False, exc.message, REST_AUTH_FIX)
    except BoxliteError as exc:
        fact = Fact(
            "server",
            False,
            exc.message,
            f"start the BoxLite server at {shown}, or point {REST_URL_ENV} at one",
        )
    else:
        fact = Fact("server", True, f"{shown} {answer}")
    return RuntimeReport("rest", (fact,))


def _from_verdict(name: str, verdict: probe.Verdict) -> Fact:
    return Fact(name, verdict.ok, verdict.reason, verdict.fix)


def _check_local(host: Host, env: Mapping[str, str]) -> RuntimeReport:
    version = host.sdk_version()
    facts = [
        Fact(
            "boxlite SDK",
            version is not None,
            f"{version} installed" if version else "not installed",
            probe.SDK_FIX,
        )
    ]
    system = host.system()
    if system == "Linux":
        facts.append(_from_verdict("KVM", host.kvm()))
        facts.append(_from_verdict("CPU", host.cpu()))
    elif version is not None:  # host_check's other platforms need the SDK to say anything
        facts.append(_from_verdict(system, host.host_check()))
    try:
        mode = probe.probe_mode(dict(env))
    except ValueError as exc:
        facts.append(Fact("probe VM", False, str(exc), f"unset {probe.PROBE_ENV}"))
        return RuntimeReport("local", tuple(facts))
    static_failed = any(fact.ok is False for fact in facts)
    verdict = host.vm_verdict(mode)
    if mode == "on" and verdict.ok:  # the user vouches for the host: its checks do not count
        facts = [
            fact
            if fact.ok is not False
            else Fact(fact.name, None, f"{fact.text} (not held against it: {probe.PROBE_ENV}=on)")
            for fact in facts
        ]
    elif static_failed and not verdict.ok:
        facts.append(Fact("probe VM", None, "not tried: the checks above failed"))
    else:
        label = "probe VM" if mode in ("auto", "fresh") else f"{probe.PROBE_ENV}={mode}"
        facts.append(Fact(label, verdict.ok, verdict.reason, verdict.fix))
    return RuntimeReport("local", tuple(facts))


def _check_bwrap(host: Host) -> RuntimeReport:
    facts: list[Fact] = []
    binary: bwrap_host.BwrapBinary | None = None
    try:
        binary = host.find_bwrap()
        facts.append(Fact("bwrap", True, binary.describe(host.bwrap_version(binary.path))))
    except BoxliteError as exc:
        facts.append(Fact("bwrap", False, exc.message, bwrap_host.BWRAP_FIX))
    try:
        programs = host.find_programs()
        facts.append(
            Fact(
                "util-linux",
                True,
                ", ".join(programs[name] for name in bwrap_host.UTIL_LINUX_PROGRAMS),
            )
        )
    except BoxliteError as exc:
        facts.append(Fact("util-linux", False, exc.message, bwrap_host.UTIL_LINUX_FIX))
    try:
        host.check_root()
        facts.append(Fact("root", True, "this process is root"))
    except BoxliteError as exc:
        facts.append(Fact("root", False, exc.message, ROOT_FIX))
    try:
        facts.append(Fact("user namespaces", True, host.user_namespaces()))
    except BoxliteError as exc:
        facts.append(Fact("user namespaces", False, exc.message, USERNS_FIX))
    mode = host.cgroups()
    facts.append(
        Fact(
            "cgroups",
            True,
            mode
            if mode != "none"
            else "none: box limits (memory, CPU, processes) are not enforced",
        )
    )
    dns = "present" if os.path.exists("/etc/resolv.conf") else "absent: names will not resolve"
    facts.append(
        Fact(
            "network",
            True,
            "none by default; box_create network=true shares this "
            f"host's network (its /etc/resolv.conf: {dns})",
        )
    )
    if binary is None or any(fact.ok is False for fact in facts):
        facts.append(Fact("trial sandbox", None, "not tried: the checks above failed"))
    else:
        try:
            host.trial_sandbox(binary.path)
            facts.append(Fact("trial sandbox", True, "`true` ran in a throwaway sandbox"))
        except BoxliteError as exc:
            facts.append(Fact("trial sandbox", False, exc.message, TRIAL_FIX))
    return RuntimeReport("bwrap", tuple(facts))


async def run_doctor(
    settings: Settings,
    out: TextIO | None = None,
    environ: Mapping[str, str] | None = None,
    host: Host | None = None,
) -> int:
    """Print the report; 0 when some runtime can run boxes here, else 1."""
    report = await diagnose(settings, environ, host)
    print(report.render(), end="", file=out, flush=True)
    return 0 if report.ok else 1
