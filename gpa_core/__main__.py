"""Entry point for ``python -m gpa_core``."""

import sys

from .cli import main

sys.exit(main())
