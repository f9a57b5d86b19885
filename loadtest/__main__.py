"""`python -m loadtest`: Locust itself, with examreg's options registered before it reads its argv.

Locust answers `--help` before it imports any locustfile (locust/argument_parser.py,
`parse_locustfile_option`), so options that a locustfile adds on `init_command_line_parser`
never appear in `locust -f loadtest/locustfile.py --help`. Importing `loadtest.locust_common`
here first puts them in every parser Locust builds, `--help`'s included; every argument then goes
to Locust unchanged, so `python -m loadtest -f FILE …` runs exactly what `locust -f FILE …` runs.
Run it from the repository root (the locustfiles are named by path).
"""

from __future__ import annotations

import sys

from locust.main import main  # first: importing Locust monkey-patches the process for gevent

import loadtest.locust_common  # noqa: F401  registers the options and the gate

if __name__ == "__main__":
    sys.argv[0] = "locust"
    sys.exit(main())
