"""Entry point for ``python -m gpa_core``."""

import sys

from gpa_core.cli import main

sys.exit(main())
