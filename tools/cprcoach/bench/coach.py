"""`cprcoach pose coach-check POSES...`: the coach's measurements against the synthetic ground truth.

For each pose file whose raw recording has a ground-truth sidecar (the synthetic dataset's), the
compressions the sidecar knows (the deepest points of its chest-depth signal, counted as the
coach counts them) against those measured from the skeleton: the share of takes whose count is
exact, whose rate is within RATE_WITHIN per minute, and the depth's error in cm. `--json` writes
the figures and every take's row.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import numpy as np
from scipy import signal

from cprcoach.atomic import write_json_atomic
from cprcoach.coach.measure import MIN_INTERVAL_S, PROMINENCE, inside_clip, measure_pose
from cprcoach.errors import CprCoachError, cli_errors
from cprcoach.logs import setup_logging
from cprcoach.pose.groundtruth import read_sidecar, sidecar_path

log = logging.getLogger(__name__)

RATE_WITHIN = 3.0  # per minute


def truth_of(sidecar: dict[str, Any], fps: float) -> tuple[int, float | None, float | None]:
    """The compressions a sidecar knows: their count, rate (per minute) and median depth (cm)."""
    depth = np.asarray(sidecar["chest_depth"], dtype=float)
    bottoms, _ = signal.find_peaks(
        depth, distance=round(MIN_INTERVAL_S * fps), prominence=PROMINENCE * float(np.ptp(depth))
    )
    left, centre, right = depth[bottoms - 1], depth[bottoms], depth[bottoms + 1]
    instants = bottoms + 0.5 * (left - right) / (left - 2 * centre + right)  # the exact samples' parabola
    inside = inside_clip(instants / fps, len(depth), fps)
    bottoms, instants = bottoms[inside], instants[inside]
    count = len(bottoms)
    rate = 60.0 * fps * (count - 1) / float(instants[-1] - instants[0]) if count > 1 else None
    return count, rate, 100.0 * float(np.median(depth[bottoms])) if count else None


def check_take(pose: str | Path) -> dict[str, Any]:
    track, measured = measure_pose(pose)
    source = track.meta.get("source", {}).get("path")
    if not source or not sidecar_path(source).is_file():
        raise CprCoachError(
            "no ground-truth sidecar beside its raw recording", path=pose, fix="check synthetic recordings only"
        )
    truth = read_sidecar(sidecar_path(source))
    count, rate, depth_cm = truth_of(truth, float(truth["fps"]))
    summary = measured.summary()
    return {
        "pose": str(pose),
        "label": truth["label"],
        "view": truth["view"],
        "count": measured.count,
        "true_count": count,
        "rate_per_min": summary["rate_per_min"],
        "true_rate_per_min": rate,
        "depth_cm": summary["depth_cm"],
        "true_depth_cm": depth_cm,
        "posture": summary["posture"],
        "true_posture": truth["motion"]["posture"],
    }


def figures(rows: list[dict[str, Any]]) -> dict[str, float]:
    def rate_ok(r: dict) -> bool:
        return (
            r["rate_per_min"] is not None
            and r["true_rate_per_min"] is not None
            and (abs(r["rate_per_min"] - r["true_rate_per_min"]) <= RATE_WITHIN)
        )

    depth = [r["depth_cm"] - r["true_depth_cm"] for r in rows if r["depth_cm"] is not None and r["true_depth_cm"]]
    return {
        "takes": len(rows),
        "count_exact": float(np.mean([r["count"] == r["true_count"] for r in rows])),
        "rate_within": float(np.mean([rate_ok(r) for r in rows])),
        "depth_error_cm_mean": float(np.mean(depth)),
        "depth_error_cm_sd": float(np.std(depth)),
        "posture_right": float(np.mean([r["posture"] == r["true_posture"] for r in rows])),
    }


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="cprcoach pose coach-check", description=__doc__)
    parser.add_argument("poses", nargs="+", type=Path, help="pose files of synthetic recordings")
    parser.add_argument("--json", type=Path, help="write the figures and every take's row here")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


@cli_errors
def run(args: argparse.Namespace) -> None:
    setup_logging(args.verbose)
    rows = [check_take(path) for path in args.poses]
    result = figures(rows)
    print(
        f"{result['takes']} takes: compression count exact on {100 * result['count_exact']:.1f}%, rate within"
        f" {RATE_WITHIN:g} per minute on {100 * result['rate_within']:.1f}%, depth error"
        f" {result['depth_error_cm_mean']:+.2f} cm (sd {result['depth_error_cm_sd']:.2f}), posture right on"
        f" {100 * result['posture_right']:.1f}%"
    )
    if args.json:
        write_json_atomic(args.json, {**result, "rows": rows})
