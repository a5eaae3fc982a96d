"""Flow to colour (hue = direction, brightness = speed) and the report's sample figure."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from cprcoach.figures import plt, save_png


def flow_to_rgb(flow: np.ndarray, max_magnitude: float | None = None) -> np.ndarray:
    """(H,W,2) flow -> (H,W,3) uint8 RGB; speeds are scaled to `max_magnitude` (default: the largest)."""
    magnitude, angle = cv2.cartToPolar(flow[..., 0].astype(np.float32), flow[..., 1].astype(np.float32))
    scale = max_magnitude or float(magnitude.max()) or 1.0
    hsv = np.empty((*flow.shape[:2], 3), np.uint8)
    hsv[..., 0] = (angle * (90.0 / np.pi)).astype(np.uint8)  # OpenCV hue is 0-179
    hsv[..., 1] = 255
    hsv[..., 2] = np.clip(magnitude / scale * 255.0, 0, 255).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def sample_figure(samples: Sequence[tuple[str, np.ndarray, np.ndarray]], out: str | Path) -> None:
    """One row per sample: (title, RGB frame, its flow to the next frame).

    Each flow is scaled to its own fastest pixel: compressions move a few pixels at most, which
    would stay black on the scale of the storage bound.
    """
    figure, axes = plt.subplots(len(samples), 2, figsize=(6.4, 2.4 * len(samples)), squeeze=False)
    for row, (title, frame, flow) in zip(axes, samples, strict=True):
        row[0].imshow(frame)
        row[0].set_title(title, fontsize=8)
        row[1].imshow(flow_to_rgb(flow))
        speed = np.hypot(flow[..., 0], flow[..., 1])
        row[1].set_title(f"flow: max {speed.max():.1f} px, mean {speed.mean():.2f} px", fontsize=8)
        for axis in row:
            axis.axis("off")
    save_png(figure, out)
