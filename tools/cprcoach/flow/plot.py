"""The report's flow figure: for a few videos, the middle frame and its flow to the next one."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from cprcoach.errors import CprCoachError, cli_errors
from cprcoach.flow.colour import sample_figure
from cprcoach.flow.format import read_flow
from cprcoach.flow.quantize import dequantize
from cprcoach.logs import setup_logging
from cprcoach.video.frames import read_frames

log = logging.getLogger(__name__)


def middle_sample(clip: Path, flow_file: Path) -> tuple[str, np.ndarray, np.ndarray]:
    x, y, meta = read_flow(flow_file)
    middle = len(x) // 2
    flow = np.stack([x[middle], y[middle]], axis=-1)
    if meta["output"] == "uint8":
        flow = dequantize(flow, meta["bound"])
    frame = read_frames(clip, "rgb24")[middle]
    title = f"{clip.parent.parent.name} {clip.parent.name} {clip.name.split('.')[0]} · pair {middle + 1}"
    return title, frame, flow.astype(np.float32)


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="cprcoach flow plot", description=__doc__)
    parser.add_argument("--clips", nargs="+", type=Path, required=True, help="the clips the flows were computed on")
    parser.add_argument("--flows", nargs="+", type=Path, required=True, help="their flow files, in the same order")
    parser.add_argument("--out", type=Path, required=True, help="PNG to write")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


@cli_errors
def run(args: argparse.Namespace) -> None:
    setup_logging(args.verbose)
    if len(args.clips) != len(args.flows):
        raise CprCoachError(
            f"{len(args.clips)} clips but {len(args.flows)} flow files", fix="pass one flow file per clip"
        )
    samples = [middle_sample(clip, flow) for clip, flow in zip(args.clips, args.flows, strict=True)]
    sample_figure(samples, args.out)
    log.info("%d flow samples -> %s", len(samples), args.out)
