"""MediaPipe Pose's 33 landmarks -> AlphaPose's Halpe-26 joints.

Copied directly: nose, eyes, ears, shoulders, elbows, wrists, hips, knees, ankles, heels, and
the big toes (MediaPipe's foot_index). Derived, with the lower score of their sources:
  neck = mean of the shoulders;  hip = mean of the hips;
  head (top of the head) = eye midpoint + HEAD_TOP_FACTOR x (eye midpoint - mouth midpoint):
    the face's own up-axis, so it follows a tilted head; the top of the skull sits about 1.6
    eye-to-mouth distances above the eyes in adult head proportions.
Not available: the small toes, which get score 0 at their big toe's position (so a drawn
skeleton stays on the foot).
"""

from __future__ import annotations

import numpy as np

from cprcoach.skeleton import JOINT

MEDIAPIPE33: tuple[str, ...] = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye", "right_eye_outer",
    "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist", "left_pinky", "right_pinky", "left_index", "right_index",
    "left_thumb", "right_thumb", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
    "left_heel", "right_heel", "left_foot_index", "right_foot_index",
)  # fmt: skip

_MP = {name: index for index, name in enumerate(MEDIAPIPE33)}

# Halpe-26 joint <- MediaPipe landmark, where one landmark is the joint.
DIRECT: dict[str, str] = {
    **{name: name for name in ("nose", "left_eye", "right_eye", "left_ear", "right_ear")},
    **{f"{side}_{part}": f"{side}_{part}" for side in ("left", "right") for part in ("shoulder", "elbow", "wrist")},
    **{f"{side}_{part}": f"{side}_{part}" for side in ("left", "right") for part in ("hip", "knee", "ankle", "heel")},
    "left_big_toe": "left_foot_index",
    "right_big_toe": "right_foot_index",
}

HEAD_TOP_FACTOR = 1.6


def _mean(landmarks: np.ndarray, a: str, b: str) -> np.ndarray:
    """Midpoint of two landmarks, scored by the less certain one."""
    xy = (landmarks[..., _MP[a], :2] + landmarks[..., _MP[b], :2]) / 2
    score = np.minimum(landmarks[..., _MP[a], 2], landmarks[..., _MP[b], 2])
    return np.concatenate([xy, score[..., None]], axis=-1)


def mediapipe_to_halpe(landmarks: np.ndarray) -> np.ndarray:
    """(..., 33, 3) MediaPipe [x, y, visibility] -> (..., 26, 3) Halpe-26 [x, y, score], same units."""
    landmarks = np.asarray(landmarks, dtype=np.float32)
    if landmarks.shape[-2:] != (len(MEDIAPIPE33), 3):
        raise ValueError(f"expected (..., 33, 3) MediaPipe landmarks, got {landmarks.shape}")
    halpe = np.zeros((*landmarks.shape[:-2], len(JOINT), 3), dtype=np.float32)
    for joint, landmark in DIRECT.items():
        halpe[..., JOINT[joint], :] = landmarks[..., _MP[landmark], :]
    halpe[..., JOINT["neck"], :] = _mean(landmarks, "left_shoulder", "right_shoulder")
    halpe[..., JOINT["hip"], :] = _mean(landmarks, "left_hip", "right_hip")
    eyes = _mean(landmarks, "left_eye", "right_eye")
    mouth = _mean(landmarks, "mouth_left", "mouth_right")
    halpe[..., JOINT["head"], :2] = eyes[..., :2] + HEAD_TOP_FACTOR * (eyes[..., :2] - mouth[..., :2])
    halpe[..., JOINT["head"], 2] = np.minimum(eyes[..., 2], mouth[..., 2])
    for side in ("left", "right"):
        halpe[..., JOINT[f"{side}_small_toe"], :2] = halpe[..., JOINT[f"{side}_big_toe"], :2]
    return halpe
