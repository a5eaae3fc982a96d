"""Flow as images, the mmaction2 / denseflow convention: x and y clipped to +-bound, mapped to 0-255."""

from __future__ import annotations

import numpy as np


def quantize(flow: np.ndarray, bound: float) -> np.ndarray:
    """Float flow in pixels -> uint8, 0 = -bound, 255 = +bound (127.5 = no motion)."""
    scaled = (np.clip(flow, -bound, bound) + bound) * (255.0 / (2.0 * bound))
    return np.rint(scaled).astype(np.uint8)


def dequantize(image: np.ndarray, bound: float) -> np.ndarray:
    """uint8 flow image -> float pixels; exact to within bound / 255 inside the bound."""
    return image.astype(np.float32) * (2.0 * bound / 255.0) - bound
