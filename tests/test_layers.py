"""The direction of imports is the architecture; this test keeps it that way.

app wires transport and server together; server -> sessions -> runtime contract;
settings is a leaf every layer may read (the names of runtimes, transports and
environment variables live there); each runtime implementation imports only the
contract, the shared runtime code (``runtime/shared``, and ``runtime/network``:
the egress policy, proxy, DNS and secrets every runtime's networking uses) and
settings. Every import in ``boxlite_mcp/``
(function-level ones included) is resolved with ``ast`` and checked against the
table below. A new package must
be placed in a layer here before it can land.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "boxlite_mcp"
CONTRACT = {"boxlite_mcp.runtime", "boxlite_mcp.runtime.base", "boxlite_mcp.runtime.types"}
CONTRACT |= {"boxlite_mcp.runtime.errors"}
IMPLEMENTATIONS = ("bwrap", "rest", "local")
#: Runtime code shared by the implementations (none of them in particular).
SHARED = ("runtime.shared", "runtime.network")

#: layer -> the layers it may import (besides itself).
ALLOWED: dict[str, set[str]] = {
    "root": set(),
    "settings": set(),
    "app": {"root", "settings", "transport", "server", "sessions", "runtime"}
    | set(SHARED)
    | {f"runtime.{name}" for name in IMPLEMENTATIONS},
    "transport": {"root", "settings"},
    "server": {"root", "settings", "sessions", "runtime"},
    "sessions": {"settings", "runtime"},
    "runtime": {"settings"},
    **{name: {"settings", "runtime"} for name in SHARED},
    **{f"runtime.{name}": {"settings", "runtime", *SHARED} for name in IMPLEMENTATIONS},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> str | None:
    """The layer a module of ours belongs to; None when the table does not place it."""
    parts = module.split(".")
    if module in ("boxlite_mcp", "boxlite_mcp.__init__"):
        return "root"
    if module == "boxlite_mcp.__main__":
        return "app"
    if module == "boxlite_mcp.settings":
        return "settings"
    if len(parts) >= 2 and parts[1] in ("app", "transport", "server", "sessions"):
        return parts[1]
    if module in CONTRACT:
        return "runtime"
    if len(parts) >= 3 and parts[1] == "runtime" and f"runtime.{parts[2]}" in ALLOWED:
        return f"runtime.{parts[2]}"
    return None


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in PACKAGE.rglob("*.py")}


def imports_of(path: Path, module: str, known: set[str]) -> set[str]:
    """Every module of ours that ``module`` imports (``from pkg import mod`` names ``mod``)."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("boxlite_mcp")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                source = ".".join([*base, *([node.module] if node.module else [])])
            elif (node.module or "").startswith("boxlite_mcp"):
                source = node.module or ""
            else:
                continue
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                found.add(sub if sub in known else source)
    return found


def violations() -> list[str]:
    known = modules()
    problems = []
    for module, path in sorted(known.items()):
        here = layer_of(module)
        if here is None:
            problems.append(f"{module}: in no layer; place it in tests/test_layers.py")
            continue
        for target in sorted(imports_of(path, module, set(known))):
            there = layer_of(target)
            if there is None or (there != here and there not in ALLOWED[here]):
                problems.append(f"{module} ({here}) imports {target} ({there})")
    return problems


def test_every_import_points_down_the_layers() -> None:
    assert violations() == []


def test_settings_imports_nothing_of_ours() -> None:
    path = PACKAGE / "settings.py"
    assert imports_of(path, "boxlite_mcp.settings", set(modules())) == set()


def test_an_upward_import_is_caught(tmp_path: Path) -> None:
    """The checker itself can fail: a sessions module importing the server is reported."""
    bad = tmp_path / "bad.py"
    bad.write_text("from ..server.errors import clean\nfrom . import registry\n")
    known = set(modules())
    found = imports_of(bad, "boxlite_mcp.sessions.bad", known)
    assert found == {"boxlite_mcp.server.errors", "boxlite_mcp.sessions.registry"}
    assert layer_of("boxlite_mcp.server.errors") not in ALLOWED["sessions"]
    assert layer_of("boxlite_mcp.runtime.rest.box") not in ALLOWED["runtime.bwrap"]
    assert layer_of("boxlite_mcp.app.cli") not in ALLOWED["runtime"]
