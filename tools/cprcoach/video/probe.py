"""What a video file is (codec, size, fps, frames), read from its container without decoding it, and
the probe sidecar that records it: the one file format of the resize stage besides its clips.

The sidecar `NAME.probe.json` lies beside the clips it lists (`NAME.CLIP.mp4`, clip_beside):
format, source (what the container said; its size as displayed, after its rotation), resampled and warnings (a frame rate other than the
dataset's), clips (path, size, fps and frames of each), encoder, decoder (ffmpeg, or nvdec and the
GPU's name), ffmpeg and seconds.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from cprcoach.atomic import write_json_atomic
from cprcoach.errors import CprCoachError, VideoError
from cprcoach.paths import same_file

PROBE_FORMAT = "cprcoach-probe/2"  # /2: source.rotation, and the source size as displayed
PROBE_SUFFIX = ".probe.json"
SOURCE_KEYS = ("path", "size_bytes", "width", "height", "fps", "frames", "duration", "rotation")
CLIP_KEYS = ("path", "width", "height", "fps", "frames")
RERUN = "delete it and rerun the resize stage (`cprcoach video resize ... --probe`)"


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
    # Degrees the container's display matrix turns the coded picture (counter-clockwise, as
    # ffmpeg's display_rotation counts them; phones and some action cameras write it). width and
    # height are the picture as a player shows it, turned: what the resize stage writes.
    rotation: int


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
            rotation = _display_rotation(container)
            width, height = stream.codec_context.width, stream.codec_context.height
            if rotation in (90, 270):
                width, height = height, width
            return VideoInfo(
                path=str(path),
                size_bytes=size,
                codec=stream.codec_context.name,
                width=width,
                height=height,
                fps=fps,
                frames=frames,
                duration=duration,
                pix_fmt=stream.codec_context.pix_fmt,
                bit_rate=container.bit_rate or None,
                has_audio=bool(container.streams.audio),
                rotation=rotation,
            )
    except av.FFmpegError as error:
        raise VideoError(
            f"cannot read the video ({error.strerror or error}); it is corrupt or truncated",
            path=path,
            fix="copy the recording again from the source, or remove it from raw_dir",
        ) from None


def _display_rotation(container: av.container.InputContainer) -> int:
    """The display matrix's rotation in degrees (0, 90, 180 or 270), read from the first frame.

    FFmpeg hands the container's display matrix to the decoded frames; decoding one frame costs
    a few milliseconds, even at 4K. A file whose first frame does not decode has no rotation to
    apply, and the resize pass reports the damage.
    """
    try:
        frame = next(container.decode(video=0), None)
    except av.FFmpegError:
        return 0
    return round(frame.rotation) % 360 if frame is not None else 0


def clip_beside(probe: str | Path, name: str) -> Path:
    """Where the resize stage writes clip `name` of the video whose probe sidecar is `probe`."""
    probe = Path(probe)
    if not probe.name.endswith(PROBE_SUFFIX):
        raise CprCoachError(f"a probe sidecar is named NAME{PROBE_SUFFIX}", path=probe, fix="rename the --probe path")
    return probe.with_name(f"{probe.name[: -len(PROBE_SUFFIX)]}.{name}.mp4")


def probe_beside(clip: str | Path) -> Path:
    """The probe sidecar the resize stage wrote beside clip `NAME.CLIP.mp4`: `NAME.probe.json`."""
    clip = Path(clip)
    return clip.with_name(f"{clip.name.split('.', 1)[0]}{PROBE_SUFFIX}")


def recorded_frames(clip: str | Path) -> tuple[int, Path] | None:
    """The frames the resize stage wrote to `clip` and the sidecar that says so; None for a clip
    without a sidecar beside it (one not made by the resize stage) or one it does not list."""
    probe_path = probe_beside(clip)
    if not probe_path.is_file():
        return None
    probe = read_probe(probe_path)
    name = listed_clip(probe, clip)
    return (int(probe["clips"][name]["frames"]), probe_path) if name is not None else None


def write_probe(path: str | Path, info: VideoInfo, clips: dict[str, dict[str, Any]], **details: Any) -> dict[str, Any]:
    """Write the sidecar of one resized video (atomically) and return it: what was probed, the clips
    written (path, width, height, fps, frames) and `details` (resampled, warnings, encoder, ...)."""
    sidecar = {"format": PROBE_FORMAT, "source": asdict(info), "clips": clips, **details}
    write_json_atomic(path, sidecar)
    return sidecar


def read_probe(path: str | Path) -> dict[str, Any]:
    """A probe sidecar, checked for what the later stages read from it."""
    path = Path(path)
    try:
        probe = json.loads(path.read_text())
        if probe.get("format") != PROBE_FORMAT:
            raise ValueError(f"not a {PROBE_FORMAT} file (format {probe.get('format')!r})")
        missing = [f"source.{key}" for key in SOURCE_KEYS if key not in probe["source"]]
        missing += [
            f"clips.{name}.{key}" for name, clip in probe["clips"].items() for key in CLIP_KEYS if key not in clip
        ]
        if missing:
            raise KeyError(", ".join(missing))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise CprCoachError(
            f"not a readable probe sidecar of the resize stage ({error})", path=path, fix=RERUN
        ) from None
    return probe


def listed_clip(probe: dict[str, Any], clip: str | Path) -> str | None:
    """The name (rgb, pose...) under which a probe lists the clip file `clip`; None if it does not."""
    return next((name for name, c in probe["clips"].items() if same_file(c["path"], clip)), None)
