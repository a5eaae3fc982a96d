"""The training manikin: a torso-and-head manikin lying on its back along +x (head toward +x).

World frame: metres, z up, floor at z = 0. The lower half of the sternum, where correct
hands go, is the top of the chest at the origin. Shapes are unions of spheres (their convex
hull is what the renderer fills), so one drawing routine serves the manikin and the rescuer.
"""

from __future__ import annotations

import numpy as np

CHEST_TOP = 0.20  # height of the chest surface at the lower sternum, uncompressed
CHEST_POINT = np.array([0.0, 0.0, CHEST_TOP])
HALF_WIDTH = 0.17  # half the chest's width (y), for keeping the rescuer's knees clear

SKIN = (178, 196, 226)  # BGR: the usual pale manikin plastic
SUIT = (140, 88, 52)  # BGR: blue jacket over the lower torso

_DOME_RADIUS = 0.08  # vertical half-size of the chest dome when uncompressed


def _rounded_box(
    lo: tuple[float, float, float], hi: tuple[float, float, float], radius: float
) -> tuple[np.ndarray, np.ndarray]:
    """Eight corner spheres whose hull is a box with rounded edges spanning lo..hi."""
    corners = np.array(
        [
            [x, y, z]
            for x in (lo[0] + radius, hi[0] - radius)
            for y in (lo[1] + radius, hi[1] - radius)
            for z in (lo[2] + radius, hi[2] - radius)
        ]
    )
    return corners, np.full(len(corners), radius)


def static_parts() -> list[tuple[np.ndarray, np.ndarray, tuple[int, int, int]]]:
    """The parts that never move, as (sphere centres, radii, BGR colour), back to front for a camera above."""
    torso = _rounded_box((-0.36, -HALF_WIDTH - 0.02, 0.0), (0.27, HALF_WIDTH + 0.02, 0.16), 0.06)
    pelvis = _rounded_box((-0.50, -HALF_WIDTH, 0.0), (-0.22, HALF_WIDTH, 0.14), 0.06)
    neck = (np.array([[0.28, 0.0, 0.08], [0.40, 0.0, 0.09]]), np.array([0.055, 0.05]))
    head = (np.array([[0.50, 0.0, 0.11]]), np.array([0.11]))
    nose = (np.array([[0.535, 0.0, 0.215]]), np.array([0.022]))
    return [(*pelvis, SUIT), (*torso, SKIN), (*neck, SKIN), (*head, SKIN), (*nose, SKIN)]


def chest_dome(depth: float) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int]]:
    """The chest as it is pressed down by `depth` metres: its top sits at CHEST_TOP - depth."""
    radius = _DOME_RADIUS - depth / 2.0
    z = CHEST_TOP - _DOME_RADIUS - depth / 2.0
    centres = np.array([[x, y, z] for x in (-0.10, 0.12) for y in (-0.085, 0.085)])
    return centres, np.full(len(centres), radius), SKIN
