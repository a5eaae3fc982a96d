"""Decode a (resized) clip for the stages that work on its pixels, checked against what wrote it.

A clip the resize stage wrote has a probe sidecar beside it that records its frames; a clip
that holds fewer (truncated or damaged since) is an error naming it, never a shorter result.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np

from cprcoach.errors import VideoError
from cprcoach.video.probe import recorded_frames

REBUILD = "delete it; snakemake then resizes its recording again"


def _unreadable(path: str | Path, error: Exception) -> VideoError:
    return VideoError(f"cannot decode the clip ({error})", path=path, fix=REBUILD)


def count_frames(path: str | Path) -> int:
    """The frames a clip holds, counted from its packets (no decoding)."""
    try:
        with av.open(str(path)) as container:
            return sum(1 for packet in container.demux(video=0) if packet.size)
    except (av.FFmpegError, IndexError) as error:
        raise _unreadable(path, error) from None


def check_frames(path: str | Path, frames: int) -> None:
    """A clip holding `frames` is what the resize stage wrote, as its probe sidecar records."""
    recorded = recorded_frames(path)
    if frames == 0:
        raise VideoError("clip has no frames", path=path, fix=REBUILD)
    if recorded is not None and frames != recorded[0]:
        raise VideoError(
            f"the clip holds {frames} frames, but the resize stage wrote {recorded[0]} ({recorded[1]}):"
            " it was truncated or damaged since",
            path=path,
            fix=REBUILD,
        )


def check_clip(path: str | Path) -> int:
    """Check a clip's frame count against its probe sidecar without decoding it; returns the count."""
    frames = count_frames(path)
    check_frames(path, frames)
    return frames


def iter_frames(path: str | Path, pixel_format: str = "rgb24") -> Iterator[np.ndarray]:
    """The frames of a clip one by one, after its frame count is checked."""
    check_clip(path)
    yield from decode_frames(path, pixel_format)


def decode_frames(path: str | Path, pixel_format: str = "rgb24") -> Iterator[np.ndarray]:
    """The frames of a clip one by one, for a caller that has checked it (check_clip)."""
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                yield frame.to_ndarray(format=pixel_format)
    except (av.FFmpegError, IndexError) as error:
        raise _unreadable(path, error) from None


def read_frames(path: str | Path, pixel_format: str = "rgb24") -> np.ndarray:
    """All frames of a clip: (T,H,W,3) uint8 for rgb24, (T,H,W) for gray (the luma plane)."""
    frames = list(iter_frames(path, pixel_format))
    check_frames(path, len(frames))  # every packet decoded to a frame
    return np.stack(frames)
