"""Pinhole cameras and the fixed 4-view rig of the synthetic recordings.

OpenCV convention: x right, y down, z forward; R and t map world to camera (X_c = R X_w + t).
The intrinsics scale with the image size, so the same view at any resolution frames the
scene identically in relative (u / width, v / height) terms.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cprcoach.errors import ConfigError

# Where the cameras look: between the manikin's chest and the kneeling rescuer, mid-height.
TARGET = np.array([0.03, -0.5, 0.42])

# Boxes (lo, hi corners) holding the manikin and every participant in every class (tallest
# body, leaning back): each view is aimed and zoomed so that they fit inside the frame.
SCENE_BOXES = (
    np.array([[-0.55, -0.24, 0.0], [0.63, 0.24, 0.25]]),
    np.array([[-0.38, -1.42, 0.0], [0.38, 0.32, 1.1]]),
)
FILL = 0.92  # fraction of the half-frame the box may use

# The rig: camera positions relative to TARGET, in the order of config `views`.
PLACEMENTS: tuple[tuple[str, tuple[float, float, float]], ...] = (
    ("front, across the manikin", (0.45, 2.6, 1.2)),
    ("the rescuer's right side, from the manikin's head", (2.7, 0.1, 0.8)),
    ("behind the rescuer, on the left", (-1.8, -2.2, 1.35)),
    ("high overhead, oblique, from the manikin's feet", (-1.5, 0.6, 2.3)),
)


@dataclass(frozen=True)
class Camera:
    view: str
    K: np.ndarray  # (3, 3)
    R: np.ndarray  # (3, 3) world -> camera rotation
    t: np.ndarray  # (3,)
    width: int
    height: int

    @property
    def centre(self) -> np.ndarray:
        return -self.R.T @ self.t

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        return points @ self.R.T + self.t

    def project(self, points: np.ndarray) -> np.ndarray:
        return project(points, self.K, self.R, self.t)

    def inside(self, pixels: np.ndarray, points: np.ndarray) -> np.ndarray:
        """Whether projected points fall inside the image (in front of the camera)."""
        z = self.to_camera(points)[..., 2]
        u, v = pixels[..., 0], pixels[..., 1]
        return (z > 0) & (u >= 0) & (u <= self.width - 1) & (v >= 0) & (v <= self.height - 1)

    def as_dict(self) -> dict:
        return {"view": self.view, "K": self.K.tolist(), "R": self.R.tolist(), "t": self.t.tolist()}


def project(points_3d: np.ndarray, K: np.ndarray, R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Pixel coordinates (..., 2) of world points (..., 3) seen by the pinhole camera K, R, t."""
    camera = np.asarray(points_3d, dtype=float) @ np.asarray(R, dtype=float).T + np.asarray(t, dtype=float)
    image = camera @ np.asarray(K, dtype=float).T
    return image[..., :2] / image[..., 2:3]


def look_at(position: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """R, t of a camera at `position` looking at `target` with the world's z up on screen."""
    forward = target - position
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    R = np.stack([right, down, forward])
    return R, -R @ position


def _box_corners() -> np.ndarray:
    return np.array(
        [[x, y, z] for lo, hi in SCENE_BOXES for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])]
    )


def make_camera(index: int, view: str, width: int, height: int) -> Camera:
    """Camera `index` of the rig, named `view`, for images of width x height pixels.

    The camera is re-aimed until SCENE_BOXES project centred, then the focal length makes them
    fill FILL of the frame along the tighter dimension.
    """
    position = TARGET + np.array(PLACEMENTS[index][1])
    aim = TARGET.copy()
    for _ in range(4):
        R, t = look_at(position, aim)
        corners = _box_corners() @ R.T + t
        normalised = corners[:, :2] / corners[:, 2:3]
        middle = 0.5 * (normalised.min(axis=0) + normalised.max(axis=0))
        aim = position + R.T @ np.array([middle[0], middle[1], 1.0])
    R, t = look_at(position, aim)
    corners = _box_corners() @ R.T + t
    normalised = np.abs(corners[:, :2] / corners[:, 2:3])
    focal = FILL * min(0.5 * width / normalised[:, 0].max(), 0.5 * height / normalised[:, 1].max())
    K = np.array([[focal, 0.0, width / 2.0], [0.0, focal, height / 2.0], [0.0, 0.0, 1.0]])
    return Camera(view=view, K=K, R=R, t=t, width=width, height=height)


def make_rig(views: list[str], width: int, height: int) -> list[Camera]:
    """One camera per configured view, in the rig's placement order."""
    if len(views) > len(PLACEMENTS):
        raise ConfigError(
            f"the synthetic rig has {len(PLACEMENTS)} camera placements, the configuration names {len(views)} views",
            fix=f"list at most {len(PLACEMENTS)} views in `views:` for cprcoach synth",
        )
    return [make_camera(i, view, width, height) for i, view in enumerate(views)]
