"""Files: tar upload and download with BoxLite's semantics; unsafe archives refused."""

from __future__ import annotations

import io
import tarfile

import httpx
import pytest

from tests.server.conftest import StartServer
from tests.server.test_sse import output, parse

pytestmark = pytest.mark.anyio

TAR = {"content-type": "application/x-tar"}


def tar_of(entries: dict[str, bytes | None], symlinks: dict[str, str] | None = None) -> bytes:
    """A tar: name -> bytes (file) or None (directory); symlinks name -> target."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
            else:
                info.size = len(data)
                info.mode = 0o644
                tar.addfile(info, io.BytesIO(data))
        for name, target in (symlinks or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return buffer.getvalue()


def names_and_data(body: bytes) -> dict[str, bytes | None]:
    out: dict[str, bytes | None] = {}
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        for member in tar:
            f = tar.extractfile(member) if member.isreg() else None
            out[member.name] = f.read() if f else None
    return out


async def run(http: httpx.AsyncClient, root: str, script: str) -> bytes:
    eid = (
        await http.post(f"{root}/boxes/f/exec", json={"command": "sh", "args": ["-c", script]})
    ).json()["execution_id"]
    async with http.stream("GET", f"{root}/boxes/f/executions/{eid}/output") as stream:
        return b"".join([c async for c in stream.aiter_bytes()])


@pytest.mark.parametrize("root", ["/v1/default", "/v1"])
async def test_upload_and_download(http: httpx.AsyncClient, root: str) -> None:
    await http.post(f"{root}/boxes", json={"name": "f"})
    await http.post(f"{root}/boxes/f/start")
    files = f"{root}/boxes/f/files"
    # One regular file: lands at the path itself.
    one = await http.put(
        files,
        params={"path": "/srv/note.txt"},
        content=tar_of({"whatever.txt": b"hi\n"}),
        headers=TAR,
    )
    assert one.status_code == 204, one.text
    # A directory tree (with its root entry): contents land in the path.
    tree = tar_of({"./": None, "a.txt": b"A", "sub/": None, "sub/b.txt": b"B"})
    assert (
        await http.put(files, params={"path": "/srv/tree"}, content=tree, headers=TAR)
    ).status_code == 204
    # A one-file directory keeps its shape thanks to its root entry.
    solo = tar_of({"./": None, "only.txt": b"O"})
    assert (
        await http.put(files, params={"path": "/srv/solo"}, content=solo, headers=TAR)
    ).status_code == 204

    if root == "/v1/default":  # 0.9 SSE lets this test read the box's view simply
        listing = await run(
            http, root, "cat /srv/note.txt /srv/tree/a.txt /srv/tree/sub/b.txt /srv/solo/only.txt"
        )
        assert output(parse(listing))["stdout"] == b"hi\nABO"

    got_file = await http.get(files, params={"path": "/srv/note.txt"})
    assert got_file.headers["content-type"] == "application/x-tar"
    assert names_and_data(got_file.content) == {"note.txt": b"hi\n"}
    got_dir = await http.get(files, params={"path": "/srv/tree"})
    assert names_and_data(got_dir.content) == {"a.txt": b"A", "sub": None, "sub/b.txt": b"B"}
    missing = await http.get(files, params={"path": "/srv/none"})
    assert missing.status_code == 404


async def test_unsafe_and_oversized_archives(start_server: StartServer) -> None:
    server = await start_server(file_transfer_max_bytes=64 * 1024)
    async with httpx.AsyncClient(base_url=server.url) as http:
        await http.post("/v1/boxes", json={"name": "f"})
        files = "/v1/boxes/f/files"
        for bad in (
            tar_of({"../escape.txt": b"x"}),
            tar_of({"/abs.txt": b"x"}),
            tar_of({"ok.txt": b"x"}, symlinks={"link": "/etc/passwd"}),
        ):
            refused = await http.put(files, params={"path": "/srv/x"}, content=bad, headers=TAR)
            assert refused.status_code == 400, refused.text
            assert refused.json()["error"]["type"] == "InvalidArgumentError"
        too_big = await http.put(
            files, params={"path": "/srv/x"}, content=tar_of({"big": b"x" * 100_000}), headers=TAR
        )
        assert too_big.status_code == 413
        not_tar = await http.put(
            files, params={"path": "/srv/x"}, content=b"garbage" * 100, headers=TAR
        )
        assert not_tar.status_code == 400
        nothing = await http.get(files, params={"path": "/srv/x"})
        assert nothing.status_code == 404  # nothing was half-written
