"""`python -m reference_impl` serves the gateway; see cli.py."""

import sys

from .cli import main

sys.exit(main())
