"""The video stage: resize raw videos, summarise them, and benchmark the resize pass."""

from __future__ import annotations

from collections.abc import Sequence

from cprcoach.dispatch import dispatch

COMMANDS = {
    "resize": ("cprcoach.video.resize", "decode each raw video of a recording once and write every resized clip"),
    "summary": ("cprcoach.video.summary", "aggregate the probe sidecars into one table"),
    "sheet": ("cprcoach.video.contact_sheet", "contact sheet PNG of the views of a few recordings"),
    "bench": ("cprcoach.bench.video", "time the resize pass against a pure decode of a 4K clip"),
}


def main(argv: Sequence[str] | None = None) -> None:
    dispatch("cprcoach video", __doc__, COMMANDS, argv)
