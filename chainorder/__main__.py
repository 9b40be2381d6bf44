"""``python -m chainorder``: the command line."""

import sys

from .front.cli import main

sys.exit(main())
