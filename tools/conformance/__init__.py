"""The official MCP conformance suite, run against boxlite-mcp (see docs/conformance.md)."""
