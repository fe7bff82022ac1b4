"""Build hook: ship the top-level ``prompts/`` inside the wheel as ``boxlite_mcp/prompts/``.

The prompt templates sit next to ``boxlite_mcp/`` and ``tools/`` (the project's
layout), but an installed server must find them inside its package. pyproject.toml
cannot map a directory from outside the package into it while packages are found
automatically, so the build copies them; everything else is in pyproject.toml.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

PROMPTS = Path(__file__).resolve().parent / "prompts"


class BuildWithPrompts(build_py):
    """``build_py`` plus the prompt templates."""

    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / "boxlite_mcp" / "prompts"
        target.mkdir(parents=True, exist_ok=True)
        for source in sorted(PROMPTS.glob("*.md")):
            self.copy_file(str(source), str(target / source.name))


setup(cmdclass={"build_py": BuildWithPrompts})
