"""The shard stage: build and check the per-(participant, view) HDF5 shards, index them,
tabulate the dataset statistics, export for pyskl/mmaction2, and benchmark reading."""

from __future__ import annotations

from collections.abc import Sequence

from cprcoach.dispatch import dispatch

COMMANDS = {
    "build": ("cprcoach.shards.build", "one shard from the videos of one participant and view"),
    "check": ("cprcoach.shards.check", "validate shards against the index and their sidecars"),
    "index": ("cprcoach.shards.index", "the index table of every video of the shards"),
    "stats": ("cprcoach.shards.stats", "the dataset statistics table (the CPR-Coach README's)"),
    "export-skeleton": (
        "cprcoach.shards.export",
        "the skeletons as a pyskl / mmaction2 annotation pickle",
        "build_skeleton_parser",
        "run_skeleton",
    ),
    "export-rawframes": (
        "cprcoach.shards.export",
        "RGB and flow JPEGs in the mmaction2 rawframes layout",
        "build_rawframes_parser",
        "run_rawframes",
    ),
    "bench": ("cprcoach.bench.shards", "read throughput and bytes per frame, shards against JPEG files"),
}


def main(argv: Sequence[str] | None = None) -> None:
    dispatch("cprcoach shards", __doc__, COMMANDS, argv)
