"""`cprcoach model late`: late fusion of several modalities' scores (a fusion, such as rgb+flow: the
two-stream network's way), for every method of one head run on its own.

The fused probability of a video is sum_m w_m p_m over the modalities m, the weights w on the
simplex and learned on the training split only; the test videos are never looked at.
- The weights are searched on a grid of step WEIGHT_STEP.
- The criterion is how well the fused scores rank the training participants' single-class videos:
  the mean over classes of the AP, fused over views.
- Among the weights within TIE of the best, the ones closest to equal weights win. Where the
  training split cannot tell the modalities apart (each one fits it), the fusion is the plain mean
  of probabilities.
The backbones and heads were trained on those very videos, so every modality tends to rank them
near perfectly and the weights are most often equal: the training split holds no held-out videos
to weigh the modalities on, and the test videos must not be used for it.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cprcoach.atomic import write_json_atomic
from cprcoach.errors import CprCoachError, cli_errors
from cprcoach.logs import setup_logging
from cprcoach.model.checkpoints import Scores, load_scores
from cprcoach.model.imagine import TITLES
from cprcoach.model.metrics import class_aps, fuse, headline_figures, score_report
from cprcoach.model.registry import fusion_name

log = logging.getLogger(__name__)

WEIGHT_STEP = 0.1
TIE = 1e-3  # training mAP differences below this do not move the weights away from equal ones


def weight_grid(members: int, step: float = WEIGHT_STEP) -> np.ndarray:
    """(G, members) every weight vector on the simplex whose entries are multiples of `step`."""
    units = round(1 / step)
    grid = [w for w in itertools.product(range(units + 1), repeat=members) if sum(w) == units]
    return np.array(grid, dtype=np.float64) / units


def learn_weights(member_scores: Sequence[np.ndarray], labels: Scores) -> tuple[np.ndarray, float]:
    """The weights (and their training mAP) that rank the training singles best, fused over views."""
    train = (labels.split == "train") & labels.is_single
    if not train.any():
        raise CprCoachError("the scores hold no training videos (split train, single class)", fix="check the sheet")
    recordings = labels.recording[train]
    grid = weight_grid(len(member_scores))
    criterion = np.empty(len(grid))
    for i, weights in enumerate(grid):
        scores = sum(w * s[train] for w, s in zip(weights, member_scores, strict=True))
        fused_labels, fused_scores, _ = fuse(labels.multi_hot[train], scores, recordings)
        criterion[i] = np.nanmean(class_aps(fused_labels, fused_scores))
    equal = np.full(len(member_scores), 1 / len(member_scores))
    near_best = np.flatnonzero(criterion >= criterion.max() - TIE)
    best = near_best[np.argmin(np.abs(grid[near_best] - equal).sum(axis=1))]
    return grid[best], float(criterion[best])


def check_members(members: Sequence[Scores], paths: Sequence[str | Path]) -> list[str]:
    """The methods every member scored; the members must score the same videos with the same head."""
    first = members[0]
    for scores, path in zip(members[1:], paths[1:], strict=True):
        if not np.array_equal(scores.video_id, first.video_id) or not np.array_equal(scores.multi_hot, first.multi_hot):
            raise CprCoachError(
                f"its videos or labels are not those of {paths[0]}",
                path=path,
                fix="fuse the scores of backbones trained on the same shard index (rerun the workflow)",
            )
        if (scores.meta["head"], scores.meta["seed"]) != (first.meta["head"], first.meta["seed"]):
            raise CprCoachError(
                f"it is the {scores.meta['head']} head of seed {scores.meta['seed']}, {paths[0]} the "
                f"{first.meta['head']} head of seed {first.meta['seed']}",
                path=path,
                fix="fuse one head run of one seed per modality",
            )
    return [method for method in first.scores if all(method in m.scores for m in members)]


def run_late(paths: Sequence[str | Path], metrics_path: str | Path) -> dict[str, Any]:
    """Fuse the members' scores per method, score the fusion on the test videos, write its metrics."""
    if len(paths) < 2:
        raise CprCoachError("a fusion joins two modalities or more", fix="pass two scores files or more")
    members = [load_scores(path) for path in paths]
    methods = check_members(members, paths)
    labels, codes = members[0], list(members[0].meta["classes"])
    modalities = [str(m.meta["modality"]) for m in members]
    composite = labels.multi_hot.sum(axis=1) >= 2
    heldout = (labels.split == "test") & labels.is_single
    reports, weights, summary = {}, {}, {}
    for method in methods:
        started = time.perf_counter()
        member_scores = [m.scores[method] for m in members]
        w, train_map = learn_weights(member_scores, labels)
        fused = sum(wi * s for wi, s in zip(w, member_scores, strict=True))
        reports[method] = score_report(
            fused, labels.multi_hot, labels.view, labels.recording, composite, heldout, codes
        )
        weights[method] = {"weights": dict(zip(modalities, w.round(3).tolist(), strict=True)), "train_mAP": train_map}
        own = time.perf_counter() - started
        train_s = sum(float(m.meta["train_s"][method]) for m in members) + own
        summary[method] = {**headline_figures(reports[method]), "train_s": round(train_s, 2)}
        log.info(
            "%s, late fusion of %s (weights %s, training mAP %.3f): composite mAP %s fused over views",
            TITLES[method],
            "+".join(modalities),
            weights[method]["weights"],
            train_map,
            reports[method]["composite"]["fused"]["mAP"],
        )
    head = labels.meta["head"]
    metrics = {
        "modality": fusion_name(modalities),
        "fusion": "late",
        "head": head,
        "members": modalities,
        "member_scores": [str(path) for path in paths],
        "seed": labels.meta["seed"],
        "weights": weights,
        "weight_step": WEIGHT_STEP,
        "class_names": dict(zip(codes, labels.meta.get("class_names", []), strict=False)),
        "n_composite_videos": int(composite.sum()),
        "n_heldout_single_videos": int(heldout.sum()),
        **reports[head],
        "baselines": {m: reports[m] for m in methods if m != head},
        "summary": summary,
    }
    write_json_atomic(metrics_path, metrics)
    log.info("-> %s", metrics_path)
    return metrics


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="cprcoach model late", description=__doc__)
    parser.add_argument(
        "scores", type=Path, nargs="+", help="scores files of `cprcoach model imagine --scores`, one per modality"
    )
    parser.add_argument("--metrics", type=Path, required=True, help="metrics JSON to write")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


@cli_errors
def run(args: argparse.Namespace) -> None:
    setup_logging(args.verbose)
    run_late(args.scores, args.metrics)
