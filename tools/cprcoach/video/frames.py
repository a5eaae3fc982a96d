"""Decode a (resized) clip into a numpy array, for the stages that work on pixels."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from cprcoach.errors import VideoError


def read_frames(path: str | Path, pixel_format: str = "rgb24") -> np.ndarray:
    """All frames of a clip: (T,H,W,3) uint8 for rgb24, (T,H,W) for gray (the luma plane)."""
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            frames = [frame.to_ndarray(format=pixel_format) for frame in container.decode(stream)]
    except (av.FFmpegError, IndexError) as error:
        raise VideoError(
            f"cannot decode the clip ({error})", path=path, fix="delete it and rerun the workflow"
        ) from None
    if not frames:
        raise VideoError("clip has no frames", path=path, fix="delete it and rerun the workflow")
    return np.stack(frames)
