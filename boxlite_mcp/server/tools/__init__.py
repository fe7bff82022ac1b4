"""The MCP tools, one module per group: boxes, exec, files, snapshots, observability."""
