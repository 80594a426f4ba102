"""Entry point of ``python -m sona_web.eval``."""

import sys

from .cli import main

sys.exit(main())
