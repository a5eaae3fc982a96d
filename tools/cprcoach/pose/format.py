"""The pose file: one compressed .npz per video, what every later stage (ST-GCN, QC, overlays) reads.

Arrays, T = frames of the pose clip:
  keypoints     (T, 26, 3) float32  x, y in raw-video pixels, score in [0, 1] (0: not seen)
  box           (T, 4) float32      x0, y0, x1, y1 of the rescuer, raw-video pixels
  found         (T,) bool           the detector saw the rescuer in that frame
  interpolated  (T,) bool           a short gap, positions interpolated between found frames
  meta          0-d str             JSON: backend, its parameters, sizes, fps, versions, counts
Frames neither found nor interpolated hold the nearest known position with score 0.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cprcoach.arrays import npz_length
from cprcoach.atomic import atomic_path
from cprcoach.errors import CprCoachError
from cprcoach.skeleton import HALPE26

FORMAT = "cprcoach-pose/1"


@dataclass
class PoseTrack:
    """The rescuer's skeleton over one clip (see the module docstring for the layout)."""

    keypoints: np.ndarray
    box: np.ndarray
    found: np.ndarray
    interpolated: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.keypoints = np.asarray(self.keypoints, dtype=np.float32)
        self.box = np.asarray(self.box, dtype=np.float32)
        self.found = np.asarray(self.found, dtype=bool)
        self.interpolated = np.asarray(self.interpolated, dtype=bool)
        frames = len(self.found)
        shapes = {
            "keypoints": (self.keypoints.shape, (frames, len(HALPE26), 3)),
            "box": (self.box.shape, (frames, 4)),
            "interpolated": (self.interpolated.shape, (frames,)),
        }
        wrong = [f"{name} {got} (expected {want})" for name, (got, want) in shapes.items() if got != want]
        if wrong:
            raise ValueError("inconsistent pose arrays: " + ", ".join(wrong))

    @property
    def frames(self) -> int:
        return len(self.found)

    @property
    def xy(self) -> np.ndarray:
        return self.keypoints[..., :2]

    @property
    def scores(self) -> np.ndarray:
        return self.keypoints[..., 2]


def keypoint_box(
    keypoints: np.ndarray, width: float, height: float, *, min_score: float = 0.0, margin: float = 0.1
) -> np.ndarray:
    """(..., 26, 3) -> (..., 4): the box of the joints scored above `min_score`, widened by `margin`
    of its size on each side and clipped to the image; all zeros where no joint qualifies."""
    keypoints = np.asarray(keypoints, dtype=np.float32)
    use = keypoints[..., 2] > min_score
    x = np.where(use, keypoints[..., 0], np.nan)
    y = np.where(use, keypoints[..., 1], np.nan)
    any_joint = use.any(axis=-1)
    x = np.where(any_joint[..., None], x, 0.0)  # keeps nanmin/nanmax off all-NaN rows
    y = np.where(any_joint[..., None], y, 0.0)
    x0, x1 = np.nanmin(x, axis=-1), np.nanmax(x, axis=-1)
    y0, y1 = np.nanmin(y, axis=-1), np.nanmax(y, axis=-1)
    pad_x, pad_y = margin * (x1 - x0), margin * (y1 - y0)
    box = np.stack(
        [
            np.clip(x0 - pad_x, 0, width - 1),
            np.clip(y0 - pad_y, 0, height - 1),
            np.clip(x1 + pad_x, 0, width - 1),
            np.clip(y1 + pad_y, 0, height - 1),
        ],
        axis=-1,
    )
    return np.where(any_joint[..., None], box, 0.0).astype(np.float32)


def write_pose(path: str | Path, track: PoseTrack) -> None:
    """Write atomically (temporary sibling, then rename), so a half-written file never looks done."""
    meta = {"format": FORMAT, "joints": list(HALPE26), **track.meta}
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(
            handle,
            keypoints=track.keypoints,
            box=track.box,
            found=track.found,
            interpolated=track.interpolated,
            meta=np.array(json.dumps(meta)),
        )


def pose_frames(path: str | Path) -> int:
    """How many frames a pose file holds, from its header alone."""
    return npz_length(path, "keypoints")


def read_pose(path: str | Path) -> PoseTrack:
    """Load a pose file written by write_pose; anything else is a CprCoachError naming the file."""
    path = Path(path)
    fix = "delete it and rerun `cprcoach pose estimate`"
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in ("keypoints", "box", "found", "interpolated", "meta")}
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as error:
        raise CprCoachError(f"not a readable pose file ({error})", path=path, fix=fix) from None
    meta = json.loads(str(arrays.pop("meta")))
    if meta.get("format") != FORMAT:
        raise CprCoachError(f"not a {FORMAT} file (format {meta.get('format')!r})", path=path, fix=fix)
    return PoseTrack(meta=meta, **arrays)
