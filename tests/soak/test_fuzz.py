"""The fast variant of ``python -m tools.fuzz_tools``: 500 generated calls, in memory and
over stdio.

Complements ``tests/mcp/test_fuzz.py`` (30 broken arguments per tool, in memory): here
calls are valid-shaped as well as broken, drawn from the served schemas with real ids
and paths, over a real stdio server too, with sentinels, responsiveness and
leftover boxes checked.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from mcp import Client

from boxlite_mcp.server import build_server
from boxlite_mcp.settings import Settings
from tests.harness.bwrap import factory
from tools.benchlib.procs import REPO
from tools.fuzz_tools.fuzz import FuzzResult, normalise, run_fuzz, tame
from tools.fuzz_tools.schemagen import Pool, arguments, hostile
from tools.soaklib.calls import crash_reason, text_of


@pytest.fixture(scope="module")
def fuzz() -> Iterator[FuzzResult]:
    with tempfile.TemporaryDirectory(prefix="boxlite-fuzz-") as root:
        yield run_fuzz(calls=500, stdio_share=0.1, batch=100, seed_value=20261129, root=Path(root))


def test_no_crash_and_no_hang(fuzz: FuzzResult) -> None:
    assert [(c.tool, c.arguments, c.message) for c in fuzz.crashes] == []


def test_server_stays_responsive_writes_only_inside_its_roots_and_leaks_no_box(
    fuzz: FuzzResult,
) -> None:
    assert fuzz.batches >= 5
    assert fuzz.unresponsive == [] and fuzz.maintenance_failures == []
    assert fuzz.sentinel_problems == []
    assert fuzz.leftovers == {"memory": "", "stdio": ""}


def test_calls_cover_every_tool_both_shapes_and_both_transports(fuzz: FuzzResult) -> None:
    assert fuzz.calls == 500 and 40 <= fuzz.by_target["stdio"] <= 60
    assert len(fuzz.stats) == 28 and all(s.calls >= 5 for s in fuzz.stats.values())
    assert fuzz.by_shape["valid"] >= 150 and len(fuzz.by_shape) >= 8
    assert sum(s.ok for s in fuzz.stats.values()) >= 50  # valid-shaped calls reach the runtime
    assert sum(len(s.messages) for s in fuzz.stats.values()) >= 60


def test_generated_arguments_follow_the_schema_or_break_it_on_purpose() -> None:
    import jsonschema

    schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["box"],
        "properties": {
            "box": {"type": "string", "minLength": 1, "maxLength": 256},
            "cursor": {"type": "integer", "minimum": 0},
            "wait": {
                "anyOf": [
                    {"type": "number", "exclusiveMinimum": 0, "maximum": 60},
                    {"type": "null"},
                ]
            },
        },
    }
    seen: list[Any] = []

    @settings(
        max_examples=60,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(arguments(schema, pool=Pool()), hostile(schema, Pool()))
    def check(valid: dict[str, Any], broken: tuple[str, Any]) -> None:
        jsonschema.validate(valid, schema)
        seen.append(broken[0])

    check()
    assert len(set(seen)) >= 5


def test_copy_out_of_big_host_directories_is_tamed() -> None:
    assert tame("copy_out", {"box": "b", "box_path": "/usr/../", "host_path": "x"})[1]
    assert tame("copy_out", {"box": "b", "box_path": "/root", "host_path": "x"})[1]
    assert not tame("copy_out", {"box": "b", "box_path": "/tmp/x", "host_path": "x"})[1]
    assert not tame("file_read", {"box": "b", "path": "/"})[1]  # refused from its size
    assert not tame("file_read", {"box": "b", "path": "/etc/hostname"})[1]
    assert not tame("exec_run", {"box": "b", "command": "ls /"})[1]


def test_messages_are_normalised_and_crashes_recognised() -> None:
    prefix = "Error executing tool box_info: NotFoundError: No box. Your boxes:"
    a = normalise(f"{prefix} a (0123456789ab).")
    b = normalise(f"{prefix} b (ba9876543210), c.")
    assert a == b
    assert crash_reason("box_info", "Error executing tool box_info") is not None
    assert crash_reason("box_info", "Traceback (most recent call last):\n  x") is not None
    assert crash_reason("box_info", "fine, token abc123", secrets=["abc123"]) is not None
    assert crash_reason("box_info", "Error executing tool box_info: NotFoundError: no") is None


@pytest.mark.anyio
async def test_nul_bytes_in_arguments_are_clear_errors(tmp_path: Path) -> None:
    """Found by the fuzz (ValueError from subprocess crashed the tools); fixed in d904819
    and the bwrap runtime's NUL checks. A regression test now."""
    async with factory(tmp_path) as runtime:
        server = build_server(runtime, Settings())
        async with Client(server) as client:
            await client.call_tool("box_create", {"name": "dev"})
            failures = []
            for tool, args in [
                ("exec_run", {"box": "dev", "command": "echo a\x00b"}),
                ("exec_run", {"box": "dev", "argv": ["echo", "\x00"]}),
                ("exec_run", {"box": "dev", "command": "env", "env": {"A": "x\x00y"}}),
                ("exec_start", {"box": "dev", "command": "\x00"}),
                ("file_write", {"box": "dev", "path": "/tmp/a\x00b", "content": "x"}),
                ("file_read", {"box": "dev", "path": "/etc/host\x00name"}),
            ]:
                result = await client.call_tool(tool, args)
                message = text_of(result)
                if not result.is_error or crash_reason(tool, message) is not None:
                    failures.append((tool, json.dumps(args), message))
            assert failures == []


def test_the_command_prints_its_table() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tools.fuzz_tools",
            "--calls",
            "60",
            "--stdio-share",
            "0.2",
            "--batch",
            "30",
            "--seed",
            "3",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert "| tool | calls | ok | isError | protocol error | crashes |" in done.stdout
    assert "| **total** | 60 |" in done.stdout
    verdict = done.stdout.strip().splitlines()
    assert ("PASSED" in verdict) == (done.returncode == 0), done.stdout[-2000:] + done.stderr
