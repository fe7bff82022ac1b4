"""``python -m tools.bench``: the command line of :mod:`tools.bench.run`."""

import sys

from .run import main

sys.exit(main())
