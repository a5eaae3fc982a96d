"""The Halpe-26 skeleton (AlphaPose's, which CPR-Coach ships): joint order and limb edges.

One definition for every stage that handles keypoints: the synthetic renderer, the pose
stage, the ST-GCN graph and the overlays. The first 17 joints are the COCO-17 order.
"""

from __future__ import annotations

HALPE26: tuple[str, ...] = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
    "head",
    "neck",
    "hip",
    "left_big_toe",
    "right_big_toe",
    "left_small_toe",
    "right_small_toe",
    "left_heel",
    "right_heel",
)

COCO17: tuple[str, ...] = HALPE26[:17]

JOINT = {name: index for index, name in enumerate(HALPE26)}

# AlphaPose's Halpe-26 drawing pairs plus (0, 18) nose-neck: AlphaPose leaves the face
# unconnected to the body, and a graph network (ST-GCN) needs a single connected skeleton.
HALPE26_EDGES: tuple[tuple[int, int], ...] = (
    (0, 1), (0, 2), (1, 3), (2, 4), (0, 18),
    (5, 18), (6, 18), (5, 7), (7, 9), (6, 8), (8, 10),
    (17, 18), (18, 19), (19, 11), (19, 12),
    (11, 13), (12, 14), (13, 15), (14, 16),
    (20, 24), (21, 25), (23, 25), (22, 24), (15, 24), (16, 25),
)  # fmt: skip

# The usual COCO-17 skeleton (as drawn by COCO tools, 0-based).
COCO17_EDGES: tuple[tuple[int, int], ...] = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6),
    (5, 7), (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
)  # fmt: skip
