"""Scoring: average precision, mAP, mmit-mAP, top-1, per view and fused over views.

AP is the step-wise area under the precision-recall curve, without interpolation: the sum over
the distinct score thresholds of (R_n - R_{n-1}) * P_n, tied scores counted as one threshold.
It is the definition of scikit-learn's average_precision_score, written here so scoring needs
no scikit-learn at run time (the tests check the two agree).

- mAP: mean over classes of the AP of that class's scores over the videos. A class with no
  positive video has no AP; it is skipped and listed (`skipped_classes`). On composite videos
  that always includes E00 (correct), and every error no composite of the test set contains.
- mmit-mAP: mean over videos of the AP of that video's 14 scores (Multi-Moments in Time); a
  video without any positive class would be skipped the same way.
- top-1: share of single-class videos whose highest score is their class.
- fused: the 4 views of one recording (participant, label, take) scored as one video whose
  scores are the mean of the views' scores.
- by order: the same figures for the composites of 2, 3 and 4 errors apart (the release tests on
  the two-error composites alone).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def average_precision(y_true: np.ndarray, scores: np.ndarray) -> float:
    """AP of one ranking; NaN when there is no positive."""
    y_true = np.asarray(y_true).astype(bool).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if y_true.shape != scores.shape:
        raise ValueError(f"labels {y_true.shape} and scores {scores.shape} differ in shape")
    positives = int(y_true.sum())
    if positives == 0:
        return float("nan")
    order = np.argsort(-scores, kind="stable")
    ranked, ranked_scores = y_true[order], scores[order]
    hits = np.cumsum(ranked)
    # Keep the last position of each run of equal scores: one threshold per distinct score.
    last = np.r_[np.flatnonzero(np.diff(ranked_scores)), len(ranked) - 1]
    tp = hits[last]
    precision = tp / (last + 1)
    recall = tp / positives
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def class_aps(y_true: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """(N, C) labels and scores -> (C,) AP of each class over the videos (NaN: no positive)."""
    return np.array([average_precision(y_true[:, c], scores[:, c]) for c in range(y_true.shape[1])])


def mmit_map(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Mean over videos of the AP of the video's scores over the classes; NaN when none has a positive."""
    aps = np.array([average_precision(t, s) for t, s in zip(y_true, scores, strict=True)])
    return float(np.nanmean(aps)) if np.isfinite(aps).any() else float("nan")


def top1(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Share of rows whose highest score is a positive class."""
    if len(y_true) == 0:
        return float("nan")
    return float(np.mean(y_true[np.arange(len(y_true)), scores.argmax(axis=1)] > 0))


def fuse(y_true: np.ndarray, scores: np.ndarray, recordings: Sequence[str]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Average the scores of the videos of each recording (its views); returns labels, scores, recordings."""
    recordings = np.asarray(recordings)
    keys, first, inverse = np.unique(recordings, return_index=True, return_inverse=True)
    fused = np.zeros((len(keys), scores.shape[1]))
    np.add.at(fused, inverse, scores)
    fused /= np.bincount(inverse)[:, None]
    labels = y_true[first]
    if (y_true != labels[inverse]).any():
        raise ValueError("the views of one recording carry different labels")
    return labels, fused, keys.tolist()


def error_counts(multi_hot: np.ndarray) -> np.ndarray:
    """(N, C) label vectors -> (N,) how many errors each holds (index 0, the correct class, is none)."""
    return multi_hot.sum(axis=1) - multi_hot[:, 0]


def _number(value: float) -> float | None:
    """A JSON-friendly metric: NaN (undefined) becomes null."""
    return None if not np.isfinite(value) else round(float(value), 6)


def multilabel_summary(y_true: np.ndarray, scores: np.ndarray, codes: Sequence[str]) -> dict:
    """mAP, mmit-mAP and the per-class AP of a set of videos."""
    aps = class_aps(y_true, scores) if len(y_true) else np.full(len(codes), np.nan)
    return {
        "mAP": _number(np.nanmean(aps)) if np.isfinite(aps).any() else None,
        "mmit_mAP": _number(mmit_map(y_true, scores)) if len(y_true) else None,
        "per_class_AP": {code: _number(ap) for code, ap in zip(codes, aps, strict=True)},
        "skipped_classes": [code for code, ap in zip(codes, aps, strict=True) if not np.isfinite(ap)],
        "n_videos": len(y_true),
    }


def _summary(kind: str, y_true: np.ndarray, scores: np.ndarray, codes: Sequence[str]) -> dict:
    if kind == "composite":
        return multilabel_summary(y_true, scores, codes)
    return {"top1": _number(top1(y_true, scores)), "n_videos": len(y_true)}


def score_report(
    scores: np.ndarray,
    multi_hot: np.ndarray,
    views: Sequence[str],
    recordings: Sequence[str],
    composite: np.ndarray,
    heldout_single: np.ndarray,
    codes: Sequence[str],
) -> dict:
    """Every figure of one method: composites (multi-label) and held-out singles (top-1), each over
    all videos, per view and fused over views; and the composites of each order (2, 3, 4 errors)
    over all videos and fused. Index 0 of the labels is the correct class."""
    views, recordings = np.asarray(views), np.asarray(recordings)
    report: dict = {}
    for kind, mask in (("composite", composite), ("single_top1", heldout_single)):
        y, s, v = multi_hot[mask], scores[mask], views[mask]
        fused_y, fused_s, _ = fuse(y, s, recordings[mask]) if mask.any() else (y, s, [])
        report[kind] = {
            "videos": _summary(kind, y, s, codes),
            "views": {view: _summary(kind, y[v == view], s[v == view], codes) for view in sorted(set(v))},
            "fused": _summary(kind, fused_y, fused_s, codes),
        }
    errors = error_counts(multi_hot)
    report["composite_by_order"] = {}
    for order in sorted({int(e) for e in errors[composite]}):
        mask = composite & (errors == order)
        y, s = multi_hot[mask], scores[mask]
        fused_y, fused_s, _ = fuse(y, s, recordings[mask])
        report["composite_by_order"][str(order)] = {
            "videos": multilabel_summary(y, s, codes),
            "fused": multilabel_summary(fused_y, fused_s, codes),
        }
    return report


def headline_figures(report: dict) -> dict[str, float | None]:
    """One method's headline figures from its score_report: composite mAP and mmit-mAP per video and
    fused, fused by composite order, and the held-out single top-1."""
    figures = {
        "composite_mAP": report["composite"]["videos"]["mAP"],
        "composite_mmit_mAP": report["composite"]["videos"]["mmit_mAP"],
        "composite_mAP_fused": report["composite"]["fused"]["mAP"],
        "composite_mmit_mAP_fused": report["composite"]["fused"]["mmit_mAP"],
    }
    for order, figures_of_order in report["composite_by_order"].items():
        figures[f"mAP_fused_{order}_errors"] = figures_of_order["fused"]["mAP"]
        figures[f"mmit_mAP_fused_{order}_errors"] = figures_of_order["fused"]["mmit_mAP"]
    figures["single_top1"] = report["single_top1"]["videos"]["top1"]
    figures["single_top1_fused"] = report["single_top1"]["fused"]["top1"]
    return figures
