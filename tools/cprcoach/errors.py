"""User-facing errors: what went wrong, with which file, and how to fix it."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

F = TypeVar("F", bound=Callable[..., int | None])


class CprCoachError(Exception):
    """An error a user can fix: carries the offending path and the fix."""

    def __init__(self, message: str, *, path: str | Path | None = None, fix: str | None = None):
        self.message = message
        self.path = Path(path) if path is not None else None
        self.fix = fix
        super().__init__(str(self))

    def __str__(self) -> str:
        text = f"{self.path}: {self.message}" if self.path is not None else self.message
        if self.fix:
            text += f"\n  fix: {self.fix}"
        return text


class ConfigError(CprCoachError):
    """The configuration is invalid."""


class SampleSheetError(CprCoachError):
    """Raw videos that cannot be turned into a sample sheet."""


class VideoError(CprCoachError):
    """A video that cannot be read or processed."""


def cli_errors(main: F) -> F:
    """Turn a CprCoachError into one clear message and exit status 2, not a traceback."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except CprCoachError as error:
            print(f"cprcoach: error: {error}", file=sys.stderr)
            sys.exit(2)

    return wrapper  # type: ignore[return-value]
