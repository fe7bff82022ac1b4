"""``python -m tools.reference``: the command line of :mod:`tools.reference.run`."""

import sys

from .run import main

sys.exit(main())
