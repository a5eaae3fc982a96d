"""Exports for other tools: the skeletons as a pyskl / mmaction2 annotation pickle, and the
rawframes layout of mmaction2 and the CPR-Coach release.

Skeleton pickle: {'split': {'train': [frame_dir, ...], 'test': [...]}, 'annotations': [{
'frame_dir': video_id, 'label': int, 'img_shape' and 'original_shape': (H, W) of the raw video
(the keypoints are in its pixels), 'total_frames': T, 'keypoint': float32 (1, T, 26, 2),
'keypoint_score': float32 (1, T, 26), 'multi_hot': uint8 (14,), 'label_code': str}]}.
'label' is the class index of a single-class video and, for a composite, the index of its
first error (the lowest index); the full label of a composite is 'multi_hot'.

Rawframes: OUT/{video_id}/img_00001.jpg ... (the shard's JPEGs, byte for byte),
flow_x_00001.jpg ... and flow_y_00001.jpg ... (greyscale JPEGs), all numbered from 1; flow i
is the motion from frame i to frame i+1. File lists, lines `frame_dir total_frames label`:
cprcoach_{split}_list_rawframes.txt (RGB frame counts), cprcoach_{split}_list_rawframes_flow.txt
(flow counts) and cprcoach_{split}_list_rawframes_multilabel.txt (every class index of the
video, for mmaction2's multi_class lists).
"""

from __future__ import annotations

import argparse
import logging
import pickle
import shutil
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from cprcoach.atomic import atomic_path, partial_path, write_text_atomic
from cprcoach.errors import cli_errors
from cprcoach.flow.quantize import quantize
from cprcoach.logs import setup_logging
from cprcoach.shards.index import read_index
from cprcoach.shards.store import open_shard, read_array, read_jpegs, video_group

log = logging.getLogger(__name__)

FLOW_JPEG_QUALITY = 95
LIST_PREFIX = "cprcoach"


def _by_shard(index: pd.DataFrame):
    """(open shard, its index rows) for each shard, each file opened once."""
    for path, rows in index.groupby("shard", sort=False):
        with open_shard(path) as shard:
            yield shard, rows


def skeleton_annotations(index: pd.DataFrame) -> dict[str, Any]:
    """The pyskl / mmaction2 skeleton annotation dict of every video of the index."""
    annotations = {}
    for shard, rows in _by_shard(index):
        for row in rows.itertuples(index=False):
            keypoints = read_array(video_group(shard, row.group), "keypoints")
            shape = (int(row.source_height), int(row.source_width))
            annotations[row.video_id] = {
                "frame_dir": row.video_id,
                "label": int(row.label_index),
                "img_shape": shape,
                "original_shape": shape,
                "total_frames": len(keypoints),
                "keypoint": np.ascontiguousarray(keypoints[None, ..., :2], dtype=np.float32),
                "keypoint_score": np.ascontiguousarray(keypoints[None, ..., 2], dtype=np.float32),
                "multi_hot": np.array([int(c) for c in row.multi_hot], dtype=np.uint8),
                "label_code": row.label,
            }
    ordered = [annotations[v] for v in index["video_id"]]
    split = {name: list(rows["video_id"]) for name, rows in index.groupby("split", sort=True)}
    return {"split": split, "annotations": ordered}


def export_skeletons(index: pd.DataFrame, out: str | Path) -> dict[str, Any]:
    data = skeleton_annotations(index)
    with atomic_path(out) as tmp, open(tmp, "wb") as handle:
        pickle.dump(data, handle, protocol=pickle.HIGHEST_PROTOCOL)
    return data


def _flow_images(flow: np.ndarray, bound: float) -> np.ndarray:
    return flow if flow.dtype == np.uint8 else quantize(flow.astype(np.float32), bound)


def _write_video_frames(group, out_dir: Path, flow_quality: int) -> None:
    """One video's folder, written beside it and renamed: a folder that exists is complete."""
    tmp = partial_path(out_dir)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for i, blob in enumerate(read_jpegs(group, np.arange(len(group["rgb"]))), start=1):
        (tmp / f"img_{i:05d}.jpg").write_bytes(blob.tobytes())
    bound = float(group.attrs["flow_bound"])
    encode = [cv2.IMWRITE_JPEG_QUALITY, flow_quality]
    for axis in ("x", "y"):
        for i, image in enumerate(_flow_images(read_array(group, f"flow_{axis}"), bound), start=1):
            (tmp / f"flow_{axis}_{i:05d}.jpg").write_bytes(cv2.imencode(".jpg", image, encode)[1].tobytes())
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)


def rawframe_lists(index: pd.DataFrame) -> dict[str, str]:
    """File name -> text of the mmaction2 file lists, per split."""
    lists = {}
    for split, rows in index.groupby("split", sort=True):
        stem = f"{LIST_PREFIX}_{split}_list_rawframes"
        multi = [" ".join(str(i) for i, c in enumerate(m) if c == "1") for m in rows["multi_hot"]]
        lists[f"{stem}.txt"] = "".join(
            f"{v} {n} {label}\n"
            for v, n, label in zip(rows["video_id"], rows["frames"], rows["label_index"], strict=True)
        )
        lists[f"{stem}_flow.txt"] = "".join(
            f"{v} {n} {label}\n"
            for v, n, label in zip(rows["video_id"], rows["flow_frames"], rows["label_index"], strict=True)
        )
        lists[f"{stem}_multilabel.txt"] = "".join(
            f"{v} {n} {labels}\n" for v, n, labels in zip(rows["video_id"], rows["frames"], multi, strict=True)
        )
    return lists


def export_rawframes(index: pd.DataFrame, out: str | Path, flow_quality: int = FLOW_JPEG_QUALITY) -> list[Path]:
    """Write every video of the index as rawframes under `out`, then the file lists; returns the video folders."""
    out = Path(out)
    for shard, rows in _by_shard(index):
        for row in rows.itertuples(index=False):
            _write_video_frames(video_group(shard, row.group), out / row.video_id, flow_quality)
    for name, text in rawframe_lists(index).items():
        write_text_atomic(out / name, text)
    return [out / video_id for video_id in index["video_id"]]


def build_skeleton_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="cprcoach shards export-skeleton", description=__doc__)
    parser.add_argument("--index", type=Path, required=True, help="the index (TSV) of `cprcoach shards index`")
    parser.add_argument("--out", type=Path, required=True, help="annotation pickle to write (.pkl)")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


@cli_errors
def run_skeleton(args: argparse.Namespace) -> None:
    setup_logging(args.verbose)
    data = export_skeletons(read_index(args.index), args.out)
    counts = {name: len(ids) for name, ids in data["split"].items()}
    log.info("%d skeleton sequences -> %s (%s)", len(data["annotations"]), args.out, counts)


def build_rawframes_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="cprcoach shards export-rawframes", description=__doc__)
    parser.add_argument("--index", type=Path, required=True, help="the index (TSV) of `cprcoach shards index`")
    parser.add_argument("--out", type=Path, required=True, help="folder to write (one subfolder per video)")
    parser.add_argument("--flow-quality", type=int, default=FLOW_JPEG_QUALITY, help="JPEG quality of the flow images")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


@cli_errors
def run_rawframes(args: argparse.Namespace) -> None:
    setup_logging(args.verbose)
    started = time.perf_counter()
    folders = export_rawframes(read_index(args.index), args.out, args.flow_quality)
    log.info("%d videos -> %s in %.1f s", len(folders), args.out, time.perf_counter() - started)
