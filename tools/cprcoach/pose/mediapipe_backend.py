"""The mediapipe backend: MediaPipe Pose (the legacy `solutions` API of mediapipe 0.10.21), offline.

Only model_complexity=1 ("full") ships inside the wheel; 0 (lite) and 2 (heavy) are
downloaded at first use, which an offline pipeline cannot do, so they are refused. In video
mode MediaPipe tracks one person from frame to frame: the rescuer rule has nothing to choose.
Scores are MediaPipe's landmark visibility (in-frame and unoccluded likelihood).
"""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType

import av
import numpy as np

from cprcoach.errors import CprCoachError
from cprcoach.pose.halpe import MEDIAPIPE33, mediapipe_to_halpe

MODEL_COMPLEXITY = 1
INSTALL = "pip install --no-deps -r requirements-nodeps.txt (mediapipe 0.10.21 and protobuf 4)"


def load_mediapipe() -> ModuleType:
    """Import mediapipe quietly, or explain how to install it."""
    os.environ.setdefault("GLOG_minloglevel", "2")  # its C++ logging, otherwise one line per graph
    try:
        import mediapipe
    except ImportError as error:
        raise CprCoachError(
            f"pose.backend is mediapipe, but mediapipe cannot be imported ({error})",
            fix=f"{INSTALL}, or set pose.backend in config.yaml",
        ) from None
    return mediapipe


class MediaPipePose:
    """One MediaPipe Pose graph; call it on RGB frames in order, get (33, 3) [x px, y px, visibility]."""

    def __init__(
        self,
        *,
        static_image: bool = False,
        min_detection_confidence: float = 0.5,
        min_tracking_confidence: float = 0.5,
        model_complexity: int = MODEL_COMPLEXITY,
    ):
        if model_complexity != MODEL_COMPLEXITY:
            raise CprCoachError(
                f"MediaPipe model_complexity {model_complexity} is downloaded at first use, which this offline "
                "pipeline cannot do",
                fix=f"use model_complexity {MODEL_COMPLEXITY}, the model inside the mediapipe wheel",
            )
        mediapipe = load_mediapipe()
        self.version = mediapipe.__version__
        self.graph = mediapipe.solutions.pose.Pose(
            static_image_mode=static_image,
            model_complexity=model_complexity,
            smooth_landmarks=True,
            enable_segmentation=False,
            min_detection_confidence=min_detection_confidence,
            min_tracking_confidence=min_tracking_confidence,
        )

    def __call__(self, rgb: np.ndarray) -> np.ndarray | None:
        """Landmarks of the one person in `rgb` (H, W, 3 uint8), or None if nobody is found."""
        result = self.graph.process(np.ascontiguousarray(rgb))
        if result.pose_landmarks is None:
            return None
        height, width = rgb.shape[:2]
        return np.array(
            [(lm.x * width, lm.y * height, lm.visibility) for lm in result.pose_landmarks.landmark], dtype=np.float32
        )

    def close(self) -> None:
        self.graph.close()

    def __enter__(self) -> MediaPipePose:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def mediapipe_pose(
    clip: str | Path, *, min_detection_confidence: float, min_tracking_confidence: float
) -> tuple[np.ndarray, np.ndarray, str]:
    """Run over every frame of `clip`: Halpe-26 keypoints (T, 26, 3) in clip pixels, found (T,), version."""
    rows, found = [], []
    empty = np.zeros((len(MEDIAPIPE33), 3), dtype=np.float32)
    with (
        MediaPipePose(
            min_detection_confidence=min_detection_confidence, min_tracking_confidence=min_tracking_confidence
        ) as pose,
        av.open(str(clip)) as container,
    ):
        for frame in container.decode(video=0):
            landmarks = pose(frame.to_ndarray(format="rgb24"))
            rows.append(empty if landmarks is None else landmarks)
            found.append(landmarks is not None)
        version = pose.version
    if not rows:
        raise CprCoachError("the clip has no frames", path=clip, fix="delete it and rerun the resize stage")
    return mediapipe_to_halpe(np.stack(rows)), np.array(found), version
