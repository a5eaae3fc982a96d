"""The resize stage: decode a raw recording once and write every configured clip in that one pass.

One ffmpeg process decodes the source, resamples it to the target frame rate, splits the
stream and scales/encodes each branch, so a 4K file is read and decoded exactly once. A
recording whose container rotates the picture (a display matrix, as phones write) is turned as
players turn it (ffmpeg's autorotation) before it is checked against video.source and scaled. A job
takes the views of one recording, one after the other: the command's start (and the
workflow's bookkeeping of a job) is paid once for the four of them. Each video's clips go
beside its probe sidecar, `NAME.probe.json` -> `NAME.CLIP.mp4` (clip_beside).

With video.decoder: nvdec the GPU decodes and scales instead (cprcoach.video.nvdec); the clips,
their checks and the sidecar are the same, and so are the errors for bad input.
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import ffmpeg
import imageio_ffmpeg
from tqdm import tqdm

from cprcoach.atomic import partial_path
from cprcoach.errors import CprCoachError, VideoError, cli_errors
from cprcoach.logs import setup_logging
from cprcoach.settings import ConfigSection, add_settings_argument, as_section
from cprcoach.video.ffmpeg import ffmpeg_exe
from cprcoach.video.probe import VideoInfo, clip_beside, probe_video, write_probe

log = logging.getLogger(__name__)

FPS_TOLERANCE = 0.01


@dataclass(frozen=True)
class ClipSpec:
    """One output of the resize pass: a name (rgb, pose), a size and where it goes."""

    name: str
    width: int
    height: int
    path: Path


@dataclass(frozen=True)
class SourceSettings:
    """What every raw recording must be (config ``video.source``)."""

    width: int
    height: int
    fps: float


@dataclass(frozen=True)
class EncoderSettings:
    """How the clips are encoded (config ``video.encoder``)."""

    preset: str
    crf: int
    scale_flags: str


@dataclass(frozen=True)
class NvdecSettings:
    """The GPU decoder's settings (config ``video.nvdec``)."""

    sessions_per_gpu: int
    batch: int


@dataclass(frozen=True)
class VideoSettings(ConfigSection):
    """The resize stage's settings (config ``video``; ``threads`` is the workflow's)."""

    SECTION = "video"

    source: SourceSettings
    clips: dict[str, dict[str, int]]  # name -> {width, height}
    encoder: EncoderSettings
    decoder: str
    nvdec: NvdecSettings

    def clips_beside(self, probe: str | Path) -> list[ClipSpec]:
        """Every configured clip of one video, beside its probe sidecar (as the workflow lays them out)."""
        return [
            ClipSpec(name, size["width"], size["height"], clip_beside(probe, name)) for name, size in self.clips.items()
        ]


def check_source(info: VideoInfo, width: int, height: int, fps: float) -> list[str]:
    """Compare a probed video with what the dataset must be; a wrong size is an error, a wrong fps a warning."""
    if (info.width, info.height) != (width, height):
        turned = (
            f" as displayed (its container rotates the picture by {info.rotation} degrees)" if info.rotation else ""
        )
        raise VideoError(
            f"video is {info.width}x{info.height}{turned}, but video.source says {width}x{height}",
            path=info.path,
            fix=f"set video.source to {{width: {info.width}, height: {info.height}}} in config.yaml if every recording is this size, "
            "or re-export this one" + (" upright" if info.rotation else ""),
        )
    if abs(info.fps - fps) > FPS_TOLERANCE:
        return [f"{info.path}: recorded at {info.fps:.3f} fps, resampled to {fps:g} fps"]
    return []


def expected_frames(info: VideoInfo, fps: float) -> int:
    """Frames the resampled clip must have: the source's frames at the target rate."""
    if abs(info.fps - fps) <= FPS_TOLERANCE:
        return info.frames
    return round(info.frames * fps / info.fps)


def x264_options(settings: EncoderSettings, fps: float, threads: int) -> dict[str, object]:
    """ffmpeg's output options of every clip, whichever decoder made its frames."""
    return {
        "f": "mp4",
        "vcodec": "libx264",
        "preset": settings.preset,
        "crf": settings.crf,
        "pix_fmt": "yuv420p",
        "r": fps,
        "threads": threads,
        "movflags": "+faststart",
    }


def build_command(
    source: Path, clips: Sequence[ClipSpec], fps: float, settings: EncoderSettings, threads: int
) -> list[str]:
    """The one ffmpeg command: decode, resample to `fps`, scale and encode every clip.

    The source is scaled once, to the largest clip; the smaller clips are scaled from
    that, which spares a second full-resolution scale of every 4K frame.
    """
    largest, *smaller = sorted(clips, key=lambda c: c.width * c.height, reverse=True)
    stream = ffmpeg.input(str(source), threads=threads).video.filter("fps", fps=fps)
    stream = stream.filter("scale", largest.width, largest.height, flags=settings.scale_flags)
    branches = stream.split() if smaller else None
    scaled = [(largest, branches[0] if branches else stream)]
    for i, clip in enumerate(smaller, start=1):
        scaled.append((clip, branches[i].filter("scale", clip.width, clip.height, flags=settings.scale_flags)))
    options = x264_options(settings, fps, threads)
    outputs = [ffmpeg.output(branch, str(partial_path(clip.path)), **options) for clip, branch in scaled]
    merged = ffmpeg.merge_outputs(*outputs).global_args(
        "-hide_banner", "-nostdin", "-nostats", "-loglevel", "error", "-progress", "pipe:1"
    )
    return merged.overwrite_output().compile(cmd=ffmpeg_exe())


def wait_for_ffmpeg(process: subprocess.Popen, source: Path, total: int) -> None:
    """Follow ffmpeg's -progress output with a progress bar until it exits."""
    bar = tqdm(total=total, unit="frame", desc=source.name, leave=False, disable=None)
    for line in process.stdout:
        key, _, value = line.strip().partition("=")
        if key == "frame" and value.isdigit():
            bar.update(int(value) - bar.n)
    bar.close()
    stderr = process.stderr.read()
    if process.wait() != 0:
        raise VideoError(
            f"ffmpeg could not decode or encode it: {stderr.strip()[-800:] or f'exit status {process.returncode}'}",
            path=source,
            fix="copy the recording again from the source, or remove it from raw_dir",
        )


def ffmpeg_pass(
    source: Path, clips: Sequence[ClipSpec], settings: VideoSettings, threads: int
) -> tuple[VideoInfo, list[str], dict[str, str]]:
    """Decode, scale and encode on the CPU; returns the probed source, its warnings and what decoded it.

    ffmpeg starts first and the container is probed while it runs (probing a 4K file
    decodes a frame); a probe that fails stops ffmpeg and reports the probe's error.
    """
    fps = settings.source.fps
    command = build_command(source, clips, fps, settings.encoder, threads)
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as process:
        try:
            info = probe_video(source)
            warnings = check_source(info, settings.source.width, settings.source.height, fps)
            wait_for_ffmpeg(process, source, expected_frames(info, fps))
        except BaseException:
            process.kill()
            raise
    return info, warnings, {"name": "ffmpeg"}


def nvdec_pass(
    source: Path, clips: Sequence[ClipSpec], settings: VideoSettings, threads: int
) -> tuple[VideoInfo, list[str], dict[str, str]]:
    """Decode and scale on the GPU, encode on the CPU (cprcoach.video.nvdec); returns the probed
    source, its warnings and what decoded it."""
    from cprcoach.video import nvdec  # torch loads for the GPU path only: a CPU job starts faster

    device = nvdec.claim_decoder(settings.nvdec.sessions_per_gpu)
    fps = settings.source.fps
    info = probe_video(source)
    warnings = check_source(info, settings.source.width, settings.source.height, fps)
    nvdec.check_decodable(info)
    demuxer, decoder = nvdec.open_decoder(source, device)  # before the encoders start: its errors first
    batches = nvdec.nvdec_batches(source, demuxer, decoder, device, *nvdec.coded_size(info), settings.nvdec.batch)
    options = x264_options(settings.encoder, fps, threads)
    nvdec.encode_clips(batches, info, clips, fps, expected_frames(info, fps), options)
    return info, warnings, {"name": "nvdec", "gpu": nvdec.device_name(device)}


def resize_video(
    source: str | Path, clips: Sequence[ClipSpec], probe_out: str | Path, settings: VideoSettings, *, threads: int
) -> dict:
    """Write every clip of `source` and a JSON sidecar of what was probed; returns the sidecar."""
    source = Path(source)
    started = time.perf_counter()
    for clip in clips:
        clip.path.parent.mkdir(parents=True, exist_ok=True)
    fps = settings.source.fps
    decode = nvdec_pass if settings.decoder == "nvdec" else ffmpeg_pass
    try:
        info, warnings, decoder = decode(source, clips, settings, threads)
        want = expected_frames(info, fps)
        for warning in warnings:
            log.warning("%s", warning)
        tolerance = 1 if not warnings else 2
        outputs = {}
        for clip in clips:
            got = probe_video(partial_path(clip.path))
            if got.frames < want - tolerance:
                raise VideoError(
                    f"decoded {got.frames} of the {want} frames its header promises; the file is truncated",
                    path=source,
                    fix="copy the recording again from the source, or remove it from raw_dir",
                )
            outputs[clip.name] = {
                "path": str(clip.path),
                "width": got.width,
                "height": got.height,
                "fps": got.fps,
                "frames": got.frames,
            }
        for clip in clips:
            partial_path(clip.path).replace(clip.path)
    finally:
        for clip in clips:
            partial_path(clip.path).unlink(missing_ok=True)
    sidecar = write_probe(
        probe_out,
        info,
        outputs,
        resampled=bool(warnings),
        warnings=warnings,
        encoder={"codec": "libx264", **as_section(settings.encoder)},
        decoder=decoder,
        ffmpeg=imageio_ffmpeg.get_ffmpeg_version(),
        seconds=round(time.perf_counter() - started, 3),
    )
    log.info(
        "%s: %dx%d %.3g fps, %d frames -> %s in %.1f s",
        source,
        info.width,
        info.height,
        info.fps,
        info.frames,
        ", ".join(f"{n} {c['width']}x{c['height']} ({c['frames']} frames)" for n, c in outputs.items()),
        sidecar["seconds"],
    )
    return sidecar


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="cprcoach video resize", description=__doc__)
    parser.add_argument("sources", type=Path, nargs="+", help="raw videos (the views of a recording)")
    parser.add_argument(
        "--probe",
        dest="probes",
        type=Path,
        nargs="+",
        required=True,
        help="one JSON sidecar per source, of what was probed and written; the clips go beside it",
    )
    add_settings_argument(parser, "video")
    parser.add_argument("--threads", type=int, required=True, help="the job's threads")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


@cli_errors
def run(args: argparse.Namespace) -> None:
    setup_logging(args.verbose)
    if len(args.probes) != len(args.sources):
        raise CprCoachError(
            f"{len(args.sources)} sources but {len(args.probes)} --probe paths", fix="pass one --probe per source"
        )
    settings = VideoSettings.from_config(args.settings)
    for source, probe in zip(args.sources, args.probes, strict=True):
        resize_video(source, settings.clips_beside(probe), probe, settings, threads=args.threads)
