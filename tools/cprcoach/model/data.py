"""Skeleton inputs of the backbone: every video's pose as one normalised (3, T, 26) array, in memory.

The demo holds a few hundred videos of a few seconds (a few MB at T = 64), and even the full
CPR-Coach skeleton set (4,544 videos) is about 100 MB: one in-memory bundle, read once, keeps
training free of per-epoch file reads on CPU and GPU alike.

Normalisation, per video (see `normalise`):
- time: resampled to a fixed T frames by linear interpolation over the whole clip (pyskl's
  uniform sampling, without dropping frames); rate errors stay visible as long as videos are
  of similar length, which holds for CPR-Coach's fixed-protocol recordings;
- position: the median position of the hip centre over the clip is the origin, one number per
  video and not per frame, so the body's up-and-down compression movement stays in the data;
- scale: divided by the person's size, the median over frames of the longer side of the seen
  joints' box (the size PCK uses, cf. cprcoach.pose.groundtruth.person_size), so near and far
  cameras and tall and short rescuers look alike. Not the torso length: seen from the front
  (the demo's V1) the torso is foreshortened to a third of its side-view length, and a
  per-view scale that differs 3x would hide the small differences the errors make;
- the keypoint score is the third channel (0 where the joint was not seen).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from cprcoach.errors import CprCoachError
from cprcoach.pose.format import read_pose
from cprcoach.pose.groundtruth import person_size
from cprcoach.skeleton import HALPE26, JOINT

log = logging.getLogger(__name__)

FRAMES = 64
CENTRE_JOINT = JOINT["hip"]
# Fallback centre when the hip centre is never seen: the two hips.
HIP_JOINTS = [JOINT["left_hip"], JOINT["right_hip"]]
TEXT_FIELDS = ("video_id", "participant", "view", "label", "take", "split")


@dataclass
class SkeletonBundle:
    """N videos: inputs x (N, 3, T, 26) float32, labels multi_hot (N, 14) uint8 and their sheet fields."""

    x: np.ndarray
    multi_hot: np.ndarray
    video_id: np.ndarray
    participant: np.ndarray
    view: np.ndarray
    label: np.ndarray
    take: np.ndarray
    split: np.ndarray

    def __post_init__(self) -> None:
        self.x = np.asarray(self.x, dtype=np.float32)
        self.multi_hot = np.asarray(self.multi_hot, dtype=np.uint8)
        for name in TEXT_FIELDS:
            setattr(self, name, np.asarray(getattr(self, name), dtype=str))
        if self.x.ndim != 4 or self.x.shape[1] != 3 or self.x.shape[3] != len(HALPE26):
            raise ValueError(f"x must be (N, 3, T, {len(HALPE26)}), got {self.x.shape}")
        wrong = [name for name in ("multi_hot", *TEXT_FIELDS) if len(getattr(self, name)) != len(self.x)]
        if wrong:
            raise ValueError(f"{', '.join(wrong)} must have one entry per video ({len(self.x)})")

    def __len__(self) -> int:
        return len(self.x)

    @property
    def frames(self) -> int:
        return self.x.shape[2]

    @property
    def is_single(self) -> np.ndarray:
        """Videos with exactly one class (a single class; composites have two or more)."""
        return self.multi_hot.sum(axis=1) == 1

    @property
    def class_index(self) -> np.ndarray:
        """The class of each single-class video (for a composite: its first error, not to be used)."""
        return self.multi_hot.argmax(axis=1)

    def subset(self, mask: np.ndarray) -> SkeletonBundle:
        return SkeletonBundle(**{f.name: getattr(self, f.name)[mask] for f in fields(self)})


def resample(keypoints: np.ndarray, frames: int) -> np.ndarray:
    """(T, J, C) -> (frames, J, C) by linear interpolation over the whole clip."""
    keypoints = np.asarray(keypoints, dtype=np.float32)
    count = len(keypoints)
    if count == 0:
        raise ValueError("a pose track without frames cannot be resampled")
    position = np.linspace(0.0, count - 1, frames)
    low = np.floor(position).astype(int)
    high = np.minimum(low + 1, count - 1)
    weight = (position - low)[:, None, None].astype(np.float32)
    return keypoints[low] * (1.0 - weight) + keypoints[high] * weight


def _median_point(xy: np.ndarray, seen: np.ndarray) -> np.ndarray | None:
    """Median of the seen positions (..., 2), None if none was seen."""
    points = xy[seen]
    return np.median(points, axis=0) if len(points) else None


def normalise(keypoints: np.ndarray, frames: int = FRAMES) -> np.ndarray:
    """(T, 26, 3) raw-pixel keypoints -> (3, frames, 26): x, y centred and scaled (module docstring), score.

    A track where no joint was ever seen gives zeros: nothing to centre, and score 0 says so.
    """
    track = resample(keypoints, frames)
    xy, score = track[..., :2], track[..., 2]
    seen = score > 0
    if not seen.any():
        return np.zeros((3, frames, len(HALPE26)), dtype=np.float32)
    centre = _median_point(xy[:, CENTRE_JOINT], seen[:, CENTRE_JOINT])
    if centre is None:
        centre = _median_point(xy[:, HIP_JOINTS].reshape(-1, 2), seen[:, HIP_JOINTS].reshape(-1))
    if centre is None:
        centre = _median_point(xy, seen)
    size = person_size(xy, seen)
    size = size[size > 0]
    scale = float(np.median(size)) if len(size) else 0.0
    if scale <= 1e-6:  # a single seen joint: nothing to measure, keep pixels
        scale = 1.0
    out = np.empty((3, frames, len(HALPE26)), dtype=np.float32)
    out[:2] = ((xy - centre) / scale).transpose(2, 0, 1)
    out[2] = score
    return out


def multi_hot(text: str) -> np.ndarray:
    """The label string of the sheet and index ("0100...") as a (C,) uint8 vector."""
    return np.frombuffer(text.encode(), dtype=np.uint8) - ord("0")


def _bundle(rows: pd.DataFrame, load: Callable[[dict], np.ndarray], frames: int, desc: str) -> SkeletonBundle:
    records = rows.to_dict("records")
    x = np.stack([normalise(load(row), frames) for row in tqdm(records, desc=desc, unit="video", leave=False)])
    return SkeletonBundle(
        x=x,
        multi_hot=np.stack([multi_hot(str(row["multi_hot"])) for row in records]),
        **{name: rows[name].astype(str).to_numpy() for name in TEXT_FIELDS},
    )


def pose_paths(sheet: pd.DataFrame, pattern: str) -> list[Path]:
    """Each sheet row's pose file: `pattern` with {participant} {view} {label} {take} {video_id} filled in."""
    try:
        rows = sheet[["video_id", "participant", "view", "label", "take"]].to_dict("records")
        return [Path(pattern.format(**row)) for row in rows]
    except (KeyError, IndexError, ValueError) as error:
        raise CprCoachError(
            f"the pose pattern {pattern!r} cannot be filled in ({error!r})",
            fix="use only {participant}, {view}, {label}, {take} and {video_id}, "
            "e.g. results/pose/{participant}/{view}/{label}_{take}.npz",
        ) from None


def bundle_from_poses(sheet: pd.DataFrame, pattern: str, frames: int = FRAMES) -> SkeletonBundle:
    """Every video of the sample sheet, read from its pose .npz (cprcoach.pose.format)."""
    paths = pose_paths(sheet, pattern)
    missing = [str(path) for path in paths if not path.is_file()]
    if missing:
        shown = "\n    ".join(missing[:10]) + (f"\n    ... and {len(missing) - 10} more" if len(missing) > 10 else "")
        raise CprCoachError(
            f"{len(missing)} of {len(paths)} pose files are missing:\n    {shown}",
            fix="run the pose stage first (`cprcoach pose estimate`), or check --poses",
        )
    rows = sheet.assign(_pose=[str(p) for p in paths])
    log.info("reading %d pose files (T = %d)", len(rows), frames)
    return _bundle(rows, lambda row: read_pose(row["_pose"]).keypoints, frames, "poses")


def bundle_from_index(index_path: str | Path, frames: int = FRAMES) -> SkeletonBundle:
    """Every video of a shard index (cprcoach.shards), its skeleton read from its shard."""
    from cprcoach.shards.index import read_index
    from cprcoach.shards.store import open_shard

    table = read_index(index_path)
    cache: dict[str, object] = {}

    def load(row: dict) -> np.ndarray:
        if row["shard"] not in cache:
            cache[row["shard"]] = open_shard(row["shard"])
        return cache[row["shard"]][row["group"]]["keypoints"][:]

    log.info("reading %d skeletons from %d shards (T = %d)", len(table), table["shard"].nunique(), frames)
    try:
        return _bundle(table, load, frames, "shards")
    finally:
        for shard in cache.values():
            shard.close()
