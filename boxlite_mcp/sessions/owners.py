"""The owners every request maps to when no principal or session names one.

``server.identity`` decides who is asking; the sessions layer treats the one
local client specially (its host paths are not split per owner), so the names
live here, below both.
"""

#: The one client of a transport without headers (stdio, in memory).
LOCAL_OWNER = "local"
#: Everyone on stateless HTTP without auth, where nothing else is stable.
ANONYMOUS_OWNER = "anonymous"
