"""The pose stage: the rescuer's Halpe-26 skeleton in a pose clip -> one .npz per clip.

A job takes the clips of one recording's views, one after the other, so the command's start is
paid once for them.

The backend (pose.backend) gives detections; one track is kept (the rescuer, see
cprcoach.pose.rescuer), smoothed (pose.smoothing), gap-filled (pose.max_gap, see
cprcoach.pose.gaps) and written in raw-video pixels: the clip's coordinates are scaled by the
source size of the resize stage's probe JSON over the clip's size.

pose.threads sets OpenCV's threads and, for AlphaPose, torch's; MediaPipe's legacy API gives
no control over its TFLite threads.
"""

from __future__ import annotations

import argparse
import logging
import platform
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

import cprcoach
from cprcoach.errors import CprCoachError, cli_errors
from cprcoach.logs import setup_logging
from cprcoach.pose.format import PoseTrack, keypoint_box, write_pose
from cprcoach.pose.gaps import fill_gaps, smooth_found
from cprcoach.settings import ConfigSection, add_settings_argument, as_section
from cprcoach.video.frames import check_clip
from cprcoach.video.probe import VideoInfo, probe_video, read_probe

log = logging.getLogger(__name__)

MEDIAPIPE_BOX_SCORE = 0.5

# What a backend hands back: keypoints (T, 26, 3) and box (T, 4) in raw-video pixels, found (T,),
# its parameters and the package versions, both for the pose file's meta.
Estimate = tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any], dict[str, str]]


@dataclass(frozen=True)
class GroundtruthSettings:
    """The synthetic ground truth, degraded like a detector's output (config ``pose.groundtruth``)."""

    noise_px: float
    miss_rate: float
    seed: int


@dataclass(frozen=True)
class MediapipeSettings:
    min_detection_confidence: float
    min_tracking_confidence: float


@dataclass(frozen=True)
class AlphaPoseSettings:
    """Paths to a user's AlphaPose checkout and weights, or to results made separately."""

    repo: str | None
    config: str | None
    checkpoint: str | None
    detector: str
    results_dir: str | None


@dataclass(frozen=True)
class PoseSettings(ConfigSection):
    """The pose stage's settings (config ``pose``; ``clip`` is the workflow's)."""

    SECTION = "pose"

    backend: str
    threads: int
    max_gap: int
    smoothing: int
    groundtruth: GroundtruthSettings
    mediapipe: MediapipeSettings
    alphapose: AlphaPoseSettings


def _versions(**extra: str) -> dict[str, str]:
    return {"cprcoach": cprcoach.__version__, "python": platform.python_version(), "numpy": np.__version__, **extra}


def _groundtruth(
    settings: PoseSettings, probe: dict[str, Any], info: VideoInfo, sidecar: str | Path | None
) -> Estimate:
    from cprcoach.pose.groundtruth import groundtruth_pose, read_sidecar, sidecar_path

    sidecar = Path(sidecar) if sidecar else sidecar_path(probe["source"]["path"])
    truth = read_sidecar(sidecar)
    if (truth["width"], truth["height"]) != (probe["source"]["width"], probe["source"]["height"]):
        raise CprCoachError(
            f"the sidecar is for a {truth['width']}x{truth['height']} video, the probe says "
            f"{probe['source']['width']}x{probe['source']['height']}",
            path=sidecar,
            fix="pass the sidecar of this recording (--sidecar), or re-render it with `cprcoach synth --force`",
        )
    options = as_section(settings.groundtruth)
    keypoints, box, found = groundtruth_pose(truth, info.frames, info.fps, **options)
    return keypoints, box, found, {**options, "sidecar": str(sidecar)}, _versions()


def _mediapipe(settings: PoseSettings, probe: dict[str, Any], clip: Path, scale: np.ndarray) -> Estimate:
    from cprcoach.pose.mediapipe_backend import MODEL_COMPLEXITY, mediapipe_pose

    options = as_section(settings.mediapipe)
    keypoints, found, version = mediapipe_pose(clip, **options)
    keypoints[..., :2] *= scale
    size = (probe["source"]["width"], probe["source"]["height"])
    box = keypoint_box(keypoints, *size, min_score=MEDIAPIPE_BOX_SCORE)
    weak = ~(keypoints[..., 2] > MEDIAPIPE_BOX_SCORE).any(axis=-1)
    box[weak] = keypoint_box(keypoints[weak], *size, min_score=-1.0)
    params = {**options, "model_complexity": MODEL_COMPLEXITY, "box_min_visibility": MEDIAPIPE_BOX_SCORE}
    return keypoints, box, found, params, _versions(mediapipe=version)


def _alphapose(
    settings: PoseSettings,
    probe: dict[str, Any],
    clip: Path,
    info: VideoInfo,
    scale: np.ndarray,
    results: str | Path | None,
) -> Estimate:
    from cprcoach.pose.alphapose_backend import alphapose_api_people, check_settings, read_results, results_path
    from cprcoach.pose.rescuer import Person, choose_rescuer, link_tracks, track_arrays

    options = as_section(settings.alphapose)
    size = (probe["source"]["width"], probe["source"]["height"])
    if results is None and options.get("results_dir"):
        results = results_path(check_settings(options)["results_dir"], clip)
    if results is not None:
        people = read_results(results, info.frames, size=size)
        params, versions = {"results": str(results)}, _versions()
    else:
        import torch

        paths = check_settings(options)
        torch.set_num_threads(settings.threads)
        people, version = alphapose_api_people(clip, paths, options["detector"])
        factor = np.array([*scale, 1.0], dtype=np.float32)
        people = [
            [Person(p.keypoints * factor, p.box * np.tile(scale, 2), p.score, p.track) for p in frame]
            for frame in people
        ]
        params = {key: str(value) for key, value in paths.items()} | {"detector": options["detector"]}
        versions = _versions(alphapose=version, torch=torch.__version__)
    tracks = link_tracks(people, max_lost=max(settings.max_gap, round(info.fps)))
    choice = choose_rescuer(tracks, len(people), info.fps)
    keypoints, box, found = track_arrays(choice.track, len(people))
    params["rescuer"] = {
        "track": choice.track.ident if choice.track else None,
        "reason": choice.reason,
        "candidates": choice.candidates,
    }
    return keypoints, box, found, params, versions


def estimate_pose(
    clip: str | Path,
    probe_json: str | Path,
    out: str | Path,
    settings: PoseSettings | Mapping[str, Any] | None = None,
    sidecar: str | Path | None = None,
    alphapose_results: str | Path | None = None,
) -> PoseTrack:
    """Estimate, clean and write the rescuer's skeleton of one pose clip; returns what was written.

    `settings` is the stage's settings, or config.yaml's `pose:` section to build them from. `sidecar` is the
    synthetic ground truth (groundtruth backend; default: the one beside the probed raw video);
    `alphapose_results` an alphapose-results.json to read instead of pose.alphapose.results_dir.
    A clip where nobody is found is written too (found all False, scores 0) with a warning.
    """
    if not isinstance(settings, PoseSettings):
        settings = PoseSettings.from_config(settings)
    clip = Path(clip)
    probe = read_probe(probe_json)
    info = probe_video(clip)
    check_clip(clip)
    scale = np.array([probe["source"]["width"] / info.width, probe["source"]["height"] / info.height], dtype=np.float32)
    cv2.setNumThreads(settings.threads)
    backend = settings.backend
    if backend == "groundtruth":
        keypoints, box, found, params, versions = _groundtruth(settings, probe, info, sidecar)
    elif backend == "mediapipe":
        keypoints, box, found, params, versions = _mediapipe(settings, probe, clip, scale)
    else:
        keypoints, box, found, params, versions = _alphapose(settings, probe, clip, info, scale, alphapose_results)
    keypoints[..., 2] = np.clip(keypoints[..., 2], 0.0, 1.0)
    keypoints[..., :2] = smooth_found(keypoints[..., :2], found, settings.smoothing)
    box = smooth_found(box, found, settings.smoothing)
    keypoints, box, interpolated = fill_gaps(keypoints, box, found, settings.max_gap)
    if not found.any():
        log.warning("%s: nobody detected in any of its %d frames; written with every score 0", clip, len(found))
    meta = {
        "backend": backend,
        "params": params,
        "max_gap": settings.max_gap,
        "smoothing": settings.smoothing,
        "clip": {"path": str(clip), "width": info.width, "height": info.height, "frames": len(found)},
        "source": {
            "path": probe["source"].get("path"),
            "width": probe["source"]["width"],
            "height": probe["source"]["height"],
        },
        "fps": info.fps,
        "found_frames": int(found.sum()),
        "interpolated_frames": int(interpolated.sum()),
        "no_person": not bool(found.any()),
        "versions": versions,
    }
    track = PoseTrack(keypoints, box, found, interpolated, meta)
    write_pose(out, track)
    log.info(
        "%s: %s, %d frames, rescuer found in %d, %d interpolated -> %s",
        clip,
        backend,
        track.frames,
        meta["found_frames"],
        meta["interpolated_frames"],
        out,
    )
    return track


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="cprcoach pose estimate", description=__doc__)
    parser.add_argument("clips", type=Path, nargs="+", help="pose clips (results/clips/.../LABEL_TAKE.pose.mp4)")
    parser.add_argument(
        "--probe", type=Path, nargs="+", required=True, help="each clip's probe JSON of the resize stage"
    )
    parser.add_argument("--out", type=Path, nargs="+", required=True, help="one .npz to write per clip")
    parser.add_argument(
        "--sidecar",
        type=Path,
        nargs="+",
        help="each clip's ground-truth sidecar (default: beside the probed raw video)",
    )
    parser.add_argument("--alphapose-results", type=Path, nargs="+", help="each clip's alphapose-results.json")
    add_settings_argument(parser, "pose")
    parser.add_argument("--threads", type=int, required=True, help="the job's threads (in place of pose.threads)")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


@cli_errors
def run(args: argparse.Namespace) -> None:
    setup_logging(args.verbose)
    count = len(args.clips)
    lists = {
        "--probe": args.probe,
        "--out": args.out,
        "--sidecar": args.sidecar,
        "--alphapose-results": args.alphapose_results,
    }
    wrong = [f"{len(paths)} {name} paths" for name, paths in lists.items() if paths is not None and len(paths) != count]
    if wrong:
        raise CprCoachError(f"{count} clips but {', '.join(wrong)}", fix="pass one of each per clip")
    settings = PoseSettings.from_config({**args.settings, "threads": args.threads})
    for i, clip in enumerate(args.clips):
        estimate_pose(
            clip,
            args.probe[i],
            args.out[i],
            settings,
            sidecar=args.sidecar[i] if args.sidecar else None,
            alphapose_results=args.alphapose_results[i] if args.alphapose_results else None,
        )
