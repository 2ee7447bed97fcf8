"""``python -m pullgate``: the same as the ``pullgate`` command."""

import sys

from .cli import main

sys.exit(main())
