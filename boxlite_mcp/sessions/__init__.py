"""Per-owner state behind the MCP surface: boxes, executions, progress, host paths.

Knows owners, boxes and executions, not MCP: nothing here imports ``server``,
``transport`` or ``app``; below it is only the runtime contract.
"""
