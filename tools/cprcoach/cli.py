"""cprcoach: one command per stage; `cprcoach STAGE` is also `python -m cprcoach.STAGE`."""

from __future__ import annotations

from collections.abc import Sequence

from cprcoach.dispatch import dispatch

STAGES = {
    "synth": ("cprcoach.synth.dataset", "render the synthetic CPR-Coach-like dataset", "main"),
    "samples": ("cprcoach.samples", "discover the raw videos and write the sample sheet", "main"),
    "video": ("cprcoach.video.cli", "resize raw videos, summarise them, benchmark the resize pass", "main"),
    "flow": ("cprcoach.flow.cli", "TV-L1 optical flow (OpenCV on CPU, batched PyTorch on CPU or GPU)", "main"),
    "pose": ("cprcoach.pose.cli", "2D skeletons of the rescuer in the Halpe-26 order", "main"),
    "shards": ("cprcoach.shards.cli", "HDF5 shards: build, check, index, stats, exports, bench", "main"),
    "model": ("cprcoach.model.cli", "backbones, ImagineNet heads, scoring, assessment", "main"),
    "assess": ("cprcoach.model.assess", "the errors and probabilities of one recording", "main"),
    "workflow": ("cprcoach.workflow", "snakemake ARGS, resumable after a crash or a kill", "main"),
    "gpu-check": ("cprcoach.bench.node", "the workflow stage by stage on a GPU node, projected to all of CPR-Coach"),
}


def main(argv: Sequence[str] | None = None) -> None:
    dispatch("cprcoach", __doc__, STAGES, argv)
