"""cprcoach: one command per stage; `cprcoach STAGE` is also `python -m cprcoach.STAGE`."""

from __future__ import annotations

from collections.abc import Sequence

from cprcoach.dispatch import dispatch, run_module_main

STAGES = {
    "synth": ("cprcoach.synth.dataset", "render the synthetic CPR-Coach-like dataset"),
    "samples": ("cprcoach.samples", "discover the raw videos and write the sample sheet"),
    "video": ("cprcoach.video.cli", "resize raw videos, summarise them, benchmark the resize pass"),
    "flow": ("cprcoach.flow.cli", "TV-L1 optical flow (OpenCV on CPU, batched PyTorch on CPU or GPU)"),
    "pose": ("cprcoach.pose.cli", "2D skeletons of the rescuer in the Halpe-26 order"),
    "shards": ("cprcoach.shards.cli", "HDF5 shards: build, check, index, stats, exports, bench"),
    "model": ("cprcoach.model.cli", "backbones, ImagineNet heads, scoring, assessment"),
    "assess": ("cprcoach.model.assess", "the errors and probabilities of one recording"),
}


def main(argv: Sequence[str] | None = None) -> None:
    dispatch("cprcoach", __doc__, STAGES, argv, run_module_main)
