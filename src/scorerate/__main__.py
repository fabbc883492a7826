"""`python -m scorerate ...`: the same as the `scorerate` command."""

import sys

from .cli import main

sys.exit(main())
