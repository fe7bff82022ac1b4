"""What the proof commands (``leak_soak``, ``isolation_probe``, ``fuzz_tools``) share.

- ``host``: what a runtime home left on this host (box records, processes, mounts,
  cgroups), looked at from outside the server;
- ``server``: ``python -m boxlite_mcp`` over streamable HTTP as a child process;
- ``calls``: calling tools and judging answers (crash, traceback, secret);
- ``table``: Markdown tables; ``report``: the command line and machine around them.

Each command's own logic is in its package (``tools/leak_soak/soak.py``,
``tools/isolation_probe/isolation.py``, ``tools/fuzz_tools/fuzz.py``), also run by
``tests/soak``.
"""
