"""`python -m engine` is the `examreg` command."""

import sys

from engine.cli import main

sys.exit(main())
