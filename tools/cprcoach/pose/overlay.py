"""Draw a pose file's skeleton on a few frames of its clip, in one PNG, to check it by eye.

Keypoints are stored in raw-video pixels and scaled back to the clip's size here. Found frames
draw joints scored >= MIN_SCORE, limbs coloured by side (left blue, right orange, centre
green); interpolated frames draw every joint in grey; frames held at the last known position
draw nothing. The box is drawn thin around found frames.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import cv2
import numpy as np

from cprcoach.errors import VideoError, cli_errors
from cprcoach.figures import plt, save_png
from cprcoach.logs import setup_logging
from cprcoach.pose.format import PoseTrack, read_pose
from cprcoach.skeleton import HALPE26, HALPE26_EDGES
from cprcoach.video.frames import iter_frames

log = logging.getLogger(__name__)

MIN_SCORE = 0.3
LEFT, RIGHT, CENTRE, FILLED = (40, 110, 255), (255, 140, 0), (0, 200, 80), (170, 170, 170)


def _colour(a: int, b: int) -> tuple[int, int, int]:
    sides = {HALPE26[a].split("_")[0], HALPE26[b].split("_")[0]}
    return LEFT if sides == {"left"} else RIGHT if sides == {"right"} else CENTRE


def draw_skeleton(rgb: np.ndarray, track: PoseTrack, t: int, scale: np.ndarray) -> np.ndarray:
    """A copy of `rgb` with frame t's skeleton drawn; `scale` maps stored pixels to this image."""
    image = rgb.copy()
    thick = max(1, round(image.shape[1] / 320))
    xy = track.xy[t] * scale
    if track.found[t]:
        shown = track.scores[t] >= MIN_SCORE
    elif track.interpolated[t]:
        shown = np.ones(len(HALPE26), dtype=bool)
    else:
        return image
    points = [tuple(int(round(v)) for v in p) for p in xy]
    for a, b in HALPE26_EDGES:
        if shown[a] and shown[b]:
            colour = _colour(a, b) if track.found[t] else FILLED
            cv2.line(image, points[a], points[b], colour, thick, cv2.LINE_AA)
    for j in np.flatnonzero(shown):
        cv2.circle(image, points[j], thick + 1, (255, 255, 255) if track.found[t] else FILLED, -1, cv2.LINE_AA)
    if track.found[t]:
        x0, y0, x1, y1 = (int(round(v)) for v in track.box[t] * np.tile(scale, 2))
        cv2.rectangle(image, (x0, y0), (x1, y1), (255, 255, 0), 1)
    return image


def sample_frames(frames: int, count: int) -> list[int]:
    """`count` frame indices spread evenly over the clip, first and last included."""
    return sorted({int(round(v)) for v in np.linspace(0, frames - 1, min(count, frames))})


def skeleton_frames(clip: str | Path, track: PoseTrack, wanted: set[int]) -> dict[int, np.ndarray]:
    """Frames `wanted` of the clip the track was estimated on, each with its skeleton drawn
    (decoding stops after the last one)."""
    panels: dict[int, np.ndarray] = {}
    source = track.meta["source"]
    for index, rgb in enumerate(iter_frames(clip)):
        if index in wanted:
            scale = np.array([rgb.shape[1] / source["width"], rgb.shape[0] / source["height"]], dtype=np.float32)
            panels[index] = draw_skeleton(rgb, track, index, scale)
        if index >= max(wanted):
            break
    return panels


def overlay(clip: str | Path, pose: str | Path, out: str | Path, count: int = 4) -> list[int]:
    """Write the PNG of `count` frames of `clip` with the skeleton of `pose`; returns the frames drawn."""
    track = read_pose(pose)
    panels = skeleton_frames(clip, track, set(sample_frames(track.frames, count)))
    if not panels:
        raise VideoError("clip has no frames", path=clip, fix="delete it and rerun the resize stage")
    columns = min(len(panels), 4)
    rows = -(-len(panels) // columns)
    height, width = next(iter(panels.values())).shape[:2]
    figure, axes = plt.subplots(
        rows, columns, figsize=(3.6 * columns, 3.6 * height / width * rows + 0.5), squeeze=False
    )
    for axis in axes.flat:
        axis.axis("off")
    for axis, (index, image) in zip(axes.flat, panels.items(), strict=False):
        state = "found" if track.found[index] else "interpolated" if track.interpolated[index] else "held"
        axis.imshow(image)
        axis.set_title(f"frame {index} · {state}", fontsize=8)
    figure.suptitle(f"{Path(pose).name} · {track.meta.get('backend')}", fontsize=9)
    save_png(figure, out)
    return list(panels)


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="cprcoach pose overlay", description=__doc__)
    parser.add_argument("clip", type=Path, help="the clip the pose was estimated on (or any clip of that video)")
    parser.add_argument("--pose", type=Path, required=True, help="its pose file (.npz)")
    parser.add_argument("--out", type=Path, required=True, help="PNG to write")
    parser.add_argument("--frames", type=int, default=4, help="frames to draw, spread over the clip")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


@cli_errors
def run(args: argparse.Namespace) -> None:
    setup_logging(args.verbose)
    drawn = overlay(args.clip, args.pose, args.out, args.frames)
    log.info("%s: frames %s -> %s", args.pose, ", ".join(map(str, drawn)), args.out)
