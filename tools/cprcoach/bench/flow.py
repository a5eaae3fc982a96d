"""Benchmark TV-L1: OpenCV's CPU solver against our batched PyTorch solver, on the same clip.

The clip is a real photograph (scikit-image's astronaut) moved by a known smooth flow from each
frame to the next, so besides frame pairs per second the run reports each solver's end-point
error against the true flow, a check that the speed was not bought with accuracy. OpenCV and
torch share the CPU threads and run in one process, so their ratio is measured under the same
load; a GPU, when there is one, gets a longer clip to fill its batches, solved twice: by the
fused Triton kernels and, as the reference, by the same solver's PyTorch operations.
"""

from __future__ import annotations

import argparse
import functools
import time
from collections.abc import Callable

import cv2
import numpy as np
import torch
from skimage import color, data

from cprcoach.bench import parse_size
from cprcoach.errors import CprCoachError, cli_errors
from cprcoach.flow.opencv import flow_opencv
from cprcoach.flow.tvl1 import TVL1Params, auto_batch_size, flow_torch
from cprcoach.logs import setup_logging

MAX_FLOW = 3.0  # pixels: the largest displacement between two frames of the synthetic clip
MARGIN = 8  # pixels at the border left out of the end-point error, where content enters the frame
QUANTIZE_BOUND = 20.0  # the flow stage's default bound, in pixels


def smooth_flow(rng: np.random.Generator, height: int, width: int, max_flow: float) -> np.ndarray:
    """A random flow field (H, W, 2) made of a few low-frequency sinusoids, at most max_flow long."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    flow = np.zeros((height, width, 2), dtype=np.float32)
    for channel in range(2):
        for _ in range(3):
            fx, fy = rng.uniform(0.3, 1.5, size=2)
            phase = rng.uniform(0, 2 * np.pi)
            flow[..., channel] += rng.uniform(0.5, 1.0) * np.sin(
                2 * np.pi * (fx * xs / width + fy * ys / height) + phase
            )
    length = np.hypot(flow[..., 0], flow[..., 1]).max()
    return flow * (max_flow / length)


def synthetic_clip(frames: int, height: int, width: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A grey uint8 clip (T, H, W) and the true flow (T - 1, H, W, 2) of each consecutive pair.

    Frame k is the photograph sampled once at p + D_k(p), and frame k(p) = frame k+1(p + f_k(p))
    makes D_k(p) = f_k(p) + D_k+1(p + f_k(p)): only the smooth displacement is resampled from
    frame to frame, never the image, so the frames stay as sharp as the photograph.
    """
    rng = np.random.default_rng(seed)
    image = (color.rgb2gray(data.astronaut()) * 255).astype(np.float32)
    image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    flows = np.stack([smooth_flow(rng, height, width, MAX_FLOW) for _ in range(frames - 1)])
    displacement = np.zeros((height, width, 2), dtype=np.float32)
    clip = np.empty((frames, height, width), dtype=np.uint8)
    clip[-1] = image.round().clip(0, 255)
    for k in range(frames - 2, -1, -1):
        map_x, map_y = xs + flows[k, ..., 0], ys + flows[k, ..., 1]
        displacement = flows[k] + cv2.remap(
            displacement, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
        warped = cv2.remap(
            image,
            xs + displacement[..., 0],
            ys + displacement[..., 1],
            cv2.INTER_CUBIC,
            borderMode=cv2.BORDER_REFLECT101,
        )
        clip[k] = warped.round().clip(0, 255)
    return clip, flows


def end_point_error(flow: np.ndarray, truth: np.ndarray) -> float:
    """Mean end-point error in pixels over the interior of all pairs."""
    error = np.hypot(flow[..., 0] - truth[..., 0], flow[..., 1] - truth[..., 1])
    return float(error[:, MARGIN:-MARGIN, MARGIN:-MARGIN].mean())


def timed(solve: Callable[[np.ndarray], np.ndarray], clip: np.ndarray) -> tuple[np.ndarray, float]:
    """Run once on the first pair (allocations, thread pools, kernel compilation), then time the whole clip."""
    solve(clip[:2])
    started = time.perf_counter()
    flow = solve(clip)
    return flow, time.perf_counter() - started


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="cprcoach flow bench", description=__doc__)
    parser.add_argument("--size", default="340x256", help="frame size WxH (the rgb clips: 340x256)")
    parser.add_argument(
        "--pairs",
        type=int,
        default=12,
        help="frame pairs solved on the CPU by each backend (0: skip the CPU comparison)",
    )
    parser.add_argument("--cuda-pairs", type=int, default=1024, help="frame pairs solved on the GPU, if there is one")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads of OpenCV and torch")
    parser.add_argument("--batch-size", type=int, help="pairs per torch call (default: auto_batch_size)")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


def compare_on_cpu(clip: np.ndarray, truth: np.ndarray, params: TVL1Params, threads: int, batch: int) -> None:
    """OpenCV's solver and ours on the same CPU threads and pairs: pairs/s, their ratio and the EPE."""
    pairs, (height, width) = len(truth), clip.shape[1:]
    cpu_batch = batch or auto_batch_size(height, width, "cpu", params)
    opencv, opencv_time = timed(functools.partial(flow_opencv, params=params), clip)
    ours, ours_time = timed(functools.partial(flow_torch, params=params, device="cpu", batch_size=cpu_batch), clip)
    opencv_rate, ours_rate = pairs / opencv_time, pairs / ours_time
    print(f"opencv   {pairs} pairs in {opencv_time:.2f} s  {opencv_rate:.2f} pairs/s  {threads} threads")
    print(f"torch    {pairs} pairs in {ours_time:.2f} s  {ours_rate:.2f} pairs/s  {threads} threads, batch {cpu_batch}")
    ratio = ours_rate / opencv_rate
    print(
        f"ratio    torch/opencv {ratio:.2f}x the pairs/s on the CPU (target >= 1): {'met' if ratio >= 1 else 'NOT met'}"
    )
    print(
        f"EPE      opencv {end_point_error(opencv, truth):.3f} px, torch {end_point_error(ours, truth):.3f} px,"
        f" torch vs opencv {end_point_error(ours, opencv):.3f} px (interior, {MARGIN} px margin)"
    )


@cli_errors
def run(args: argparse.Namespace) -> None:
    setup_logging(args.verbose)
    width, height = parse_size(args.size)
    params = TVL1Params.from_config()
    cv2.setNumThreads(args.threads)
    torch.set_num_threads(args.threads)
    cuda = torch.cuda.is_available()
    if not args.pairs and not cuda:
        raise CprCoachError(
            "nothing to measure: --pairs 0 skips the CPU comparison, and torch sees no GPU",
            fix="give --pairs N, or run the benchmark on a machine with a GPU",
        )
    clip, truth = synthetic_clip(max(args.pairs, args.cuda_pairs if cuda else 0) + 1, height, width)
    print(f"frames   {width}x{height} grey, astronaut moved by smooth random flow (max {MAX_FLOW:g} px); default TV-L1")
    if args.pairs:
        compare_on_cpu(clip[: args.pairs + 1], truth[: args.pairs], params, args.threads, args.batch_size)
    if not cuda:
        print("cuda     no GPU: torch.cuda.is_available() is False")
        return
    solved = {fused: run_on_gpu(clip, truth, params, args.batch_size, fused) for fused in (True, False)}
    fused_rate, eager_rate = (len(truth) / solved[fused][1] for fused in (True, False))
    print(f"ratio    fused/eager {fused_rate / eager_rate:.2f}x the pairs/s on the GPU")
    print(f"EPE      fused vs eager {end_point_error(solved[True][0], solved[False][0]):.4f} px")
    batch = min(args.batch_size or auto_batch_size(height, width, "cuda", params), len(truth))
    solve = functools.partial(flow_torch, params=params, device="cuda", batch_size=batch, bound=QUANTIZE_BOUND)
    _, uint8_time = timed(solve, clip)
    print(
        f"cuda     fused, quantized to uint8 on the GPU (the flow stage's output): {len(truth) / uint8_time:.1f} pairs/s"
    )


def run_on_gpu(
    clip: np.ndarray, truth: np.ndarray, params: TVL1Params, batch: int | None, fused: bool
) -> tuple[np.ndarray, float]:
    """One solver on the GPU: pairs/s, peak memory per pixel of a pair and EPE; the flow and its time."""
    height, width = clip.shape[1:]
    pairs = len(truth)
    gpu_batch = min(batch or auto_batch_size(height, width, "cuda", params, fused), pairs)
    solve = functools.partial(flow_torch, params=params, device="cuda", batch_size=gpu_batch, fused=fused)
    torch.cuda.reset_peak_memory_stats()
    flow, gpu_time = timed(solve, clip)
    peak = torch.cuda.max_memory_allocated()
    name = "fused" if fused else "eager"
    print(
        f"cuda     {name}: {pairs} pairs in {gpu_time:.2f} s  {pairs / gpu_time:.1f} pairs/s  batch {gpu_batch}"
        f"  ({torch.cuda.get_device_name()})"
    )
    print(
        f"memory   {name}: peak {peak / 2**30:.2f} GiB = {peak / (gpu_batch * height * width):.0f} bytes per pixel"
        f" of a pair  EPE {end_point_error(flow, truth):.3f} px"
    )
    return flow, gpu_time
