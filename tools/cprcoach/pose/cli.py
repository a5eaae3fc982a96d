"""The pose stage: estimate the rescuer's skeleton per video, check it, draw it, benchmark the backends."""

from __future__ import annotations

from collections.abc import Sequence

from cprcoach.dispatch import dispatch

COMMANDS = {
    "estimate": ("cprcoach.pose.estimate", "2D skeletons of the rescuer in a recording's clips -> one .npz per clip"),
    "qc": ("cprcoach.pose.qc", "PCK@0.2 against the synthetic ground truth: table and per-joint plot"),
    "overlay": ("cprcoach.pose.overlay", "draw the skeleton on a few frames of a clip into one PNG"),
    "bench": ("cprcoach.bench.pose", "frames per second of each backend on a synthetic clip"),
    "coach-check": ("cprcoach.bench.coach", "the coach's measurements against the synthetic ground truth"),
}


def main(argv: Sequence[str] | None = None) -> None:
    dispatch("cprcoach pose", __doc__, COMMANDS, argv)
