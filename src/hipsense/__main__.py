"""`python -m hipsense` runs the `hipsense` command."""

import sys

from .cli import main

sys.exit(main())
