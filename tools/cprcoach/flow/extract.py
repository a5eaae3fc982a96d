"""The flow stage: TV-L1 flow between consecutive frames of a clip (T frames -> T-1 flows), written
as one flow file per clip (cprcoach.flow.format).

A job takes the clips of one recording's views, one after the other, so the command's start
(importing torch, above all) is paid once for them.
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import asdict
from pathlib import Path

import cv2
import numpy as np

from cprcoach.errors import CprCoachError, cli_errors
from cprcoach.flow.format import write_flow
from cprcoach.flow.params import FlowSettings, TVL1Params
from cprcoach.flow.quantize import quantize
from cprcoach.gpu import claim_cuda_device
from cprcoach.logs import setup_logging
from cprcoach.settings import add_settings_argument
from cprcoach.video.frames import read_frames

log = logging.getLogger(__name__)


def compute_flow(
    frames: np.ndarray,
    params: TVL1Params,
    backend: str,
    device: str,
    batch_size: int | None,
    bound: float | None = None,
) -> np.ndarray:
    """(T,H,W) uint8 grey frames -> (T-1,H,W,2) flow with the chosen backend: float32, or uint8 given a bound."""
    if backend == "opencv":
        from cprcoach.flow.opencv import flow_opencv

        flow = flow_opencv(frames, params)
        return flow if bound is None else quantize(flow, bound)
    import torch

    from cprcoach.flow.tvl1 import flow_torch

    if device == "cuda":
        if not torch.cuda.is_available():
            raise CprCoachError(
                "flow.device is cuda, but torch sees no GPU",
                fix="set flow.device: cpu in config.yaml, or run on a GPU node",
            )
        device = claim_cuda_device()
    return flow_torch(frames, params, device=device, batch_size=batch_size, bound=bound)


def extract_flow(clip: str | Path, out: str | Path, settings: FlowSettings, *, threads: int) -> dict:
    """Compute and store the flow of one clip; returns the metadata written beside it."""
    started = time.perf_counter()
    cv2.setNumThreads(threads)
    backend, output, bound = settings.backend, settings.output, settings.bound
    if backend == "torch":
        import torch

        torch.set_num_threads(threads)
    frames = read_frames(clip, "gray")
    if len(frames) < 2:
        raise CprCoachError(
            "a clip of one frame has no flow", path=clip, fix="check the raw video: it holds a single frame"
        )
    flow = compute_flow(
        frames, settings.tvl1, backend, settings.device, settings.pairs_per_call, bound if output == "uint8" else None
    )
    seconds = time.perf_counter() - started
    x, y = flow[..., 0], flow[..., 1]
    if output != "uint8":
        x, y = x.astype(np.float16), y.astype(np.float16)
    meta = {
        "clip": str(clip),
        "backend": backend,
        "device": settings.device if backend == "torch" else "cpu",
        "tvl1": asdict(settings.tvl1),
        "bound": bound,
        "output": output,
        "frames": int(len(frames)),
        "height": int(frames.shape[1]),
        "width": int(frames.shape[2]),
        "seconds": round(seconds, 3),
        "pairs_per_second": round((len(frames) - 1) / seconds, 2),
        "opencv": cv2.__version__,
    }
    meta = write_flow(out, x, y, meta)
    log.info(
        "%s: %d pairs %dx%d with %s on %s in %.1f s -> %s",
        clip,
        len(flow),
        meta["width"],
        meta["height"],
        backend,
        meta["device"],
        seconds,
        out,
    )
    return meta


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="cprcoach flow extract", description=__doc__)
    parser.add_argument("clips", type=Path, nargs="+", help="resized clips (the views of a recording)")
    parser.add_argument("--out", type=Path, nargs="+", required=True, help="one .npz to write per clip")
    add_settings_argument(parser, "flow")
    parser.add_argument("--threads", type=int, required=True, help="the job's threads")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


@cli_errors
def run(args: argparse.Namespace) -> None:
    setup_logging(args.verbose)
    if len(args.out) != len(args.clips):
        raise CprCoachError(f"{len(args.clips)} clips but {len(args.out)} --out paths", fix="pass one --out per clip")
    settings = FlowSettings.from_config(args.settings)
    for clip, out in zip(args.clips, args.out, strict=True):
        extract_flow(clip, out, settings, threads=args.threads)
