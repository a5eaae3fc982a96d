"""Comparing paths the way the files they name compare."""

from __future__ import annotations

import os
from pathlib import Path


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether two paths name one file, also through links; compared as resolved paths when one is gone."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return Path(a).resolve() == Path(b).resolve()
