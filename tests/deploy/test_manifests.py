"""The container recipe and the Kubernetes example name only settings and flags that exist."""

from __future__ import annotations

import re
from typing import Any

import yaml

from boxlite_mcp.app.cli import FLAG_FIELDS
from boxlite_mcp.settings import Settings, env_name
from tools.benchlib.procs import REPO

KNOWN = {env_name(field) for field in Settings.model_fields} | {
    "BOXLITE_MCP_AUTH_TOKENS",
    "BOXLITE_REST_URL",
    "BOXLITE_API_KEY",
    "PYTHONUNBUFFERED",
}


def _containers() -> list[dict[str, Any]]:
    documents = list(yaml.safe_load_all((REPO / "deploy" / "kubernetes.yaml").read_text()))
    deployment = next(d for d in documents if d["kind"] == "Deployment")
    containers: list[dict[str, Any]] = deployment["spec"]["template"]["spec"]["containers"]
    return containers


def test_kubernetes_example_uses_real_settings_and_flags() -> None:
    for container in _containers():
        for variable in container.get("env", []):
            assert variable["name"] in KNOWN, variable["name"]
        for arg in container.get("args", []):
            if arg.startswith("--"):
                assert arg in FLAG_FIELDS, arg


def test_containerfile_sets_real_settings() -> None:
    text = (REPO / "deploy" / "Containerfile").read_text()
    block = re.search(r"^ENV (.*?)(?:\n(?!\s))", text, re.M | re.S)
    assert block is not None
    names = re.findall(r"([A-Z_]+)=", block.group(1))
    assert names and all(name in KNOWN for name in names), names
    assert "BOXLITE_MCP_HOST=0.0.0.0" in text  # exposed: the image needs bearer tokens
