"""Encode frames made in Python (the synthetic generator's) to H.264 through an ffmpeg pipe."""

from __future__ import annotations

import subprocess
from pathlib import Path
from types import TracebackType

import ffmpeg
import numpy as np

from cprcoach.atomic import partial_path
from cprcoach.errors import VideoError
from cprcoach.video.ffmpeg import ffmpeg_exe


class H264Writer:
    """Write BGR uint8 frames to an H.264 MP4 at a constant frame rate.

    The file appears at `path` only when the writer closes cleanly; an error
    or an interruption leaves nothing behind.
    """

    def __init__(
        self, path: str | Path, width: int, height: int, fps: float, *, crf: int = 18, preset: str = "veryfast"
    ):
        self.path = Path(path)
        self.shape = (height, width, 3)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = partial_path(self.path)
        stream = (
            ffmpeg.input("pipe:", format="rawvideo", pix_fmt="bgr24", s=f"{width}x{height}", framerate=fps)
            .output(
                str(self._tmp),
                f="mp4",
                vcodec="libx264",
                pix_fmt="yuv420p",
                crf=crf,
                preset=preset,
                movflags="+faststart",
            )
            .global_args("-hide_banner", "-loglevel", "error", "-nostdin")
            .overwrite_output()
        )
        self._process = stream.run_async(cmd=ffmpeg_exe(), pipe_stdin=True, pipe_stderr=True)
        self.frames_written = 0

    def write(self, frame: np.ndarray) -> None:
        if frame.shape != self.shape or frame.dtype != np.uint8:
            raise ValueError(f"expected a {self.shape} uint8 frame, got {frame.shape} {frame.dtype}")
        try:
            self._process.stdin.write(np.ascontiguousarray(frame).tobytes())
        except BrokenPipeError:
            raise VideoError(f"ffmpeg stopped while encoding: {self._stderr()}", path=self.path) from None
        self.frames_written += 1

    def close(self) -> None:
        self._process.stdin.close()
        if self._process.wait() != 0:
            message = self._stderr()
            self._tmp.unlink(missing_ok=True)
            raise VideoError(f"ffmpeg failed to encode: {message}", path=self.path)
        self._tmp.replace(self.path)

    def abort(self) -> None:
        self._process.kill()
        self._process.wait()
        self._tmp.unlink(missing_ok=True)

    def _stderr(self) -> str:
        try:
            return self._process.stderr.read().decode(errors="replace").strip()
        except (OSError, ValueError, subprocess.SubprocessError):
            return "(no message)"

    def __enter__(self) -> H264Writer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
