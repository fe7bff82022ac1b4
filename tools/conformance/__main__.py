"""``python -m tools.conformance``: the command line of :mod:`tools.conformance.run`."""

import sys

from .run import main

sys.exit(main())
