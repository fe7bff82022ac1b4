"""Host-side file handling around the SDK's copy and export calls.

The SDK writes straight to the destination it is given. The contract wants more:
copies out never write outside the destination (no links out) and are
all-or-nothing, so the SDK writes into a staging directory beside the
destination, the result is checked, and only then moved into place with renames
on the same filesystem. Exports go to a partial file renamed at the end.
"""

from __future__ import annotations

import os
import posixpath
import secrets
import shutil
import stat
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import anyio

from ..errors import (
    BoxliteError,
    InternalError,
    InvalidArgumentError,
    NotFoundError,
    not_a_regular_file,
    quote_reference,
    too_big_for_transfer,
)
from ..shared.boxpaths import check_copy_destination


def copy_in_source(host_src: Path, box_dest: str) -> str:
    """The source path to hand the SDK, after checking both ends of a copy in.

    A directory is spelled ``DIR/.`` so that its *contents* are copied (the SDK
    follows ``docker cp``: a bare ``DIR`` would land as ``box_dest/DIR``).
    """
    check_copy_destination(box_dest)
    if not host_src.exists() and not host_src.is_symlink():
        raise NotFoundError(f"host path {host_src} does not exist")
    if host_src.is_dir():
        return f"{host_src}/."
    if not host_src.is_file():
        raise InvalidArgumentError(f"host path {host_src} is not a regular file or directory")
    return str(host_src)


@asynccontextmanager
async def staged_copy_out(box_src: str, host_dest: Path) -> AsyncIterator[Path]:
    """Yield a fresh path for the SDK to copy to; on success, move the result to
    ``host_dest`` with the contract's semantics; on failure, leave nothing behind."""
    staging = _CopyOut(box_src, host_dest)
    try:
        yield staging.staged
        staging.finish()
    except BaseException:
        staging.abort()
        raise
    finally:
        staging.cleanup()


@asynccontextmanager
async def staged_file(final: Path) -> AsyncIterator[Path]:
    """Yield a partial path beside ``final``; rename it to ``final`` on success."""
    created = _make_parents(final.parent)
    partial = final.parent / f".{final.stem}.partial-{secrets.token_hex(6)}.boxlite"
    try:
        yield partial
        _commit(partial, final)
    except BaseException:
        _discard(partial, created)
        raise


#: How often a read through the SDK's copy checks how much has landed.
READ_WATCH_SECONDS = 0.05
#: Symlinks followed (in the box) before a read gives up.
MAX_SYMLINK_HOPS = 8


async def read_through_copy(
    box_src: str, max_bytes: int, copy: Callable[[str, Path], Awaitable[None]]
) -> bytes:
    """``Box.read_file`` on the SDK, whose only file API is a copy to a host path.

    The SDK takes no size cap and streams no bytes to Python, so the copy goes to
    a private temporary directory that is watched while it fills: once more than
    ``max_bytes`` have landed the call is cancelled and the directory removed.
    What the SDK's worker still had in flight at that moment may land in the
    removed directory before it notices, so the host disk holds at most the cap
    plus one watch interval of transfer, never the whole file. A symlink comes
    out as a link (the SDK does not follow it); it is followed in the box.
    """
    asked = box_src
    for _ in range(MAX_SYMLINK_HOPS):
        with tempfile.TemporaryDirectory(prefix="boxlite-mcp-read-") as tmp:
            staged = Path(tmp) / "out"
            over = await _copy_capped(copy, box_src, staged, max_bytes)
            if over or _landed(staged) > max_bytes:  # stopped part-way: the size is unknown
                size = staged.stat().st_size if staged.is_file() and not over else None
                raise too_big_for_transfer(quote_reference(asked), size, max_bytes)
            if staged.is_symlink():
                target = os.readlink(staged)
                box_src = posixpath.join(posixpath.dirname(box_src), target)
                continue
            if not staged.exists():
                raise NotFoundError(f"{quote_reference(asked)} does not exist in the box")
            if not staged.is_file():
                raise not_a_regular_file(asked, directory=staged.is_dir())
            return await anyio.Path(staged).read_bytes()
    raise InvalidArgumentError(
        f"{quote_reference(asked)} is a chain of more than {MAX_SYMLINK_HOPS} symlinks; "
        "read the file it ends at"
    )


async def _copy_capped(
    copy: Callable[[str, Path], Awaitable[None]], box_src: str, staged: Path, max_bytes: int
) -> bool:
    """Run the copy while watching ``staged``; True when it was stopped at the cap."""
    over = False
    failed: BoxliteError | None = None
    async with anyio.create_task_group() as tg:

        async def watch() -> None:
            nonlocal over
            while True:
                await anyio.sleep(READ_WATCH_SECONDS)
                if _landed(staged) > max_bytes:
                    over = True
                    tg.cancel_scope.cancel()

        tg.start_soon(watch)
        try:
            await copy(box_src, staged)
        except BoxliteError as exc:  # raised as itself, not inside an exception group
            failed = exc
        tg.cancel_scope.cancel()
    if failed is not None and not over:
        raise failed
    return over


def _landed(path: Path) -> int:
    """Bytes written under ``path`` so far (a file, or a tree)."""
    try:
        if path.is_symlink() or not path.is_dir():
            return path.lstat().st_size if path.is_file() or path.is_symlink() else 0
        return sum((Path(d) / f).lstat().st_size for d, _, names in os.walk(path) for f in names)
    except OSError:
        return 0  # still being created, or gone


def export_target(dest: Path, name: str) -> Path:
    """Where an export to ``dest`` goes: ``dest/<name>.boxlite`` when it is a directory."""
    return dest / f"{name}.boxlite" if dest.is_dir() else dest


def archive_exists(archive: Path) -> bool:
    return archive.is_file()


class _CopyOut:
    """A staging directory beside a copy-out destination, and moving its result in place."""

    def __init__(self, box_src: str, host_dest: Path) -> None:
        self.box_src = box_src
        self.host_dest = host_dest
        if host_dest.exists() and not host_dest.is_dir() and not host_dest.is_file():
            raise InvalidArgumentError(f"host destination {host_dest} is not a file or directory")
        into_dir = host_dest.is_dir()
        self.created = _make_parents(host_dest if into_dir else host_dest.parent)
        self.root = (host_dest if into_dir else host_dest.parent) / (
            f".boxlite-copy-{secrets.token_hex(6)}"
        )
        self.root.mkdir()
        self.staged = self.root / "out"

    def finish(self) -> None:
        staged, host_dest, box_src = self.staged, self.host_dest, self.box_src
        if not staged.exists() and not staged.is_symlink():
            raise NotFoundError(f"box path {box_src!r} produced nothing to copy")
        if staged.is_dir() and not staged.is_symlink():
            _check_tree(staged, box_src)
            _merge_directory(staged, host_dest)
            return
        target = (
            host_dest / posixpath.basename(box_src.rstrip("/")) if host_dest.is_dir() else host_dest
        )
        _check_entry(staged, Path(target.name), box_src)
        if target.is_dir() and not target.is_symlink():
            raise InvalidArgumentError(
                f"cannot copy the file {box_src!r} onto the directory {target}"
            )
        os.replace(staged, target)

    def abort(self) -> None:
        self.cleanup()
        for directory in reversed(self.created):
            _remove_empty(directory)

    def cleanup(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def _commit(partial: Path, final: Path) -> None:
    if not partial.is_file():
        raise InternalError(f"the export did not write {final}")
    os.replace(partial, final)


def _discard(partial: Path, created: list[Path]) -> None:
    partial.unlink(missing_ok=True)
    for directory in reversed(created):
        _remove_empty(directory)


def settle_export(written: Path, partial: Path) -> None:
    """Make sure the archive the SDK wrote is at ``partial``."""
    if written != partial and written.is_file() and not partial.exists():
        os.replace(written, partial)


def _make_parents(directory: Path) -> list[Path]:
    """``mkdir -p``; returns the directories it created, outermost first."""
    missing: list[Path] = []
    probe = directory
    while not probe.exists():
        missing.append(probe)
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise InvalidArgumentError(f"host path {probe} is a file, not a directory")
    missing.reverse()
    for path in missing:
        path.mkdir()
    return missing


def _remove_empty(directory: Path) -> None:
    try:
        directory.rmdir()
    except OSError:
        pass


def _check_tree(root: Path, box_src: str) -> None:
    for directory, dirnames, filenames in os.walk(root):
        for name in (*dirnames, *filenames):
            path = Path(directory) / name
            _check_entry(path, path.relative_to(root), box_src)


def _check_entry(path: Path, relative: Path, box_src: str) -> None:
    """Refuse special files and symlinks that point outside the destination."""
    mode = path.lstat().st_mode
    if stat.S_ISLNK(mode):
        target = os.readlink(path)
        resolved = posixpath.normpath(
            posixpath.join(posixpath.dirname(relative.as_posix()), target)
        )
        if posixpath.isabs(target) or resolved == ".." or resolved.startswith("../"):
            raise InvalidArgumentError(
                f"copying {box_src!r} out refused: the symlink {relative.as_posix()} -> {target} "
                "points outside the destination; nothing was copied (copy the files it points "
                "to instead)"
            )
    elif not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise InvalidArgumentError(
            f"copying {box_src!r} out refused: {relative.as_posix()} is a special file "
            "(device, fifo or socket); nothing was copied"
        )


def _merge_directory(source: Path, dest: Path) -> None:
    """Move ``source``'s entries into ``dest`` (created if missing), merging directories."""
    if dest.exists() and not dest.is_dir():
        raise InvalidArgumentError(f"cannot copy a directory onto the file {dest}")
    dest.mkdir(exist_ok=True)
    for entry in sorted(source.iterdir()):
        target = dest / entry.name
        if (
            entry.is_dir()
            and not entry.is_symlink()
            and target.is_dir()
            and not target.is_symlink()
        ):
            _merge_directory(entry, target)
            continue
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        os.replace(entry, target)
