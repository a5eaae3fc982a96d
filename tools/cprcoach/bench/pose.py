"""Benchmark the pose backends on CPU: frames per second of one `estimate` job, and its PCK@0.2.

The clip is a synthetic CPR recording (rendered once, resized like the workflow does), so the
ground truth is known; AlphaPose joins when its checkout, config and weights are given.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from cprcoach.bench import parse_size
from cprcoach.classes import CORRECT
from cprcoach.logs import setup_logging
from cprcoach.pose.estimate import estimate_pose
from cprcoach.pose.qc import track_pck
from cprcoach.synth.dataset import correct_recording, render_video
from cprcoach.video.resize import ClipSpec, VideoSettings, resize_video


def bench_clip(folder: Path, source: tuple[int, int], clip: tuple[int, int], seconds: float) -> tuple[Path, Path]:
    """Render a synthetic recording of the correct class and resize it to a pose clip; (clip, probe)."""
    name = f"{CORRECT}_01"
    raw = folder / "raw" / "P01" / "V1" / f"{name}.mp4"
    render_video(correct_recording(raw, *source, seconds))
    pose_clip = folder / "clips" / "P01" / "V1" / f"{name}.pose.mp4"
    probe = pose_clip.with_name(f"{name}.probe.json")
    video = {"source": {"width": source[0], "height": source[1], "fps": 25.0}}
    settings = VideoSettings.from_config(video | {"clips": {"pose": {"width": clip[0], "height": clip[1]}}})
    resize_video(raw, [ClipSpec("pose", *clip, pose_clip)], probe, settings, threads=2)
    return pose_clip, probe


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="cprcoach pose bench", description=__doc__)
    parser.add_argument("--size", default="1024x540", help="raw video size of the synthetic recording")
    parser.add_argument("--clip-size", default="512x270", help="pose clip size (even)")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--backend", dest="backends", action="append", choices=["groundtruth", "mediapipe", "alphapose"],
        help="backends to time (default groundtruth and mediapipe, plus alphapose when its paths are given)",
    )  # fmt: skip
    parser.add_argument("--alphapose-repo")
    parser.add_argument("--alphapose-config")
    parser.add_argument("--alphapose-checkpoint")
    parser.add_argument("--alphapose-detector", default="yolo")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


def run(args: argparse.Namespace) -> None:
    setup_logging(args.verbose)
    alphapose = {
        "repo": args.alphapose_repo,
        "config": args.alphapose_config,
        "checkpoint": args.alphapose_checkpoint,
        "detector": args.alphapose_detector,
    }
    backends = args.backends or ["groundtruth", "mediapipe"] + (["alphapose"] if args.alphapose_repo else [])
    with tempfile.TemporaryDirectory(prefix="cprcoach-pose-bench-") as scratch:
        folder = Path(scratch)
        clip, probe = bench_clip(folder, parse_size(args.size), parse_size(args.clip_size), args.seconds)
        print(f"clip     synthetic E00, raw {args.size}, pose clip {args.clip_size}, {args.seconds:g} s at 25 fps")
        print(f"{'backend':<12} {'frames':>6} {'seconds':>8} {'frames/s':>9} {'PCK@0.2':>8}")
        for backend in backends:
            settings = {"backend": backend, "threads": args.threads, "alphapose": alphapose}
            started = time.perf_counter()
            track = estimate_pose(clip, probe, folder / f"{backend}.npz", settings)
            seconds = time.perf_counter() - started
            score = track_pck(track)
            print(
                f"{backend:<12} {track.frames:>6} {seconds:>8.2f} {track.frames / seconds:>9.1f} "
                f"{score.overall if score else float('nan'):>8.3f}"
            )
