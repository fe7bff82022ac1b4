"""Pictures as MCP image content: which types a client shows, and how bytes become one.

One place for the rule shared by python_run (figures) and file_read (image files):
PNG, JPEG, GIF and WebP go as ``ImageContent``; SVG is text (a model reads it as
markup, and clients do not render it as an image). Types are told by their magic
bytes, never by a file name, so a misnamed file is still shown (or not) as it is.
"""

from __future__ import annotations

import base64

from mcp_types import ImageContent

#: Image types sent as image content.
RASTER = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})


def sniff(data: bytes) -> str | None:
    """The raster mime type of ``data`` by its signature, None when it is none of them."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if len(data) >= 12 and data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def image_content(data: bytes, mime_type: str) -> ImageContent:
    return ImageContent(
        type="image", data=base64.b64encode(data).decode("ascii"), mime_type=mime_type
    )
