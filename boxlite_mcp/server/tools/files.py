"""File tools: small files in-band (text or base64), host paths by copy within allowed roots."""

from __future__ import annotations

import base64
import binascii
import posixpath
import tempfile
from pathlib import Path
from typing import Annotated, Literal

import anyio
from mcp_types import CallToolResult, ContentBlock, TextContent

from ...runtime.errors import InvalidArgumentError, NotFoundError
from ...sessions.boxfiles import read_box_file, stat, too_big
from ..models import (
    CopyInInput,
    CopyOutInput,
    CopyResult,
    FileReadInput,
    FileReadResult,
    FileWriteInput,
    FileWriteResult,
)
from ..pictures import image_content, sniff
from ..services import Services, ToolCall
from .declare import ToolGroup

tools = ToolGroup()


def _encode(data: bytes, wanted: str) -> tuple[str, Literal["text", "base64"]]:
    if wanted == "text":
        return data.decode("utf-8", errors="replace"), "text"
    if wanted == "auto":
        try:
            return data.decode("utf-8"), "text"
        except UnicodeDecodeError:
            pass
    return base64.b64encode(data).decode("ascii"), "base64"


def _file_read_description(services: Services) -> str:
    cap = services.settings.file_transfer_cap_bytes
    return f"""
Read one file from a box and return its content in the result: text when it is UTF-8,
else base64 (or force one with encoding). Files over {cap} bytes are refused: read
parts with exec_run (head, tail, grep) instead. Paths are absolute paths in the box."""


@tools.tool(title="Read a file from a box", description=_file_read_description, read_only=True)
async def file_read(
    call: ToolCall, args: FileReadInput
) -> Annotated[CallToolResult, FileReadResult]:
    entry = await call.box(args.box)
    data = await read_box_file(entry, args.path, call.settings.file_transfer_cap_bytes)
    mime_type = sniff(data)
    # A picture is binary even when its bytes happen to decode as UTF-8.
    wanted = "base64" if mime_type is not None and args.encoding == "auto" else args.encoding
    content, encoding = _encode(data, wanted)
    result = FileReadResult(
        box_id=entry.id,
        path=args.path,
        size_bytes=len(data),
        encoding=encoding,
        content=content,
        mime_type=mime_type,
    )
    structured = result.model_dump(mode="json")
    blocks: list[ContentBlock]
    if mime_type is None:
        blocks = [TextContent(type="text", text=result.model_dump_json())]
    else:  # the picture itself, not its base64 a second time as text
        summary = f"{args.path}: {mime_type}, {len(data)} bytes (shown as an image)."
        blocks = [TextContent(type="text", text=summary), image_content(data, mime_type)]
    return CallToolResult(content=blocks, structured_content=structured, is_error=False)


def _file_write_description(services: Services) -> str:
    cap = services.settings.file_transfer_cap_bytes
    return f"""
Create or replace one file in a box with the given content (text, or base64 for
binary), up to {cap} bytes. Use it to put source code, configs or data into a box
before running them. The path is the full file path in the box, not a directory."""


@tools.tool(
    title="Write a file into a box",
    description=_file_write_description,
    destructive=True,
    idempotent=True,
)
async def file_write(call: ToolCall, args: FileWriteInput) -> FileWriteResult:
    cap = call.settings.file_transfer_cap_bytes
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
        raise too_big("content", len(data), cap)
    entry = await call.box(args.box)
    try:
        found = await stat(entry, args.path)
    except NotFoundError:
        found = None
    if found is not None and found[1] == "directory":
        raise InvalidArgumentError(f"{args.path} is a directory in the box; give a file path.")
    with tempfile.TemporaryDirectory(prefix="boxlite-mcp-write-") as tmp:
        local = Path(tmp) / (posixpath.basename(args.path) or "content")
        await anyio.Path(local).write_bytes(data)
        await entry.box.copy_in(local, args.path)
    await entry.touch()
    return FileWriteResult(box_id=entry.id, path=args.path, bytes_written=len(data))


def _copy_in_description(services: Services) -> str:
    allowed = services.host_paths.describe()
    return f"""
Copy a file or directory from the server's host into a box (for a whole project or
large data). Host paths must be inside the allowed roots: {allowed}. With none, this
tool is disabled (the operator enables it with --allow-path). A directory's contents
land in box_path."""


@tools.tool(
    title="Copy host files into a box",
    description=_copy_in_description,
    destructive=True,
    idempotent=True,
)
async def copy_in(call: ToolCall, args: CopyInInput) -> CopyResult:
    source = call.host_paths.confine(args.host_path, must_exist=True, purpose="source")
    entry = await call.box(args.box)
    await entry.box.copy_in(source, args.box_path)
    await entry.touch()
    return CopyResult(box_id=entry.id, source=str(source), destination=args.box_path)


def _copy_out_description(services: Services) -> str:
    allowed = services.host_paths.describe()
    return f"""
Copy a file or directory from a box to the server's host (results, build artefacts).
Host paths must be inside the allowed roots: {allowed}. With none, this tool is
disabled (the operator enables it with --allow-path). Existing files are replaced."""


@tools.tool(
    title="Copy files from a box to the host",
    description=_copy_out_description,
    destructive=True,
    idempotent=True,
)
async def copy_out(call: ToolCall, args: CopyOutInput) -> CopyResult:
    dest = call.host_paths.confine(args.host_path, purpose="destination")
    if not dest.parent.is_dir():
        raise InvalidArgumentError(f"The host directory {str(dest.parent)!r} does not exist.")
    entry = await call.box(args.box)
    await entry.box.copy_out(args.box_path, dest)
    await entry.touch()
    return CopyResult(box_id=entry.id, source=args.box_path, destination=str(dest))
