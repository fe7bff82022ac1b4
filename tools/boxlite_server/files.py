"""Files: ``PUT`` and ``GET {root}/boxes/{box_id}/files?path=`` as tar streams.

Upload: the body is streamed to a temporary file (capped at
``file_transfer_max_bytes``), checked and unpacked by ``archive.extract_tree``
(no absolute names, no ``..``, no links out, no devices), then handed to the
runtime's ``copy_in``. BoxLite's rule decides the shape: an archive holding
exactly one entry, a regular file, is a file (it lands at ``path`` itself unless
``path`` ends with ``/`` or is an existing directory); anything else is a
directory whose contents land in ``path`` (created if missing). A client
uploading a directory that holds a single file includes the root entry
``./`` so it stays a directory.

Download: the runtime's ``copy_out`` writes to a temporary directory, which is
archived with ``archive.pack``: a directory as its contents, a file as one entry
named after its basename. The archive streams from disk.
"""

from __future__ import annotations

import os
import posixpath
import tempfile
from pathlib import Path

import anyio.to_thread
from starlette.background import BackgroundTask
from starlette.responses import Response, StreamingResponse

from boxlite_mcp.runtime.errors import InvalidArgumentError
from boxlite_mcp.runtime.shared import archive

from .app import Op
from .bodies import file_chunks, receive_to_file, remove_tree
from .state import Call


def _dest_path(call: Call) -> str:
    path = call.query("path")
    if not path:
        raise InvalidArgumentError("the path query parameter is required: a path in the box")
    return path


async def upload(call: Call) -> Response:
    dest = _dest_path(call)
    if not call.query_bool("overwrite", True):
        raise InvalidArgumentError(
            "overwrite=false is not supported: uploads replace what is at the destination"
        )
    box = await call.box()
    workdir = Path(tempfile.mkdtemp(prefix="boxlite-upload-"))
    try:
        tar_path = workdir / "upload.tar"
        await receive_to_file(call, tar_path)
        tree = workdir / "tree"
        tree.mkdir()
        limits = archive.Limits(max_bytes=call.config.file_transfer_max_bytes)

        def unpack() -> list[str]:
            with open(tar_path, "rb") as f:
                members = archive.scan(f, limits)
                if len(members) == 1 and members[0].isreg():
                    archive.extract_tree(f, tree, limits)
                    return [archive.check_member(members[0])]
                archive.extract_tree(f, tree, limits)
                return []

        single = await anyio.to_thread.run_sync(unpack)
        if single:
            await box.copy_in(tree / single[0], dest)
        else:
            # A directory: its contents go into dest, even when it holds one file
            # (the trailing slash keeps copy_in from writing that file *as* dest).
            await box.copy_in(tree, dest if dest.endswith("/") else dest + "/")
    finally:
        await anyio.to_thread.run_sync(remove_tree, workdir)
    return Response(status_code=204)


async def download(call: Call) -> Response:
    src = _dest_path(call)
    box = await call.box()
    workdir = Path(tempfile.mkdtemp(prefix="boxlite-download-"))
    try:
        out = workdir / "out"
        await box.copy_out(src, out)
        if not out.is_dir():  # a file: archive it under its own name
            named = workdir / "file" / (posixpath.basename(src.rstrip("/")) or "file")
            named.parent.mkdir()
            os.replace(out, named)
            out = named
        tar_path = workdir / "download.tar"

        def pack() -> int:
            with open(tar_path, "wb") as f:
                archive.pack(out, f)
            return os.path.getsize(tar_path)

        size = await anyio.to_thread.run_sync(pack)
    except BaseException:
        remove_tree(workdir)
        raise
    return StreamingResponse(
        file_chunks(tar_path),
        media_type="application/x-tar",
        headers={"content-length": str(size)},
        background=BackgroundTask(remove_tree, workdir),
    )


OPS = [
    Op("uploadFiles", "PUT", "/boxes/{box_id}/files", upload, stream_body=True),
    Op("downloadFiles", "GET", "/boxes/{box_id}/files", download),
]
