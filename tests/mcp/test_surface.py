"""What a client discovers: tools with schemas and hints, resources, prompts, instructions."""

from __future__ import annotations

import json
from typing import Any

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from boxlite_mcp import __version__
from boxlite_mcp.server.prompts import load

from .conftest import ServerFactory, ok

pytestmark = pytest.mark.anyio

TOOLS = {
    "box_create", "box_list", "box_info", "box_start", "box_stop", "box_remove", "box_clone",
    "box_export", "box_import", "box_expose", "exec_run", "exec_start", "exec_read", "exec_write",
    "exec_signal", "exec_kill", "file_read", "file_write", "copy_in", "copy_out",
    "snapshot_create", "snapshot_list", "snapshot_restore", "snapshot_remove", "box_metrics",
    "runtime_info", "python_run", "python_reset",
}  # fmt: skip
READ_ONLY = {
    "box_list",
    "box_info",
    "box_metrics",
    "runtime_info",
    "snapshot_list",
    "exec_read",
    "file_read",
}
DESTRUCTIVE = {
    "box_remove", "box_stop", "snapshot_restore", "snapshot_remove", "exec_run", "exec_start",
    "exec_write", "exec_signal", "exec_kill", "file_write", "copy_in", "copy_out",
    "python_run", "python_reset",
}  # fmt: skip


def _described(schema: dict[str, Any], defs: dict[str, Any]) -> list[str]:
    """Property paths in a schema that lack a description."""
    missing = []
    for name, prop in schema.get("properties", {}).items():
        if "description" not in prop:
            missing.append(name)
        ref = prop.get("$ref") or next(
            (a.get("$ref") for a in prop.get("anyOf", []) if "$ref" in a), None
        )
        if ref:
            missing += [f"{name}.{m}" for m in _described(defs[ref.split("/")[-1]], defs)]
    return missing


async def test_tools_are_fully_described(make_server: ServerFactory, mode: str) -> None:
    async with Client(make_server(), mode=mode) as client:
        tools = (await client.list_tools()).tools
        assert {t.name for t in tools} == TOOLS
        for tool in tools:
            assert tool.title and tool.description and len(tool.description) > 40, tool.name
            assert tool.output_schema is not None, tool.name
            assert tool.input_schema.get("additionalProperties") is False, tool.name
            assert not _described(tool.input_schema, tool.input_schema.get("$defs", {})), tool.name
            hints = tool.annotations
            assert hints is not None and hints.open_world_hint is False
            assert hints.read_only_hint is (tool.name in READ_ONLY), tool.name
            assert bool(hints.destructive_hint) is (tool.name in DESTRUCTIVE), tool.name
        assert client.instructions and "box_create" in client.instructions


async def test_resources(make_server: ServerFactory, mode: str) -> None:
    async with Client(make_server(), mode=mode) as client:
        listed = await client.list_resources()
        assert [str(r.uri) for r in listed.resources] == ["boxlite://boxes"]
        templates = {
            t.uri_template for t in (await client.list_resource_templates()).resource_templates
        }
        assert templates == {
            "boxlite://boxes/{box}",
            "boxlite://boxes/{box}/files/{+path}",
            "boxlite://executions/{execution_id}/output",
        }
        empty = await client.read_resource("boxlite://boxes")
        assert json.loads(empty.contents[0].text) == {"boxes": []}  # type: ignore[union-attr]

        box = (await ok(client, "box_create", name="dev"))["box"]
        await ok(client, "file_write", box="dev", path="/root/notes/a.txt", content="note\n")
        await ok(client, "exec_run", box="dev", command="printf '\\377\\000' > /root/bin")

        boxes = json.loads((await client.read_resource("boxlite://boxes")).contents[0].text)  # type: ignore[union-attr]
        assert [b["id"] for b in boxes["boxes"]] == [box["id"]]
        one = json.loads((await client.read_resource("boxlite://boxes/dev")).contents[0].text)  # type: ignore[union-attr]
        assert one["id"] == box["id"] and one["lifetime"]["persist"] is False

        text_file = (
            await client.read_resource("boxlite://boxes/dev/files/root/notes/a.txt")
        ).contents[0]
        assert getattr(text_file, "text", None) == "note\n"
        binary = (
            await client.read_resource(f"boxlite://boxes/{box['id']}/files/root/bin")
        ).contents[0]
        assert getattr(binary, "blob", None) == "/wA="

        run = await ok(client, "exec_run", box="dev", command="echo out; echo err >&2")
        output = (await client.read_resource(run["output_uri"])).contents[0]
        assert sorted(getattr(output, "text", "").splitlines()) == ["err", "out"]

        for uri, expected in [
            ("boxlite://boxes/nope", "No box with that id or name"),
            ("boxlite://boxes/dev/files/root/missing", "does not exist"),
            ("boxlite://executions/exec-123/output", "No execution"),
        ]:
            with pytest.raises(MCPError, match=expected):
                await client.read_resource(uri)


async def test_prompts(make_server: ServerFactory, mode: str) -> None:
    async with Client(make_server(), mode=mode) as client:
        prompts = {p.name: p for p in (await client.list_prompts()).prompts}
        assert set(prompts) == {"run_tests", "risky_change", "analyse_data", "debug_command"}
        for prompt in prompts.values():
            assert prompt.description and prompt.arguments
            assert any(a.required for a in prompt.arguments)
            assert all(a.description for a in prompt.arguments)
        got = await client.get_prompt(
            "run_tests", {"project_path": "/srv/app", "test_command": "pytest -q"}
        )
        body = got.messages[0].content.text  # type: ignore[union-attr]
        assert "/srv/app" in body and "pytest -q" in body and "(not given)" in body
        assert "{{" not in body
        with pytest.raises(MCPError, match="project_path"):
            await client.get_prompt("run_tests", {})
        with pytest.raises(MCPError, match=r"No prompt named 'nope'.*run_tests") as unknown:
            await client.get_prompt("nope", {})
        assert unknown.value.error.code == -32602


async def test_server_identifies_itself(make_server: ServerFactory, mode: str) -> None:
    async with Client(make_server(), mode=mode) as client:
        info = client.server_info
        assert info is not None
        assert info.name == "boxlite-mcp" and info.version == __version__


def test_prompt_files_ship_and_parse() -> None:
    files = load()
    assert [f.name for f in files] == ["analyse_data", "debug_command", "risky_change", "run_tests"]
    for prompt in files:
        placeholders = set(__import__("re").findall(r"\{\{\s*(\w+)\s*\}\}", prompt.body))
        assert placeholders <= {a.name for a in prompt.arguments}, prompt.name
