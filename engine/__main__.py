"""`python -m engine` is the `examreg` command."""

import sys

from engine.runtime.cli import main

sys.exit(main())
