"""``python -m boxlite_mcp``: the same as the ``boxlite-mcp`` command."""

from .app.cli import main

raise SystemExit(main())
