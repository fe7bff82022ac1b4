"""boxlite-mcp: an MCP server that gives LLM agents secure boxes to run code in."""

__version__ = "0.1.0"
