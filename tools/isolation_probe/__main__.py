"""``python -m tools.isolation_probe``: the command line of :mod:`tools.isolation_probe.run`."""

import sys

from .run import main

sys.exit(main())
