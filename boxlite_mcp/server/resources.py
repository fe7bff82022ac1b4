"""Resources: your boxes, a box, a file in a box, and an execution's full output.

Every resource is owner-scoped exactly like the tools: another owner's box or
execution reads as not found.
"""

from __future__ import annotations

import json
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError
from mcp.server.mcpserver.resources import Resource

from ..runtime.errors import BoxliteError, NotFoundError
from ..sessions.boxfiles import read_box_file
from .errors import owner_text
from .identity import current_request
from .sdk import ToolContext
from .services import Services

BOXES_URI = "boxlite://boxes"


def _resource_error(error: BoxliteError) -> ResourceError:
    message = f"{error.kind}: {owner_text(error.message, [error.box] if error.box else [])}"
    return (
        ResourceNotFoundError(message)
        if isinstance(error, NotFoundError)
        else ResourceError(message)
    )


class BoxesResource(Resource):
    """``boxlite://boxes``: the caller's boxes as JSON (a static URI, owner-scoped)."""

    services: Any

    async def read(self) -> str:
        services: Services = self.services
        who = services.requester(current_request())
        try:
            listed = await services.registry.listed(who.owner)
        except BoxliteError as exc:
            raise _resource_error(exc) from None
        views = [services.view(entry, info).model_dump(mode="json") for entry, info in listed]
        return json.dumps({"boxes": views}, indent=2)


def register(server: MCPServer[Any], services: Services) -> None:
    server.add_resource(
        BoxesResource(
            uri=BOXES_URI,
            name="boxes",
            title="Your boxes",
            description="The boxes you own, as JSON: id, name, status, lifetime.",
            mime_type="application/json",
            services=services,
        )
    )

    @server.resource(
        "boxlite://boxes/{box}",
        name="box",
        title="One box",
        description="One of your boxes (by id or name), as JSON.",
        mime_type="application/json",
    )
    async def box_resource(box: str, ctx: ToolContext) -> str:
        who = services.requester(ctx.request_context)
        try:
            entry = await services.registry.resolve(who.owner, box)
            view = await services.box_view(entry)
        except BoxliteError as exc:
            raise _resource_error(exc) from None
        return view.model_dump_json(indent=2)

    @server.resource(
        "boxlite://boxes/{box}/files/{+path}",
        name="box-file",
        title="A file in a box",
        description="A file inside one of your boxes; the path is relative to the box's root "
        "(boxlite://boxes/dev/files/etc/os-release). Text when UTF-8, else binary. Size-capped.",
    )
    async def file_resource(box: str, path: str, ctx: ToolContext) -> str | bytes:
        who = services.requester(ctx.request_context)
        try:
            entry = await services.registry.resolve(who.owner, box)
            data = await read_box_file(
                entry, "/" + path.lstrip("/"), services.settings.file_transfer_cap_bytes
            )
        except BoxliteError as exc:
            raise _resource_error(exc) from None
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return data

    @server.resource(
        "boxlite://executions/{execution_id}/output",
        name="execution-output",
        title="An execution's full output",
        description="Everything an execution wrote, stdout and stderr interleaved in order "
        "(up to the server's storage cap), as text.",
    )
    async def execution_output(execution_id: str, ctx: ToolContext) -> str:
        who = services.requester(ctx.request_context)
        try:
            record = await services.executions.get(who.owner, execution_id)
            pieces = await services.executions.read(record.id, 0, record.stored)
        except BoxliteError as exc:
            raise _resource_error(exc) from None
        text = b"".join(data for _, data in pieces).decode("utf-8", errors="replace")
        if record.dropped:
            text += f"\n[{record.dropped} more bytes exceeded the storage cap]\n"
        return text
