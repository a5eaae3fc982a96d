"""Temporal clean-up of one track: optional smoothing of the found frames, then gap filling.

A graph network reads every frame, so frames without a detection still need positions:
- a run of at most `max_gap` missed frames between two found frames is filled by linear
  interpolation between them and marked `interpolated`;
- a longer run, or one at the start or end of the clip (nothing on one side), holds the
  nearest found position and is not marked: nothing was estimated there.
Either way a frame without a detection has score 0 on every joint.
"""

from __future__ import annotations

import numpy as np


def smooth_found(values: np.ndarray, found: np.ndarray, window: int) -> np.ndarray:
    """Moving median over time of `values` (T, ...), using and changing only the found frames.

    A median, not a mean, so one wild detection does not drag its neighbours along; missed
    frames inside the window are left out rather than counted as zeros.
    """
    if window < 1 or window % 2 == 0:
        raise ValueError(f"the smoothing window must be a positive odd number of frames, got {window}")
    values = np.asarray(values, dtype=np.float32)
    found = np.asarray(found, dtype=bool)
    if window == 1 or not found.any():
        return values.copy()
    half = window // 2
    masked = np.where(found.reshape(-1, *([1] * (values.ndim - 1))), values, np.nan)
    padded = np.pad(masked, [(half, half)] + [(0, 0)] * (values.ndim - 1), constant_values=np.nan)
    windows = np.lib.stride_tricks.sliding_window_view(padded, window, axis=0)
    smoothed = values.copy()
    smoothed[found] = np.nanmedian(windows[found], axis=-1)
    return smoothed


def neighbours(found: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For every frame, the nearest found frame at or before it (-1: none) and at or after it (T: none)."""
    found = np.asarray(found, dtype=bool)
    index = np.arange(len(found))
    before = np.maximum.accumulate(np.where(found, index, -1))
    after = np.minimum.accumulate(np.where(found, index, len(found))[::-1])[::-1]
    return before, after


def fill_gaps(
    keypoints: np.ndarray, box: np.ndarray, found: np.ndarray, max_gap: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fill the frames that are not `found`; returns (keypoints, box, interpolated).

    keypoints (T, J, 3) [x, y, score] and box (T, 4) are only read on found frames. A clip with
    no found frame comes back all zeros.
    """
    keypoints = np.asarray(keypoints, dtype=np.float32).copy()
    box = np.asarray(box, dtype=np.float32).copy()
    found = np.asarray(found, dtype=bool)
    interpolated = np.zeros(len(found), dtype=bool)
    if not found.any():
        return np.zeros_like(keypoints), np.zeros_like(box), interpolated
    before, after = neighbours(found)
    missing = np.flatnonzero(~found)
    prev, nxt = before[missing], after[missing]
    inside = (prev >= 0) & (nxt < len(found))
    run = np.where(inside, nxt - prev - 1, np.iinfo(np.int64).max)
    interpolated[missing] = inside & (run <= max_gap)
    weight = np.where(interpolated[missing], (missing - prev) / np.maximum(nxt - prev, 1), 0.0).astype(np.float32)
    held = np.where(prev >= 0, prev, nxt)
    start = np.where(interpolated[missing], prev, held)
    end = np.where(interpolated[missing], nxt, held)
    w_points = weight[:, None, None]
    keypoints[missing, :, :2] = (1 - w_points) * keypoints[start, :, :2] + w_points * keypoints[end, :, :2]
    keypoints[missing, :, 2] = 0.0
    box[missing] = (1 - weight[:, None]) * box[start] + weight[:, None] * box[end]
    return keypoints, box, interpolated
