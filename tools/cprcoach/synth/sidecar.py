"""The ground-truth sidecar of a synthetic video: labels, camera, keypoints, compression signal.

One JSON file beside each video (E05_01.mp4 -> E05_01.gt.json). Top-level keys sit one per
line and arrays are compact, so files stay small and byte-identical for the same config.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from cprcoach.atomic import write_text_atomic
from cprcoach.errors import VideoError
from cprcoach.skeleton import HALPE26
from cprcoach.synth.camera import Camera
from cprcoach.synth.manikin import CHEST_POINT
from cprcoach.synth.take import Take, VideoSpec

FORMAT = "cprcoach-synth-gt/2"
_ARRAYS = ("keypoints_2d", "visible", "keypoints_3d", "chest_depth", "hand_lift", "body_lift", "hand_spot")


def sidecar_path(video_path: str | Path) -> Path:
    """E05_01.mp4 -> E05_01.gt.json, in the same folder."""
    return Path(video_path).with_suffix(".gt.json")


def build_sidecar(spec: VideoSpec, take: Take, camera: Camera) -> dict[str, Any]:
    """The sidecar's content. keypoints_2d is the exact projection used to draw the frames."""
    points = take.poses.keypoints
    pixels = camera.project(points)
    return {
        "format": FORMAT,
        "participant": spec.participant_name,
        "view": spec.view,
        "label": spec.label,
        "take": spec.take_name,
        "multi_hot": list(spec.multi_hot),
        "errors": list(spec.errors),
        "fps": spec.fps,
        "width": spec.width,
        "height": spec.height,
        "frames": spec.frames,
        "seed": spec.seed,
        "camera": camera.as_dict(),
        "joints": list(HALPE26),
        "keypoints_2d": np.round(pixels, 2).tolist(),
        "visible": camera.inside(pixels, points).tolist(),
        "keypoints_3d": points.tolist(),
        "chest_point": CHEST_POINT.tolist(),
        "chest_depth": np.round(take.signal.depth, 5).tolist(),
        "hand_lift": np.round(take.signal.hand_lift, 5).tolist(),
        "body_lift": np.round(take.signal.body_lift, 5).tolist(),
        "hand_spot": np.round(take.signal.spot, 5).tolist(),
        "compression_starts": np.round(take.signal.starts, 4).tolist(),
        "severity": take.severity,
        "motion": _rounded(asdict(take.motion)),
        "participant_params": asdict(take.person),
    }


def _rounded(values: dict[str, Any]) -> dict[str, Any]:
    return {
        k: (round(v, 6) if isinstance(v, float) else [round(x, 6) for x in v] if isinstance(v, (list, tuple)) else v)
        for k, v in values.items()
    }


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
    if data.get("format") != FORMAT:
        raise VideoError(
            f"not a {FORMAT} sidecar (format {data.get('format')!r})",
            path=path,
            fix="re-render it with `cprcoach synth --force`",
        )
    for key in _ARRAYS:
        data[key] = np.asarray(data[key], dtype=bool if key == "visible" else float)
    for key in ("K", "R", "t"):
        data["camera"][key] = np.asarray(data["camera"][key], dtype=float)
    return data
