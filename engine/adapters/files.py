"""Files that hold secrets (initial passwords, the demo secret key): owner-only from the start.

Owns creating such a file with mode 0600, so no other local user can read it even for the moment
between creation and a later chmod, and narrowing the mode of an existing file it rewrites. It
must not know what the file holds.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TextIO

PRIVATE_MODE = 0o600


def open_private(path: Path) -> TextIO:
    """`path` truncated and opened for writing UTF-8 text, readable by its owner only.

    `O_CREAT`'s mode applies to a new file only, so an existing one is narrowed with `fchmod`
    before anything is written to it.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_MODE)
    try:
        os.fchmod(fd, PRIVATE_MODE)
        return os.fdopen(fd, "w", newline="", encoding="utf-8")
    except BaseException:
        os.close(fd)
        raise


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path` (see `open_private`)."""
    with open_private(path) as handle:
        handle.write(text)
