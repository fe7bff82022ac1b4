"""File tools: small files in-band (text or base64), host paths by copy within allowed roots."""

from __future__ import annotations

import base64
import binascii
import posixpath
import tempfile
from pathlib import Path
from typing import Literal

import anyio

from ...runtime.errors import BoxliteError, InvalidArgumentError, NotFoundError, UnsupportedError
from ...runtime.types import ExecRequest
from ...sessions.registry import BoxEntry
from ..models import (
    CopyInInput,
    CopyOutInput,
    CopyResult,
    FileReadInput,
    FileReadResult,
    FileWriteInput,
    FileWriteResult,
)
from ._base import ModelTool, Services, ToolContext, make_tool

#: Ceiling for the quick `stat` that checks a file before it is transferred.
STAT_TIMEOUT_SECONDS = 10.0


async def _stat(entry: BoxEntry, path: str) -> tuple[int, str] | None:
    """(size, kind) of a box path, None when the box cannot say (no stat there).

    Asking first keeps a huge file from being copied to the host only to be refused.
    """
    request = ExecRequest(
        command="stat",
        args=["-L", "-c", "%s %F", "--", path],
        working_dir="/",  # the box's default working_dir may not exist
        timeout_seconds=STAT_TIMEOUT_SECONDS,
    )
    try:
        execution = await entry.box.exec(request)
        out = bytearray()
        err = bytearray()
        with anyio.move_on_after(STAT_TIMEOUT_SECONDS):
            async for chunk in execution.output():
                (out if chunk.stream == "stdout" else err).extend(chunk.data[:4096])
        result = await execution.wait()
    except BoxliteError:
        return None
    if result.exit_code != 0:
        if b"No such file" in err:
            raise NotFoundError(f"{path} does not exist in the box.")
        return None
    size, _, kind = out.decode(errors="replace").strip().partition(" ")
    return (int(size), kind) if size.isdigit() else None


def _too_big(path: str, size: int, cap: int) -> InvalidArgumentError:
    return InvalidArgumentError(
        f"{path} is {size} bytes, over the {cap}-byte limit for in-band transfer. Read part "
        "of it with exec_run (head, tail, grep, sed -n), or use copy_out if host paths "
        "are allowed."
    )


async def read_box_file(services: Services, entry: BoxEntry, path: str) -> bytes:
    """A box file's bytes, within the in-band cap, via a private temporary directory."""
    cap = services.settings.file_transfer_cap_bytes
    stat = await _stat(entry, path)
    if stat is None:  # never copy a path of unknown size out just to refuse it afterwards
        raise UnsupportedError(
            f"Cannot tell the size of {path} in this box (no working `stat` there). "
            "Read it with exec_run (cat, head, base64) instead."
        )
    size, kind = stat
    if kind == "directory":
        raise InvalidArgumentError(
            f"{path} is a directory. List it with exec_run(command='ls -la {path}'), "
            "or read a file inside it."
        )
    if size > cap:
        raise _too_big(path, size, cap)
    with tempfile.TemporaryDirectory(prefix="boxlite-mcp-read-") as tmp:
        local = Path(tmp) / "content"
        await entry.box.copy_out(path, local)
        if local.is_dir():
            raise InvalidArgumentError(f"{path} is a directory, not a file.")
        size = local.stat().st_size
        if size > cap:
            raise _too_big(path, size, cap)
        data = await anyio.Path(local).read_bytes()
    entry.touch()
    return data


def _encode(data: bytes, wanted: str) -> tuple[str, Literal["text", "base64"]]:
    if wanted == "text":
        return data.decode("utf-8", errors="replace"), "text"
    if wanted == "auto":
        try:
            return data.decode("utf-8"), "text"
        except UnicodeDecodeError:
            pass
    return base64.b64encode(data).decode("ascii"), "base64"


def tools(services: Services) -> list[ModelTool]:
    registry = services.registry
    cap = services.settings.file_transfer_cap_bytes

    async def file_read(args: FileReadInput, ctx: ToolContext) -> FileReadResult:
        who = services.caller(ctx)
        entry = await registry.resolve(who.owner, args.box)
        data = await read_box_file(services, entry, args.path)
        content, encoding = _encode(data, args.encoding)
        return FileReadResult(
            box_id=entry.id,
            path=args.path,
            size_bytes=len(data),
            encoding=encoding,
            content=content,
        )

    async def file_write(args: FileWriteInput, ctx: ToolContext) -> FileWriteResult:
        who = services.caller(ctx)
        if args.path.endswith("/"):
            raise InvalidArgumentError(
                f"{args.path} ends with '/': give the full file path, e.g. {args.path}file.txt."
            )
        if args.encoding == "base64":
            try:
                data = base64.b64decode(args.content, validate=True)
            except (binascii.Error, ValueError):
                raise InvalidArgumentError("content is not valid base64.") from None
        else:
            data = args.content.encode()
        if len(data) > cap:
            raise _too_big("content", len(data), cap)
        entry = await registry.resolve(who.owner, args.box)
        stat = await _stat_or_missing(entry, args.path)
        if stat is not None and stat[1] == "directory":
            raise InvalidArgumentError(f"{args.path} is a directory in the box; give a file path.")
        with tempfile.TemporaryDirectory(prefix="boxlite-mcp-write-") as tmp:
            local = Path(tmp) / (posixpath.basename(args.path) or "content")
            await anyio.Path(local).write_bytes(data)
            await entry.box.copy_in(local, args.path)
        entry.touch()
        return FileWriteResult(box_id=entry.id, path=args.path, bytes_written=len(data))

    async def copy_in(args: CopyInInput, ctx: ToolContext) -> CopyResult:
        who = services.caller(ctx)
        source = services.host_paths.for_owner(who.owner).confine(
            args.host_path, must_exist=True, purpose="source"
        )
        entry = await registry.resolve(who.owner, args.box)
        await entry.box.copy_in(source, args.box_path)
        entry.touch()
        return CopyResult(box_id=entry.id, source=str(source), destination=args.box_path)

    async def copy_out(args: CopyOutInput, ctx: ToolContext) -> CopyResult:
        who = services.caller(ctx)
        dest = services.host_paths.for_owner(who.owner).confine(
            args.host_path, purpose="destination"
        )
        if not dest.parent.is_dir():
            raise InvalidArgumentError(f"The host directory {str(dest.parent)!r} does not exist.")
        entry = await registry.resolve(who.owner, args.box)
        await entry.box.copy_out(args.box_path, dest)
        entry.touch()
        return CopyResult(box_id=entry.id, source=args.box_path, destination=str(dest))

    async def _stat_or_missing(entry: BoxEntry, path: str) -> tuple[int, str] | None:
        try:
            return await _stat(entry, path)
        except NotFoundError:
            return None

    allowed = services.host_paths.describe()
    return [
        make_tool(
            name="file_read",
            title="Read a file from a box",
            description=f"""
Read one file from a box and return its content in the result: text when it is UTF-8,
else base64 (or force one with encoding). Files over {cap} bytes are refused: read
parts with exec_run (head, tail, grep) instead. Paths are absolute paths in the box.""",
            input_model=FileReadInput,
            output_model=FileReadResult,
            handler=file_read,
            read_only=True,
        ),
        make_tool(
            name="file_write",
            title="Write a file into a box",
            description=f"""
Create or replace one file in a box with the given content (text, or base64 for
binary), up to {cap} bytes. Use it to put source code, configs or data into a box
before running them. The path is the full file path in the box, not a directory.""",
            input_model=FileWriteInput,
            output_model=FileWriteResult,
            handler=file_write,
            destructive=True,
            idempotent=True,
        ),
        make_tool(
            name="copy_in",
            title="Copy host files into a box",
            description=f"""
Copy a file or directory from the server's host into a box (for a whole project or
large data). Host paths must be inside the allowed roots: {allowed}. With none, this
tool is disabled (the operator enables it with --allow-path). A directory's contents
land in box_path.""",
            input_model=CopyInInput,
            output_model=CopyResult,
            handler=copy_in,
            destructive=True,
            idempotent=True,
        ),
        make_tool(
            name="copy_out",
            title="Copy files from a box to the host",
            description=f"""
Copy a file or directory from a box to the server's host (results, build artefacts).
Host paths must be inside the allowed roots: {allowed}. With none, this tool is
disabled (the operator enables it with --allow-path). Existing files are replaced.""",
            input_model=CopyOutInput,
            output_model=CopyResult,
            handler=copy_out,
            destructive=True,
            idempotent=True,
        ),
    ]
