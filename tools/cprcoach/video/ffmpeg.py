"""Where the ffmpeg binary comes from: the one the imageio-ffmpeg wheel installs.

Set IMAGEIO_FFMPEG_EXE to use another build (one with NVDEC, say); the wheel's
binary has libx264, which is all the pipeline needs.
"""

from __future__ import annotations

import functools

import imageio_ffmpeg


@functools.cache
def ffmpeg_exe() -> str:
    return imageio_ffmpeg.get_ffmpeg_exe()
