"""Shared test helpers: small videos made on the spot with ffmpeg's test sources."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from cprcoach.video.ffmpeg import ffmpeg_exe

REPO = Path(__file__).resolve().parent.parent


def make_video(
    path: Path,
    *,
    width: int = 160,
    height: int = 84,
    fps: float = 25,
    frames: int = 25,
    audio: bool = False,
    video: bool = True,
    faststart: bool = True,
) -> Path:
    """An H.264 MP4 of ffmpeg's moving test pattern (optionally with a tone, or audio only)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    seconds = frames / fps
    command = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y"]
    if video:
        command += ["-f", "lavfi", "-i", f"testsrc2=s={width}x{height}:r={fps}:d={seconds}"]
    if audio:
        command += ["-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}"]
    if video:
        command += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-frames:v", str(frames)]
    if audio:
        command += ["-c:a", "aac"]
    if faststart:
        command += ["-movflags", "+faststart"]
    subprocess.run([*command, str(path)], check=True)
    return path


@pytest.fixture
def video_factory(tmp_path):
    def factory(name: str = "clip.mp4", **kwargs) -> Path:
        return make_video(tmp_path / name, **kwargs)

    return factory
