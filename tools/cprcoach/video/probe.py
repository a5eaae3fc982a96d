"""Read what a video file is (codec, size, fps, frames) from its container, without decoding it."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from cprcoach.errors import VideoError


@dataclass(frozen=True)
class VideoInfo:
    path: str
    size_bytes: int
    codec: str
    width: int
    height: int
    fps: float
    frames: int  # from the container index; estimated from the duration where it has none
    duration: float
    pix_fmt: str | None
    bit_rate: int | None
    has_audio: bool


def probe_video(path: str | Path) -> VideoInfo:
    """Probe `path`; a file that is empty, unreadable or has no video stream raises VideoError."""
    path = Path(path)
    if not path.is_file():
        raise VideoError("video file not found", path=path, fix="check raw_dir and raw_pattern in config.yaml")
    size = path.stat().st_size
    if size == 0:
        raise VideoError(
            "video file is empty (0 bytes)",
            path=path,
            fix="copy the recording again; the transfer was likely interrupted",
        )
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            if not container.streams.video:
                raise VideoError(
                    "file has no video stream (audio or data only)",
                    path=path,
                    fix="replace it with the camera's video file, or remove it from raw_dir",
                )
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            if not rate:
                raise VideoError(
                    "video stream has no frame rate",
                    path=path,
                    fix="re-export the recording with a constant frame rate",
                )
            fps = float(Fraction(rate))
            if stream.duration is not None and stream.time_base is not None:
                duration = float(stream.duration * stream.time_base)
            elif container.duration is not None:
                duration = container.duration / av.time_base
            else:
                duration = 0.0
            frames = stream.frames or round(duration * fps)
            if frames <= 0 or stream.codec_context.width <= 0:
                raise VideoError("video stream holds no frames", path=path, fix="re-record or re-export the video")
            return VideoInfo(
                path=str(path),
                size_bytes=size,
                codec=stream.codec_context.name,
                width=stream.codec_context.width,
                height=stream.codec_context.height,
                fps=fps,
                frames=frames,
                duration=duration,
                pix_fmt=stream.codec_context.pix_fmt,
                bit_rate=container.bit_rate or None,
                has_audio=bool(container.streams.audio),
            )
    except av.FFmpegError as error:
        raise VideoError(
            f"cannot read the video ({error.strerror or error}); it is corrupt or truncated",
            path=path,
            fix="copy the recording again from the source, or remove it from raw_dir",
        ) from None
