"""The owners every request maps to when no principal or session names one.

``server.identity`` decides who is asking; the sessions layer treats the one
local client specially (its host paths are not split per owner), so the names
live here, below both.
"""

#: The one client of a transport without headers (stdio, in memory).
LOCAL_OWNER = "local"
#: Everyone on stateless HTTP without auth, where nothing else is stable.
ANONYMOUS_OWNER = "anonymous"

#: What ``runtime_info`` and the startup log say when a server has no bearer auth
#: (``transport/anonymous.py`` decides where serving that way is allowed).
SHARED_OWNER_NOTE = (
    "This server has no bearer auth: every client of the 2026-07-28 protocol is the same "
    "owner 'anonymous' and sees, uses and can remove the others' boxes; legacy (2025-11-25) "
    "sessions and SSE connections each own theirs. Give each agent a token "
    "(BOXLITE_MCP_AUTH_TOKENS or --auth-tokens-file) to keep them apart."
)
