"""`cprcoach shards bench`: read throughput of the shards against per-frame JPEG files, and bytes per frame.

The first --videos videos of the index are exported as rawframes (the mmaction2 layout) to a
scratch folder; then --clips training items (random TSN sampling) are read per modality, in
one process, from the shards through the Datasets and from the files with the same sampling
and the same decoder (OpenCV). Both are read from a warm page cache: the figures compare the
work per clip (open, seek, decode), not the disk.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch

from cprcoach.atomic import atomic_path
from cprcoach.errors import CprCoachError, cli_errors
from cprcoach.logs import setup_logging
from cprcoach.shards.datasets import FlowDataset, RGBDataset, SkeletonDataset, frame_indices, segment_starts
from cprcoach.shards.export import export_rawframes
from cprcoach.shards.index import read_index

log = logging.getLogger(__name__)


def _rgb_files(folder: Path, record: dict, num_segments: int) -> torch.Tensor:
    total = int(record["frames"])
    indices = frame_indices(segment_starts(total, num_segments, 1, True), 1, total).reshape(-1)
    frames = [cv2.cvtColor(cv2.imread(str(folder / f"img_{i + 1:05d}.jpg")), cv2.COLOR_BGR2RGB) for i in indices]
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).contiguous()


def _flow_files(folder: Path, record: dict, num_segments: int, length: int) -> torch.Tensor:
    total = int(record["flow_frames"])
    indices = frame_indices(segment_starts(total, num_segments, length, True), length, total).reshape(-1)
    images = [
        cv2.imread(str(folder / f"flow_{axis}_{i + 1:05d}.jpg"), cv2.IMREAD_GRAYSCALE)
        for i in indices
        for axis in ("x", "y")
    ]
    return torch.from_numpy(np.stack(images).reshape(num_segments, 2 * length, *images[0].shape))


def _rate(read: Callable[[int], object], clips: int, items: int) -> float:
    """Clips per second of `read(i)` over `clips` reads cycling through `items` videos."""
    read(0)
    started = time.perf_counter()
    for i in range(clips):
        read(i % items)
    return clips / (time.perf_counter() - started)


def _bytes_per_file(files: list[Path]) -> tuple[float, float]:
    """Mean apparent size and mean disk allocation (whole file-system blocks) of files."""
    stats = [f.stat() for f in files]
    return float(np.mean([s.st_size for s in stats])), float(np.mean([s.st_blocks * 512 for s in stats]))


def run_bench(
    index: pd.DataFrame,
    scratch: Path,
    *,
    videos: int = 8,
    clips: int = 64,
    num_segments: int = 8,
    flow_length: int = 5,
    clip_len: int = 100,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(throughput, storage) tables for the first `videos` videos of the index."""
    subset = index.iloc[:videos].reset_index(drop=True)
    if subset.empty:
        raise CprCoachError("the index lists no videos", fix="build the shards and the index first")
    export_rawframes(subset, scratch)
    records = subset.to_dict("records")
    folders = [scratch / r["video_id"] for r in records]
    skeleton = SkeletonDataset(subset, train=True, clip_len=clip_len)
    rgb = RGBDataset(subset, train=True, num_segments=num_segments)
    flow = FlowDataset(subset, train=True, num_segments=num_segments, length=flow_length)
    n = len(records)
    rates = [
        ("skeleton", "shards", clip_len, _rate(lambda i: skeleton[i], clips, n)),
        ("rgb segments", "shards", num_segments, _rate(lambda i: rgb[i], clips, n)),
        (
            "rgb segments",
            "jpeg files",
            num_segments,
            _rate(lambda i: _rgb_files(folders[i], records[i], num_segments), clips, n),
        ),
        ("flow stacks", "shards", 2 * num_segments * flow_length, _rate(lambda i: flow[i], clips, n)),
        (
            "flow stacks",
            "jpeg files",
            2 * num_segments * flow_length,
            _rate(lambda i: _flow_files(folders[i], records[i], num_segments, flow_length), clips, n),
        ),
    ]
    throughput = pd.DataFrame(rates, columns=["modality", "source", "images_per_clip", "clips_per_s"])
    throughput["images_per_s"] = throughput["images_per_clip"] * throughput["clips_per_s"]
    rgb_size, rgb_disk = _bytes_per_file([f for d in folders for f in d.glob("img_*.jpg")])
    flow_size, flow_disk = _bytes_per_file([f for d in folders for f in d.glob("flow_*.jpg")])
    shard_rgb = subset["rgb_bytes"].sum() / subset["frames"].sum()
    shard_flow = subset["flow_bytes"].sum() / (2 * subset["flow_frames"].sum())
    storage = pd.DataFrame(
        [
            ("rgb frame", "shards (jpeg)", shard_rgb, shard_rgb),
            ("rgb frame", "jpeg files", rgb_size, rgb_disk),
            ("flow image (x or y)", "shards (zstd, lossless)", shard_flow, shard_flow),
            ("flow image (x or y)", "jpeg files (lossy)", flow_size, flow_disk),
        ],
        columns=["unit", "store", "bytes", "bytes_on_disk"],
    )
    return throughput, storage


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="cprcoach shards bench", description=__doc__)
    parser.add_argument("--index", type=Path, required=True, help="the index (TSV) of `cprcoach shards index`")
    parser.add_argument("--videos", type=int, default=8, help="videos to read (the first of the index)")
    parser.add_argument("--clips", type=int, default=64, help="items read per modality and source")
    parser.add_argument("--num-segments", type=int, default=8)
    parser.add_argument("--flow-length", type=int, default=5, help="flow pairs per segment")
    parser.add_argument("--clip-len", type=int, default=100, help="frames per skeleton sequence")
    parser.add_argument("--scratch", type=Path, help="folder for the rawframes copy (default: the system's temp)")
    parser.add_argument("--out", type=Path, help="also write both tables here (TSV)")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


@cli_errors
def run(args: argparse.Namespace) -> None:
    setup_logging(args.verbose)
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    index = read_index(args.index)
    if args.scratch:
        args.scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.scratch) as scratch:
        throughput, storage = run_bench(
            index,
            Path(scratch),
            videos=args.videos,
            clips=args.clips,
            num_segments=args.num_segments,
            flow_length=args.flow_length,
            clip_len=args.clip_len,
        )
    print(throughput.round(1).to_string(index=False))
    print()
    print(storage.round(0).to_string(index=False))
    if args.out:
        with atomic_path(args.out) as tmp:
            pd.concat([throughput.assign(table="throughput"), storage.assign(table="storage")]).to_csv(
                tmp, sep="\t", index=False
            )
