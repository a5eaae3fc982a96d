"""The resize stage: decode a raw recording once and write every configured clip in that one pass.

One ffmpeg process decodes the source, resamples it to the target frame rate, splits the
stream and scales/encodes each branch, so a 4K file is read and decoded exactly once. A job
takes the views of one recording, one after the other: the command's start (and the
workflow's bookkeeping of a job) is paid once for the four of them. Each video's clips go
beside its probe sidecar, `NAME.probe.json` -> `NAME.CLIP.mp4` (clip_beside).
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


def parse_clip_size(text: str) -> tuple[str, int, int]:
    """Parse `NAME=WIDTHxHEIGHT`, the form the Snakemake rule passes."""
    try:
        name, size = text.split("=", 1)
        width, height = (int(v) for v in size.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected NAME=WIDTHxHEIGHT, got {text!r}") from None
    if width % 2 or height % 2:
        raise argparse.ArgumentTypeError(f"clip {name}: H.264 needs an even width and height, got {width}x{height}")
    return name, width, height


@dataclass(frozen=True)
class EncoderSettings:
    preset: str = "ultrafast"
    crf: int = 18
    scale_flags: str = "area"
    threads: int = 2


def check_source(info: VideoInfo, width: int, height: int, fps: float) -> list[str]:
    """Compare a probed video with what the dataset must be; a wrong size is an error, a wrong fps a warning."""
    if (info.width, info.height) != (width, height):
        raise VideoError(
            f"video is {info.width}x{info.height}, but video.source says {width}x{height}",
            path=info.path,
            fix=f"set video.source to {{width: {info.width}, height: {info.height}}} in config.yaml if every recording is this size, "
            "or re-export this one",
        )
    if abs(info.fps - fps) > FPS_TOLERANCE:
        return [f"{info.path}: recorded at {info.fps:.3f} fps, resampled to {fps:g} fps"]
    return []


def expected_frames(info: VideoInfo, fps: float) -> int:
    """Frames the resampled clip must have: the source's frames at the target rate."""
    if abs(info.fps - fps) <= FPS_TOLERANCE:
        return info.frames
    return round(info.frames * fps / info.fps)


def build_command(source: Path, clips: Sequence[ClipSpec], fps: float, settings: EncoderSettings) -> list[str]:
    """The one ffmpeg command: decode, resample to `fps`, scale and encode every clip.

    The source is scaled once, to the largest clip; the smaller clips are scaled from
    that, which spares a second full-resolution scale of every 4K frame.
    """
    largest, *smaller = sorted(clips, key=lambda c: c.width * c.height, reverse=True)
    stream = ffmpeg.input(str(source), threads=settings.threads).video.filter("fps", fps=fps)
    stream = stream.filter("scale", largest.width, largest.height, flags=settings.scale_flags)
    branches = stream.split() if smaller else None
    scaled = [(largest, branches[0] if branches else stream)]
    for i, clip in enumerate(smaller, start=1):
        scaled.append((clip, branches[i].filter("scale", clip.width, clip.height, flags=settings.scale_flags)))
    outputs = [
        ffmpeg.output(
            branch,
            str(partial_path(clip.path)),
            f="mp4",
            vcodec="libx264",
            preset=settings.preset,
            crf=settings.crf,
            pix_fmt="yuv420p",
            r=fps,
            threads=settings.threads,
            movflags="+faststart",
        )
        for clip, branch in scaled
    ]
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


def resize_video(
    source: str | Path,
    clips: Sequence[ClipSpec],
    probe_out: str | Path,
    *,
    source_width: int,
    source_height: int,
    fps: float,
    settings: EncoderSettings = EncoderSettings(),
) -> dict:
    """Write every clip of `source` and a JSON sidecar of what was probed; returns the sidecar.

    ffmpeg starts first and the container is probed while it runs (probing a 4K file
    decodes a frame); a probe that fails stops ffmpeg and reports the probe's error.
    """
    source = Path(source)
    started = time.perf_counter()
    for clip in clips:
        clip.path.parent.mkdir(parents=True, exist_ok=True)
    command = build_command(source, clips, fps, settings)
    try:
        with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as process:
            try:
                info = probe_video(source)
                warnings = check_source(info, source_width, source_height, fps)
                want = expected_frames(info, fps)
                wait_for_ffmpeg(process, source, want)
            except BaseException:
                process.kill()
                raise
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
        encoder={
            "codec": "libx264",
            "preset": settings.preset,
            "crf": settings.crf,
            "scale_flags": settings.scale_flags,
        },
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
        "--clip", dest="clips", type=parse_clip_size, action="append", required=True, metavar="NAME=WxH"
    )
    parser.add_argument(
        "--probe",
        dest="probes",
        type=Path,
        nargs="+",
        required=True,
        help="one JSON sidecar per source, of what was probed and written; the clips go beside it",
    )
    parser.add_argument("--source-size", required=True, metavar="WxH", help="the size every raw video must have")
    parser.add_argument("--fps", type=float, required=True, help="frame rate of the clips (the dataset's 25)")
    parser.add_argument("--preset", default=EncoderSettings.preset)
    parser.add_argument("--crf", type=int, default=EncoderSettings.crf)
    parser.add_argument("--scale-flags", default=EncoderSettings.scale_flags)
    parser.add_argument("--threads", type=int, default=EncoderSettings.threads)
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


@cli_errors
def run(args: argparse.Namespace) -> None:
    setup_logging(args.verbose)
    try:
        width, height = (int(v) for v in args.source_size.lower().split("x"))
    except ValueError:
        raise CprCoachError(f"--source-size must be WIDTHxHEIGHT, got {args.source_size!r}") from None
    if len(args.probes) != len(args.sources):
        raise CprCoachError(
            f"{len(args.sources)} sources but {len(args.probes)} --probe paths", fix="pass one --probe per source"
        )
    settings = EncoderSettings(args.preset, args.crf, args.scale_flags, args.threads)
    clips = [[ClipSpec(name, w, h, clip_beside(probe, name)) for name, w, h in args.clips] for probe in args.probes]
    for source, probe, outputs in zip(args.sources, args.probes, clips, strict=True):
        resize_video(source, outputs, probe, source_width=width, source_height=height, fps=args.fps, settings=settings)
