"""Prompt templates: Markdown files in the top-level ``prompts/`` with a small header.

An installed wheel carries them as ``boxlite_mcp/prompts/`` (``setup.py`` copies
them at build time); a source checkout (or an editable install) reads them from
the top-level folder.

A file starts with a header between ``---`` lines::

    ---
    name: run_tests
    title: Run a project's tests in a fresh box
    description: One sentence.
    argument: project_path (required) - What it is
    argument: image - What it is (optional arguments have no marker)
    ---
    Body with {{project_path}} placeholders.

Missing optional arguments render as ``(not given)``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.prompts.base import Prompt, PromptArgument
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS

NOT_GIVEN = "(not given)"
_ARGUMENT = re.compile(
    r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*(?P<req>\(required\))?\s*-\s*(?P<desc>.+)$"
)
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


@dataclass
class PromptFile:
    name: str
    title: str
    description: str
    body: str
    arguments: list[PromptArgument] = field(default_factory=list)

    def render(self, values: dict[str, Any]) -> str:
        known = {arg.name for arg in self.arguments}

        def fill(match: re.Match[str]) -> str:
            key = match[1]
            if key not in known:
                return match[0]
            value = values.get(key)
            return str(value).strip() if value not in (None, "") else NOT_GIVEN

        return _PLACEHOLDER.sub(fill, self.body).strip() + "\n"


def parse(text: str, source: str) -> PromptFile:
    """Read one prompt file; ValueError names the file and the problem."""
    lines = text.splitlines()
    if not lines or lines[0].strip() != "---":
        raise ValueError(f"{source}: must start with a '---' header")
    try:
        end = lines.index("---", 1)
    except ValueError:
        raise ValueError(f"{source}: header has no closing '---'") from None
    header: dict[str, str] = {}
    arguments: list[PromptArgument] = []
    for line in lines[1:end]:
        if not line.strip():
            continue
        key, sep, value = line.partition(":")
        if not sep:
            raise ValueError(f"{source}: header line without ':': {line!r}")
        key, value = key.strip(), value.strip()
        if key == "argument":
            match = _ARGUMENT.match(value)
            if match is None:
                raise ValueError(f"{source}: bad argument line {value!r}")
            arguments.append(
                PromptArgument(
                    name=match["name"], description=match["desc"], required=bool(match["req"])
                )
            )
        else:
            header[key] = value
    missing = {"name", "description"} - header.keys()
    if missing:
        raise ValueError(f"{source}: header lacks {', '.join(sorted(missing))}")
    body = "\n".join(lines[end + 1 :])
    return PromptFile(
        name=header["name"],
        title=header.get("title", header["name"]),
        description=header["description"],
        body=body,
        arguments=arguments,
    )


#: The templates in a source checkout, next to the package.
SOURCE_FOLDER = Path(__file__).resolve().parents[2] / "prompts"


def folder() -> Traversable:
    """Where the templates are: inside the installed package, else the source checkout."""
    packaged = resources.files("boxlite_mcp") / "prompts"
    return packaged if packaged.is_dir() else SOURCE_FOLDER


def load() -> list[PromptFile]:
    """Every prompt shipped with the server, sorted by name."""
    found = [
        parse(entry.read_text(encoding="utf-8"), entry.name)
        for entry in folder().iterdir()
        if entry.name.endswith(".md")
    ]
    return sorted(found, key=lambda p: p.name)


class MarkdownPrompt(Prompt):
    """A prompt whose missing arguments are a clear invalid-params error, not a crash."""

    async def render(self, arguments: dict[str, Any] | None, context: Any) -> Any:
        given = {k for k, v in (arguments or {}).items() if v not in (None, "")}
        missing = [a for a in self.arguments or [] if a.required and a.name not in given]
        if missing:
            needed = "; ".join(f"{a.name} ({a.description})" for a in missing)
            raise MCPError(
                code=INVALID_PARAMS,
                message=f"The prompt {self.name} needs these arguments: {needed}.",
            )
        return await super().render(arguments, context)


def _renderer(prompt_file: PromptFile) -> Any:
    def render(**values: Any) -> str:
        return prompt_file.render(values)

    return render


def register(server: MCPServer[Any]) -> None:
    for prompt_file in load():
        server.add_prompt(
            MarkdownPrompt(
                name=prompt_file.name,
                title=prompt_file.title,
                description=prompt_file.description,
                arguments=prompt_file.arguments,
                fn=_renderer(prompt_file),
                context_kwarg=None,
            )
        )
