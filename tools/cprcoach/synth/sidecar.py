"""What the ground-truth sidecar of a synthetic video holds: labels, camera, keypoints, the
compression signal and the take's motion. The file format (its path, writer, reader and format
tag) belongs to cprcoach.pose.groundtruth, the stage that reads it.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np

from cprcoach.pose.groundtruth import SIDECAR_FORMAT
from cprcoach.skeleton import HALPE26
from cprcoach.synth.camera import Camera
from cprcoach.synth.manikin import CHEST_POINT
from cprcoach.synth.take import Take, VideoSpec


def build_sidecar(spec: VideoSpec, take: Take, camera: Camera) -> dict[str, Any]:
    """The sidecar's content. keypoints_2d is the exact projection used to draw the frames."""
    points = take.poses.keypoints
    pixels = camera.project(points)
    return {
        "format": SIDECAR_FORMAT,
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
