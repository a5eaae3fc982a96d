"""The flow stage: TV-L1 flow of clips, its report figure, and the backends' benchmark."""

from __future__ import annotations

from collections.abc import Sequence

from cprcoach.dispatch import dispatch

COMMANDS = {
    "extract": ("cprcoach.flow.extract", "TV-L1 flow between consecutive frames of a clip"),
    "plot": ("cprcoach.flow.plot", "flow-to-colour figure of sample frame pairs"),
    "bench": ("cprcoach.bench.flow", "frame pairs per second of the opencv and torch backends"),
}


def main(argv: Sequence[str] | None = None) -> None:
    dispatch("cprcoach flow", __doc__, COMMANDS, argv)
