"""Which conformance scenarios apply to boxlite-mcp, and why the others do not.

The official suite (``@modelcontextprotocol/conformance``) tests a server by driving
it as a client. Most of its server scenarios call *fixtures*: tools, resources and
prompts with fixed names (``test_simple_text``, ``test://static-text`` ...) that only
a conformance "everything" server implements. A real server such as this one cannot
pass them without shipping those fixtures, so they say nothing about it. The
*generic* scenarios exercise the protocol itself (handshake, ping, listing, sessions,
HTTP rules, caching hints, error shapes) and must pass for any server.

Three legs run the suite:

- ``stable``: the ``latest`` release, speaking 2025-11-25 through the TypeScript SDK.
- ``next-2025-11-25`` and ``next-2026-07-28``: the newest pre-release, which adds
  wire-schema validation of every message and the 2026-07-28 (stateless) protocol,
  the revision this server's SDK serves by default.

Every name here was read from the pinned packages' sources; the pins live in
``package.json`` beside this file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ServerFacts:
    """What a legacy (2025-11-25) handshake and ``tools/list`` reveal about a server."""

    capabilities: dict[str, Any]
    tools: dict[str, dict[str, Any]]  # name -> inputSchema


Predicate = Callable[[ServerFacts], bool]


@dataclass(frozen=True)
class Condition:
    """A scenario or check that applies only to servers with some feature."""

    applies: Predicate
    reason_not: str  # why it does not apply, when ``applies`` is false


@dataclass(frozen=True)
class Leg:
    """One pinned package at one protocol revision, with its scenario classification."""

    name: str
    package: str  # directory under node_modules
    spec_version: str | None  # passed as --spec-version when set
    generic: tuple[str, ...]
    conditional: dict[str, Condition] = field(default_factory=dict)
    # scenario -> check id -> condition under which the check is judged
    check_conditions: dict[str, dict[str, Condition]] = field(default_factory=dict)
    # scenario -> why it is not generic (run only with --all, never judged). Entries
    # for scenarios the package does not offer at this revision are ignored.
    not_generic: dict[str, str] = field(default_factory=dict)

    def judged(self) -> tuple[str, ...]:
        """The scenarios whose failure fails the run, in suite order."""
        return self.generic + tuple(self.conditional)


def _declares(capability: str) -> Condition:
    return Condition(
        applies=lambda facts: capability in facts.capabilities,
        reason_not=f"the server does not declare the `{capability}` capability",
    )


def _lists_tool(tool: str) -> Condition:
    return Condition(
        applies=lambda facts: tool in facts.tools,
        reason_not=f"needs the diagnostic fixture tool `{tool}`, which the server does not list",
    )


def _has_header_tool(facts: ServerFacts) -> bool:
    return any(
        isinstance(prop, dict) and "x-mcp-header" in prop
        for schema in facts.tools.values()
        for prop in (schema.get("properties") or {}).values()
    )


def _tool(name: str) -> str:
    return f"calls the fixture tool `{name}`, which only a conformance everything-server has"


def _prompt(name: str) -> str:
    return f"gets the fixture prompt `{name}`, which only a conformance everything-server has"


def _resource(uri: str) -> str:
    return f"reads the fixture resource `{uri}`, which only a conformance everything-server has"


# Fixture scenarios common to both packages (2025-06-18 / 2025-11-25 era).
_FIXTURES: dict[str, str] = {
    "completion-complete": "completes an argument of the fixture prompt "
    "`test_prompt_with_arguments`, which only a conformance everything-server has",
    "tools-call-simple-text": _tool("test_simple_text"),
    "tools-call-image": _tool("test_image_content"),
    "tools-call-audio": _tool("test_audio_content"),
    "tools-call-embedded-resource": _tool("test_embedded_resource"),
    "tools-call-mixed-content": _tool("test_multiple_content_types"),
    "tools-call-with-logging": _tool("test_tool_with_logging"),
    "tools-call-error": _tool("test_error_handling"),
    "tools-call-with-progress": _tool("test_tool_with_progress"),
    "tools-call-sampling": _tool("test_sampling"),
    "tools-call-elicitation": _tool("test_elicitation"),
    "json-schema-2020-12": _tool("json_schema_2020_12_tool"),
    "elicitation-sep1034-defaults": _tool("test_elicitation_sep1034_defaults"),
    "elicitation-sep1330-enums": _tool("test_elicitation_sep1330_enums"),
    "server-sse-polling": _tool("test_reconnection") + " (also pending upstream)",
    "resources-read-text": _resource("test://static-text"),
    "resources-read-binary": _resource("test://static-binary"),
    "resources-templates-read": _resource("test://template/123/data"),
    "resources-subscribe": "subscribes to the fixture resource `test://watched-resource`, "
    "which only a conformance everything-server has",
    "resources-unsubscribe": "unsubscribes from the fixture resource "
    "`test://watched-resource`, which only a conformance everything-server has",
    "prompts-get-simple": _prompt("test_simple_prompt"),
    "prompts-get-with-args": _prompt("test_prompt_with_arguments"),
    "prompts-get-embedded-resource": _prompt("test_prompt_with_embedded_resource"),
    "prompts-get-with-image": _prompt("test_prompt_with_image"),
}

_LEGACY_GENERIC = (
    "server-initialize",
    "ping",
    "tools-list",
    "resources-list",
    "prompts-list",
    "server-sse-multiple-streams",
    "dns-rebinding-protection",
)

_LOGGING = {"logging-set-level": _declares("logging")}

_NEXT_ONLY_FIXTURES: dict[str, str] = {
    "input-required-result-basic-elicitation": _tool("test_input_required_result_elicitation"),
    "input-required-result-basic-sampling": _tool("test_input_required_result_sampling"),
    "input-required-result-basic-list-roots": _tool("test_input_required_result_list_roots"),
    "input-required-result-request-state": _tool("test_input_required_result_request_state"),
    "input-required-result-multiple-input-requests": _tool(
        "test_input_required_result_multiple_inputs"
    ),
    "input-required-result-multi-round": _tool("test_input_required_result_multi_round"),
    "input-required-result-missing-input-response": _tool("test_input_required_result_elicitation"),
    "input-required-result-non-tool-request": _prompt("test_input_required_result_prompt"),
    "input-required-result-result-type": _tool("test_input_required_result_elicitation"),
    "input-required-result-tampered-state": _tool("test_input_required_result_tampered_state"),
    "input-required-result-capability-check": _tool("test_input_required_result_capabilities"),
    "input-required-result-ignore-extra-params": _tool("test_input_required_result_elicitation"),
    "input-required-result-validate-input": _tool("test_input_required_result_elicitation"),
}

STABLE = Leg(
    name="stable",
    package="@modelcontextprotocol/conformance",
    spec_version=None,
    generic=_LEGACY_GENERIC,
    conditional=_LOGGING,
    not_generic=_FIXTURES,
)

NEXT_2025 = Leg(
    name="next-2025-11-25",
    package="conformance-next",
    spec_version="2025-11-25",
    generic=(*_LEGACY_GENERIC, "server-session-lifecycle"),
    conditional=_LOGGING,
    not_generic=_FIXTURES,
)

NEXT_2026 = Leg(
    name="next-2026-07-28",
    package="conformance-next",
    spec_version="2026-07-28",
    generic=(
        "server-stateless",
        "tools-list",
        "resources-list",
        "prompts-list",
        "server-sse-multiple-streams",
        "dns-rebinding-protection",
        "caching",
        "sep-2164-resource-not-found",
        "http-header-validation",
        "input-required-result-unsupported-methods",
    ),
    conditional={
        "http-custom-header-server-validation": Condition(
            applies=_has_header_tool,
            reason_not="needs a tool whose input schema maps a parameter to a header "
            "(`x-mcp-header`); the server has none",
        ),
    },
    check_conditions={
        "server-stateless": {
            # Both probe MissingRequiredClientCapabilityError through a fixture tool
            # that needs sampling; without it the suite reports FAILURE, not "untestable".
            "sep-2575-server-rejects-undeclared-capability": _lists_tool("test_missing_capability"),
            "sep-2575-missing-capability-http-400": _lists_tool("test_missing_capability"),
        },
    },
    not_generic={**_FIXTURES, **_NEXT_ONLY_FIXTURES},
)

LEGS: tuple[Leg, ...] = (STABLE, NEXT_2025, NEXT_2026)
