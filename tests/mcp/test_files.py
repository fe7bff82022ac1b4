"""In-band file transfer and host copies confined to the allowed roots."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
from mcp import Client

from tests.sessions.test_python_run import expected_png

from .conftest import ServerFactory, fails, ok

pytestmark = pytest.mark.anyio


async def test_file_write_and_read(make_server: ServerFactory, mode: str) -> None:
    async with Client(make_server(), mode=mode) as client:
        await ok(client, "box_create", name="dev")
        written = await ok(
            client, "file_write", box="dev", path="/root/hello.txt", content="héllo\n"
        )
        assert written["bytes_written"] == len("héllo\n".encode())
        out = await ok(client, "exec_run", box="dev", command="cat /root/hello.txt")
        assert out["stdout"] == "héllo\n"
        read = await ok(client, "file_read", box="dev", path="/root/hello.txt")
        assert read["encoding"] == "text" and read["content"] == "héllo\n"

        blob = bytes(range(256))
        await ok(
            client,
            "file_write",
            box="dev",
            path="/root/blob.bin",
            content=base64.b64encode(blob).decode(),
            encoding="base64",
        )
        read = await ok(client, "file_read", box="dev", path="/root/blob.bin")
        assert read["encoding"] == "base64" and base64.b64decode(read["content"]) == blob
        assert read["size_bytes"] == 256
        forced = await ok(client, "file_read", box="dev", path="/root/blob.bin", encoding="text")
        assert forced["encoding"] == "text" and "\ufffd" in forced["content"]


async def test_file_errors(make_server: ServerFactory) -> None:
    async with Client(make_server(file_transfer_cap_bytes=1000)) as client:
        await ok(client, "box_create", name="dev")
        await ok(client, "exec_run", box="dev", command="head -c 5000 /dev/zero > /root/big")
        message = await fails(client, "file_read", box="dev", path="/root/big")
        assert "5000 bytes" in message and "exec_run" in message
        message = await fails(client, "file_read", box="dev", path="/root/missing")
        assert "does not exist" in message
        message = await fails(client, "file_read", box="dev", path="/root")
        assert "directory" in message
        message = await fails(client, "file_write", box="dev", path="/root/x", content="y" * 2000)
        assert "2000 bytes" in message
        message = await fails(client, "file_write", box="dev", path="/root/", content="y")
        assert "full file path" in message
        message = await fails(client, "file_write", box="dev", path="/root", content="y")
        assert "directory" in message
        message = await fails(
            client, "file_write", box="dev", path="/root/x", content="@@", encoding="base64"
        )
        assert "base64" in message
        message = await fails(client, "file_read", box="dev", path="relative/path")
        assert "path" in message and "Invalid arguments" in message


async def test_copy_in_and_out(make_server: ServerFactory, host_dir: Path, mode: str) -> None:
    project = host_dir / "project"
    (project / "src").mkdir(parents=True)
    (project / "src" / "main.py").write_text("print('hi')\n")
    (project / "README").write_text("readme\n")
    async with Client(make_server(), mode=mode) as client:
        await ok(client, "box_create", name="dev")
        copied = await ok(
            client, "copy_in", box="dev", host_path=str(project), box_path="/workspace"
        )
        assert copied["destination"] == "/workspace"
        out = await ok(
            client, "exec_run", box="dev", command="cat /workspace/src/main.py /workspace/README"
        )
        assert out["stdout"] == "print('hi')\nreadme\n"
        # A relative host path is taken relative to the first allowed root.
        await ok(client, "copy_in", box="dev", host_path="project/README", box_path="/root/README")
        await ok(client, "exec_run", box="dev", command="echo result > /workspace/out.txt")
        await ok(
            client,
            "copy_out",
            box="dev",
            box_path="/workspace/out.txt",
            host_path=str(host_dir / "out.txt"),
        )
        assert (host_dir / "out.txt").read_text() == "result\n"


async def test_host_paths_are_confined(
    make_server: ServerFactory, host_dir: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("secret\n")
    os.symlink(outside, host_dir / "link")
    async with Client(make_server()) as client:
        await ok(client, "box_create", name="dev")
        for path in (
            str(outside / "secret"),
            str(host_dir / "link" / "secret"),
            str(host_dir / ".." / "outside"),
        ):
            message = await fails(client, "copy_in", box="dev", host_path=path, box_path="/root/x")
            assert "outside the allowed roots" in message and str(host_dir) in message
        message = await fails(
            client, "copy_out", box="dev", box_path="/etc/hostname", host_path=str(outside / "x")
        )
        assert "outside the allowed roots" in message
        assert not (outside / "x").exists()


async def test_host_copies_disabled_without_roots(make_server: ServerFactory) -> None:
    async with Client(make_server(allow_paths=[])) as client:
        await ok(client, "box_create", name="dev")
        message = await fails(
            client, "copy_in", box="dev", host_path="/etc/hostname", box_path="/root/x"
        )
        assert (
            "disabled" in message
            and "--allow-path" in message
            and "BOXLITE_MCP_ALLOW_PATHS" in message
        )
        info = await ok(client, "runtime_info")
        assert info["policy"]["allowed_host_paths"] == []


async def test_file_read_sends_pictures_as_image_content(make_server: ServerFactory) -> None:
    """PNG/JPEG/GIF/WebP (told by their bytes) come back as images too; SVG stays text."""
    png = expected_png()
    pictures = {
        "/tmp/dot.png": (png, "image/png"),
        "/tmp/dot.jpg": (b"\xff\xd8\xff\xe0" + bytes(16), "image/jpeg"),
        "/tmp/dot.gif": (b"GIF89a" + bytes(16), "image/gif"),
        "/tmp/misnamed.txt": (b"RIFF\x00\x00\x00\x00WEBPVP8 " + bytes(8), "image/webp"),
    }
    async with Client(make_server()) as client:
        await ok(client, "box_create", name="pics")
        for path, (data, _) in pictures.items():
            encoded = base64.b64encode(data).decode()
            await ok(
                client, "file_write", box="pics", path=path, content=encoded, encoding="base64"
            )
        for path, (data, mime) in pictures.items():
            result = await client.call_tool("file_read", {"box": "pics", "path": path})
            assert not result.is_error and result.structured_content is not None
            assert result.structured_content["mime_type"] == mime
            assert base64.b64decode(result.structured_content["content"]) == data
            images = [b for b in result.content if b.type == "image"]
            assert len(images) == 1 and images[0].mime_type == mime
            assert base64.b64decode(images[0].data) == data
        await ok(client, "file_write", box="pics", path="/tmp/a.svg", content="<svg/>")
        svg = await client.call_tool("file_read", {"box": "pics", "path": "/tmp/a.svg"})
        assert svg.structured_content is not None
        assert svg.structured_content["content"] == "<svg/>"
        assert svg.structured_content["mime_type"] is None
        assert all(b.type == "text" for b in svg.content)


async def test_file_read_needs_no_program_in_the_box(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    """A box whose root filesystem holds two data files and nothing else: no shell, no
    stat, no coreutils. file_read still reads text, a PNG (as image content), and
    refuses a directory and a file over the cap, naming the path."""
    rootfs = tmp_path / "bare"
    (rootfs / "data").mkdir(parents=True)
    (rootfs / "data" / "note.txt").write_text("no programs here\n")
    (rootfs / "data" / "dot.png").write_bytes(expected_png())
    (rootfs / "data" / "big").write_bytes(bytes(3000))
    async with Client(make_server(file_transfer_cap_bytes=2000)) as client:
        await ok(client, "box_create", name="bare", rootfs_path=str(rootfs))
        ran = await client.call_tool("exec_run", {"box": "bare", "command": "true"})
        assert ran.is_error or (ran.structured_content or {}).get("exit_code") != 0
        read = await ok(client, "file_read", box="bare", path="/data/note.txt")
        assert read["content"] == "no programs here\n"
        picture = await client.call_tool("file_read", {"box": "bare", "path": "/data/dot.png"})
        assert [b.type for b in picture.content] == ["text", "image"]
        message = await fails(client, "file_read", box="bare", path="/data")
        assert "'/data' is a directory" in message
        message = await fails(client, "file_read", box="bare", path="/data/big")
        assert "'/data/big' is 3000 bytes" in message and "2000-byte" in message
