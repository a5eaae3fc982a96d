"""Benchmark the resize pass: one job (as Snakemake runs it) against a pure decode of the same 4K clip.

The clip is a synthetic CPR recording rendered at CPR-Coach's size; both commands use the
same threads, and the figure that matters is the ratio of their times measured in one run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cprcoach.bench import parse_size
from cprcoach.logs import setup_logging
from cprcoach.synth.dataset import correct_recording, render_video
from cprcoach.video.ffmpeg import ffmpeg_exe
from cprcoach.video.probe import PROBE_SUFFIX, probe_video
from cprcoach.video.resize import VideoSettings

TARGET_RATIO = 1.2


def source_clip(folder: Path, width: int, height: int, seconds: float) -> Path:
    """Render (once) a synthetic recording of the correct class at the given size."""
    path = folder / f"source_{width}x{height}_{seconds:g}s.mp4"
    if not path.exists():
        render_video(correct_recording(path, width, height, seconds))
    return path


def clip_size(text: str) -> tuple[str, dict[str, int]]:
    """`NAME=WxH` as a video.clips entry."""
    name, _, size = text.partition("=")
    width, height = parse_size(size)
    return name, {"width": width, "height": height}


def timed(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def benchmark(source: Path, probe: Path, video: dict, threads: int, repeats: int) -> dict[str, float]:
    decode = [
        ffmpeg_exe(),
        "-hide_banner",
        "-loglevel",
        "error",
        "-threads",
        str(threads),
        "-i",
        str(source),
        "-f",
        "null",
        "-",
    ]
    info = probe_video(source)
    resize = [
        sys.executable, "-m", "cprcoach.video", "resize", str(source), "--probe", str(probe),
        "--settings", json.dumps(video), "--threads", str(threads),
    ]  # fmt: skip
    decode_times, resize_times = [], []
    for _ in range(repeats):  # interleaved, so drifts in machine load hit both alike
        decode_times.append(timed(decode))
        resize_times.append(timed(resize))
    return {
        "frames": info.frames,
        "mbps": (info.bit_rate or 0) / 1e6,
        "decode": statistics.median(decode_times),
        "resize": statistics.median(resize_times),
    }


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="cprcoach video bench", description=__doc__)
    parser.add_argument("--size", default="4096x2160", help="source size (CPR-Coach: 4096x2160)")
    parser.add_argument("--seconds", type=float, default=8.0, help="length of the source clip")
    parser.add_argument(
        "--clip",
        dest="clips",
        action="append",
        metavar="NAME=WxH",
        help="clips to write (default rgb=340x256, pose=1024x540)",
    )
    parser.add_argument("--decoder", choices=["cpu", "nvdec"], default="cpu", help="video.decoder of the resize job")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", type=Path, help="keep the rendered source here between runs")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


def run(args: argparse.Namespace) -> None:
    setup_logging(args.verbose)
    width, height = parse_size(args.size)
    with tempfile.TemporaryDirectory(prefix="cprcoach-bench-") as scratch:
        folder = args.workdir or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        source = source_clip(folder, width, height, args.seconds)
        probe = Path(scratch) / f"clip{PROBE_SUFFIX}"
        video = {
            "source": {"width": width, "height": height, "fps": 25},
            "clips": dict(clip_size(c) for c in args.clips or ["rgb=340x256", "pose=1024x540"]),
            "decoder": args.decoder,
        }
        clips = VideoSettings.from_config(video).clips_beside(probe)
        result = benchmark(source, probe, video, args.threads, args.repeats)
    ratio = result["resize"] / result["decode"]
    print(f"source   {width}x{height}, {result['frames']} frames, {result['mbps']:.1f} Mbit/s H.264")
    print(
        f"clips    {', '.join(f'{c.name} {c.width}x{c.height}' for c in clips)}; {args.threads} threads; median of {args.repeats}"
    )
    print(
        f"decode   {result['decode']:.2f} s  ({result['frames'] / result['decode']:.1f} frames/s)  ffmpeg -i CLIP -f null -"
    )
    print(
        f"resize   {result['resize']:.2f} s  ({result['frames'] / result['resize']:.1f} frames/s)  python -m cprcoach.video resize"
        f" ({args.decoder} decoder)"
    )
    print(
        f"ratio    {ratio:.2f}x the pure decode (target <= {TARGET_RATIO}x): {'met' if ratio <= TARGET_RATIO else 'NOT met'}"
    )
