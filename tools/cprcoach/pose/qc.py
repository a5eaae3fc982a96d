"""Quality of the pose files: PCK@0.2 against the synthetic ground truth, per joint and per video.

PCK@a: a joint visible in the ground truth is correct when the estimate lies within a * s of
it, s being the person's size in that frame: the longer side of the box of the visible
ground-truth keypoints (a torso length would vanish in side views and with a bent-over
rescuer; the box side does not). Joints outside the image are not counted. Every frame
counts, found or filled, since a later stage reads them all.

The table has one row per pose file; PCK columns stay empty for videos without a sidecar
(real recordings). `no_person` flags a clip where the backend never found anyone.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cprcoach.atomic import atomic_path
from cprcoach.errors import cli_errors
from cprcoach.figures import plt, save_png
from cprcoach.logs import setup_logging
from cprcoach.pose.format import PoseTrack, read_pose
from cprcoach.pose.groundtruth import frame_map, person_size, read_sidecar, sidecar_path
from cprcoach.skeleton import HALPE26

log = logging.getLogger(__name__)

THRESHOLD = 0.2


@dataclass(frozen=True)
class PCK:
    """Correct and counted joints, per joint (26,); `per_joint` is NaN where none was counted."""

    correct: np.ndarray
    total: np.ndarray

    @property
    def per_joint(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.total > 0, self.correct / np.maximum(self.total, 1), np.nan)

    @property
    def overall(self) -> float:
        return float(self.correct.sum() / self.total.sum()) if self.total.sum() else float("nan")


def pck(pred: np.ndarray, gt: np.ndarray, visible: np.ndarray, threshold: float = THRESHOLD) -> PCK:
    """PCK of predictions (T, 26, 2 or 3) against ground truth (T, 26, 2) where `visible` (T, 26)."""
    pred = np.asarray(pred, dtype=np.float64)[..., :2]
    gt = np.asarray(gt, dtype=np.float64)
    visible = np.asarray(visible, dtype=bool)
    size = person_size(gt, visible)
    counted = visible & (size[:, None] > 0)
    close = np.linalg.norm(pred - gt, axis=-1) <= threshold * size[:, None]
    return PCK((close & counted).sum(axis=0), counted.sum(axis=0))


def video_name(path: str | Path) -> str:
    """results/pose/P01/V1/E00_01.npz -> P01/V1/E00_01."""
    path = Path(path)
    return f"{path.parent.parent.name}/{path.parent.name}/{path.name.split('.')[0]}"


def track_pck(track: PoseTrack, threshold: float = THRESHOLD) -> PCK | None:
    """PCK of one pose file against its ground truth, or None without one: the sidecar the
    groundtruth backend read, else the one beside the raw video."""
    source = track.meta.get("source", {}).get("path")
    sidecar = track.meta.get("params", {}).get("sidecar") or (sidecar_path(source) if source else None)
    if not sidecar or not Path(sidecar).is_file():
        return None
    truth = read_sidecar(sidecar)
    index = frame_map(track.frames, float(track.meta["fps"]), len(truth["keypoints_2d"]), float(truth["fps"]))
    return pck(track.keypoints, truth["keypoints_2d"][index], truth["visible"][index], threshold)


def qc_table(paths: list[Path], threshold: float = THRESHOLD) -> tuple[pd.DataFrame, PCK | None]:
    """One row per pose file, and the PCK pooled over every video with ground truth."""
    rows, pooled = [], None
    for path in paths:
        track = read_pose(path)
        score = track_pck(track, threshold)
        row = {
            "video": video_name(path),
            "backend": track.meta.get("backend"),
            "frames": track.frames,
            "found": round(float(track.found.mean()), 4) if track.frames else 0.0,
            "interpolated": round(float(track.interpolated.mean()), 4) if track.frames else 0.0,
            "no_person": bool(track.meta.get("no_person", not track.found.any())),
            "pck": round(score.overall, 4) if score else np.nan,
        }
        for joint, value in zip(HALPE26, score.per_joint if score else [np.nan] * len(HALPE26), strict=True):
            row[f"pck_{joint}"] = round(float(value), 4)
        rows.append(row)
        if score:
            pooled = score if pooled is None else PCK(pooled.correct + score.correct, pooled.total + score.total)
    return pd.DataFrame(rows), pooled


def plot_pck(pooled: PCK | None, videos: int, flagged: int, out: str | Path, threshold: float = THRESHOLD) -> None:
    """Bar plot of the pooled PCK per joint (or a note that no video has ground truth)."""
    figure, axis = plt.subplots(figsize=(10, 3.6))
    if pooled is None:
        axis.text(0.5, 0.5, "no video has a ground-truth sidecar", ha="center", va="center")
        axis.axis("off")
    else:
        axis.bar(range(len(HALPE26)), np.nan_to_num(pooled.per_joint), color="tab:blue")
        axis.axhline(pooled.overall, color="tab:red", lw=1, label=f"all joints {pooled.overall:.3f}")
        axis.set_xticks(range(len(HALPE26)), HALPE26, rotation=70, fontsize=7)
        axis.set_ylim(0, 1.02)
        axis.set_ylabel(f"PCK@{threshold:g}")
        axis.legend(loc="lower right", fontsize=8)
    note = f", {flagged} with nobody found" if flagged else ""
    axis.set_title(f"Pose vs synthetic ground truth: {videos} videos{note}", fontsize=9)
    save_png(figure, out)


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="cprcoach pose qc", description=__doc__)
    parser.add_argument("poses", nargs="+", type=Path, help="pose files ({participant}/{view}/{label}_{take}.npz)")
    parser.add_argument("--table", type=Path, required=True, help="TSV to write, one row per video")
    parser.add_argument("--plot", type=Path, required=True, help="PNG to write: PCK per joint")
    parser.add_argument("--threshold", type=float, default=THRESHOLD, help="PCK threshold (share of person size)")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


@cli_errors
def run(args: argparse.Namespace) -> None:
    setup_logging(args.verbose)
    table, pooled = qc_table(args.poses, args.threshold)
    with atomic_path(args.table) as tmp:
        table.to_csv(tmp, sep="\t", index=False, na_rep="")
    flagged = int(table["no_person"].sum())
    plot_pck(pooled, len(table), flagged, args.plot, args.threshold)
    for video in table.loc[table["no_person"], "video"]:
        log.warning("%s: nobody was detected in this clip", video)
    overall = f"PCK@{args.threshold:g} {pooled.overall:.3f}" if pooled else "no ground truth"
    log.info("%d pose files, %s -> %s, %s", len(table), overall, args.table, args.plot)
