"""How clients reach a built server: stdio, SSE and streamable HTTP, bearer auth.

A transport serves whatever ``MCPServer`` it is given; it never imports the
server layer, so the two meet only in ``app``.
"""
