"""The groundtruth backend: a synthetic video's own keypoints, made to look like a detector's, and
the format of the ground-truth sidecar it reads (which cprcoach synth writes beside each video).

The sidecar holds the exact projection of every joint (raw-video pixels) and whether it is
inside the image. On top of it:
- noise: Gaussian, `noise_px` source pixels per coordinate;
- misses: a share `miss_rate` of frames is dropped as missed detections (then gap-filled);
  a frame where no joint is inside the image is missed too;
- scores: 0 where the joint is outside the image, else 0.95 * exp(-(e / (0.1 s))^2 / 2) with e
  the pixel error drawn and s the person's size (max side of the true keypoints' box): a
  joint off by the PCK@0.2 tolerance scores 0.13, an exact one 0.95;
- box: the noisy visible keypoints' box, widened by 10 % of its size on each side.
The random draws are seeded by (seed, participant, view, label, take), so every video gets its
own noise and the same config always gives the same files.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from cprcoach.atomic import write_text_atomic
from cprcoach.errors import VideoError
from cprcoach.pose.format import keypoint_box

MAX_SCORE = 0.95
SIDECAR_FORMAT = "cprcoach-synth-gt/2"
# Sidecar entries that read_sidecar returns as arrays.
_ARRAYS = ("keypoints_2d", "visible", "keypoints_3d", "chest_depth", "hand_lift", "body_lift", "hand_spot")


def sidecar_path(video_path: str | Path) -> Path:
    """E04_01.mp4 -> E04_01.gt.json, in the same folder."""
    return Path(video_path).with_suffix(".gt.json")


def write_sidecar(path: str | Path, data: dict[str, Any]) -> None:
    """Write atomically: one top-level key per line, values compact."""
    lines = [f" {json.dumps(key)}: {json.dumps(value, separators=(',', ':'))}" for key, value in data.items()]
    write_text_atomic(path, "{\n" + ",\n".join(lines) + "\n}\n")


def read_sidecar(path: str | Path) -> dict[str, Any]:
    """Load a sidecar; keypoints, visibility, depth and the camera matrices come back as arrays."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise VideoError(
            f"cannot read the ground-truth sidecar ({error})",
            path=path,
            fix="re-render it with `cprcoach synth --force`",
        ) from None
    if data.get("format") != SIDECAR_FORMAT:
        raise VideoError(
            f"not a {SIDECAR_FORMAT} sidecar (format {data.get('format')!r})",
            path=path,
            fix="re-render it with `cprcoach synth --force`",
        )
    for key in _ARRAYS:
        data[key] = np.asarray(data[key], dtype=bool if key == "visible" else float)
    for key in ("K", "R", "t"):
        data["camera"][key] = np.asarray(data["camera"][key], dtype=float)
    return data


def frame_map(frames: int, fps: float, source_frames: int, source_fps: float) -> np.ndarray:
    """Index of the source frame shown at each clip frame (a resampled clip has other times)."""
    index = np.round(np.arange(frames) * source_fps / fps).astype(int)
    return np.clip(index, 0, source_frames - 1)


def person_size(xy: np.ndarray, visible: np.ndarray) -> np.ndarray:
    """(T, 26, 2), (T, 26) -> (T,): max side of the box of the visible keypoints (0: none visible)."""
    x = np.where(visible, xy[..., 0], np.nan)
    y = np.where(visible, xy[..., 1], np.nan)
    seen = visible.any(axis=-1)
    x = np.where(seen[:, None], x, 0.0)
    y = np.where(seen[:, None], y, 0.0)
    sides = np.maximum(np.nanmax(x, axis=-1) - np.nanmin(x, axis=-1), np.nanmax(y, axis=-1) - np.nanmin(y, axis=-1))
    return np.where(seen, sides, 0.0)


def video_seed(seed: int, sidecar: dict[str, Any]) -> np.random.SeedSequence:
    """A seed per video from the config's seed and the recording's identity (not Python's hash)."""
    key = f"{sidecar['participant']}/{sidecar['view']}/{sidecar['label']}_{sidecar['take']}"
    return np.random.SeedSequence([seed, zlib.crc32(key.encode())])


def groundtruth_pose(
    sidecar: dict[str, Any], frames: int, fps: float, *, noise_px: float, miss_rate: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keypoints (T, 26, 3), box (T, 4) and found (T,) for a clip of `frames` at `fps`, source pixels."""
    index = frame_map(frames, fps, len(sidecar["keypoints_2d"]), float(sidecar["fps"]))
    truth = np.asarray(sidecar["keypoints_2d"], dtype=np.float64)[index]
    visible = np.asarray(sidecar["visible"], dtype=bool)[index]
    rng = np.random.default_rng(video_seed(seed, sidecar))
    error = rng.normal(0.0, noise_px, size=truth.shape) if noise_px > 0 else np.zeros_like(truth)
    missed = rng.random(frames) < miss_rate
    size = np.maximum(person_size(truth, visible), 1.0)
    distance = np.linalg.norm(error, axis=-1)
    scores = np.where(visible, MAX_SCORE * np.exp(-0.5 * (distance / (0.1 * size[:, None])) ** 2), 0.0)
    keypoints = np.concatenate([truth + error, scores[..., None]], axis=-1).astype(np.float32)
    found = ~missed & visible.any(axis=1)
    box = keypoint_box(keypoints, sidecar["width"], sidecar["height"])
    return keypoints, box, found
