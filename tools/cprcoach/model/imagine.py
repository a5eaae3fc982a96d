"""`cprcoach model imagine`: ImagineNet, trained on composites imagined from single-class samples.

The sampler, per epoch, for every unordered combination of different error classes (all
C(13, 2) = 78 pairs; with model.imagine.triples also the C(13, 3) = 286 triples) draws `draws` random
training samples of each class of the combination and labels them with the union of their
labels (a 14-d multi-hot vector, index 0 = 0). Combinations are drawn afresh every epoch.
The correct class E00 is never part of an imagined composite. Nothing else is respected: the
class table's exclusive groups (e.g. Overlap Hands with Clenching Hands) are mixed too, as in the
release; imagining them costs nothing and the test set simply never asks for them.

Real single-class videos are trained on alongside (as in the release), each as a sample paired
with itself and its one-hot target: this is how the head sees E00 at all, and it keeps the
input form of every example the same (k samples of one feature scale). Test videos are fed
the same way, paired with themselves (k = 2), so the fc head sees a video's feature itself, the
scale of an imagined composite's mean.

Baselines scored in the same run, on the same features:
- backbone: the backbone's softmax over the 14 classes, used as multi-label scores;
- sigmoid: the fc architecture on one sample, BCE on the one-hot single labels, no imagination;
  its epochs repeat the singles to the size of an imagination epoch, so it gets as many steps.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cprcoach.atomic import write_json_atomic
from cprcoach.errors import CprCoachError, cli_errors
from cprcoach.logs import setup_logging
from cprcoach.model.checkpoints import Features, Scores, load_features, save_head, save_scores
from cprcoach.model.heads import load_release_fc, make_head
from cprcoach.model.metrics import headline_figures, score_report
from cprcoach.model.plots import plot_class_ap
from cprcoach.model.registry import BACKBONE_SOFTMAX, BASELINES, HEADS, METHODS
from cprcoach.model.settings import HeadSettings, ModelSettings
from cprcoach.model.train import Groups, fit_head, predict_head, resolve_device
from cprcoach.settings import add_settings_argument

log = logging.getLogger(__name__)

CORRECT_INDEX = 0
RELEASE_FC = "fc_release"  # the release's own ImagineNet-FC weights, scored as they are
TITLES = {
    **{name: head.title for name, head in HEADS.items()},
    RELEASE_FC: "ImagineNet-FC, release weights",
    BACKBONE_SOFTMAX: "backbone softmax",
}


class CompositeSampler:
    """Imagined composites (and the real singles) of one epoch, from the training samples' classes."""

    def __init__(
        self,
        class_index: np.ndarray,
        num_classes: int,
        orders: Sequence[int],
        draws: int,
        singles: bool = True,
    ):
        self.class_index = np.asarray(class_index, dtype=np.int64)
        self.num_classes = num_classes
        self.draws = draws
        self.singles = singles
        self.members = {c: np.flatnonzero(self.class_index == c) for c in range(num_classes)}
        errors = [c for c in range(num_classes) if c != CORRECT_INDEX]
        present = [c for c in errors if len(self.members[c])]
        if len(present) < len(errors):
            log.warning(
                "no training samples of error classes %s: composites with them cannot be imagined",
                [c for c in errors if c not in present],
            )
        # Orders with no combination (triples of two classes) are left out, not drawn empty.
        self.combinations = {
            k: np.array(list(itertools.combinations(present, k)), dtype=np.int64).reshape(-1, k)
            for k in orders
            if len(present) >= k
        }
        if not any(len(c) for c in self.combinations.values()):
            raise CprCoachError(
                f"too few error classes among the training samples ({len(present)}) to imagine composites",
                fix="train on single-class videos of at least two error classes",
            )

    @property
    def epoch_size(self) -> int:
        """Examples per epoch: the singles and every combination's draws."""
        singles = len(self.class_index) if self.singles else 0
        return singles + self.draws * sum(len(c) for c in self.combinations.values())

    def epoch(self, rng: np.random.Generator) -> Groups:
        """[(members (M, k), targets (M, C))]: the real singles as (i, i), then each order's composites."""
        groups = []
        if self.singles:
            index = np.arange(len(self.class_index))
            groups.append((np.stack([index, index], axis=1), self.one_hot(self.class_index)))
        for combinations in self.combinations.values():
            classes = np.repeat(combinations, self.draws, axis=0)
            members = np.empty_like(classes)
            for c in np.unique(classes):
                where = classes == c
                members[where] = self.members[int(c)][rng.integers(len(self.members[int(c)]), size=int(where.sum()))]
            targets = np.zeros((len(classes), self.num_classes), dtype=np.float32)
            np.put_along_axis(targets, classes, 1.0, axis=1)
            groups.append((members, targets))
        return groups

    def one_hot(self, classes: np.ndarray) -> np.ndarray:
        return np.eye(self.num_classes, dtype=np.float32)[classes]


def head_inputs(kind: str, features: Features) -> np.ndarray:
    """What a head reads of the features: the token sequences or the pooled features."""
    return features.tokens if HEADS[kind].tokens else features.pooled


def train_method(
    kind: str,
    features: Features,
    settings: HeadSettings,
    seed: int,
    device: torch.device,
    release_checkpoint: str | Path | None = None,
) -> tuple[torch.nn.Module | None, np.ndarray, list[dict]]:
    """Train one method on the training singles; returns (head or None, scores (N, C) of every video, history).

    RELEASE_FC trains nothing: it scores the release's ImagineNet-FC checkpoint on the features.
    """
    if kind == BACKBONE_SOFTMAX:
        logits = torch.from_numpy(features.logits)
        return None, torch.softmax(logits, dim=1).numpy(), []
    if kind == RELEASE_FC:
        head = load_release_fc(release_checkpoint)
        dim, classes = head.fc1.in_features, head.fc2.out_features
        if (dim, classes) != (features.pooled.shape[1], features.multi_hot.shape[1]):
            raise CprCoachError(
                f"the checkpoint is a {dim} -> {classes} head, the features are {features.pooled.shape[1]}-d "
                f"with {features.multi_hot.shape[1]} classes",
                path=release_checkpoint,
                fix="score it on the release's own features (`cprcoach model import-release`)",
            )
        head.to(device)
        return head, predict_head(head, torch.from_numpy(features.pooled).to(device), HEADS["fc"].copies), []
    train = np.flatnonzero((features.split == "train") & features.is_single)
    if len(train) == 0:
        raise CprCoachError("the features hold no training videos (split train, single class)", fix="check the sheet")
    inputs = torch.from_numpy(head_inputs(kind, features)).to(device)
    class_index = features.multi_hot[train].argmax(axis=1)
    num_classes = features.multi_hot.shape[1]
    sampler = CompositeSampler(class_index, num_classes, settings.orders, settings.draws)
    if not HEADS[kind].imagined:
        # As many examples per epoch (so as many gradient steps) as ImagineNet gets: the singles
        # repeated, so the baseline is not simply trained less.
        repeat = max(1, round(sampler.epoch_size / len(train)))
        groups: Groups = [
            (np.tile(train, repeat)[:, None], np.tile(np.eye(num_classes, dtype=np.float32)[class_index], (repeat, 1)))
        ]

        def draw(rng: np.random.Generator) -> Groups:
            return groups
    else:

        def draw(rng: np.random.Generator) -> Groups:
            return [(train[members], targets) for members, targets in sampler.epoch(rng)]

    torch.manual_seed(seed)
    head = make_head(kind, inputs.shape[-1], num_classes)
    history = fit_head(head, inputs, draw, settings, seed)
    return head, predict_head(head, inputs, HEADS[kind].copies), history


def backbone_seconds(features: Features) -> float:
    """The training time of the backbone (or backbones, for joined features) the features come from."""
    return float((features.meta.get("timings") or {}).get("train_s", 0.0))


def run_imagine(
    features_path: str | Path,
    kind: str,
    metrics_path: str | Path,
    settings: HeadSettings,
    seed: int,
    device: torch.device,
    plot_path: str | Path | None = None,
    scores_path: str | Path | None = None,
    checkpoint: str | Path | None = None,
    baselines: bool = True,
    release_checkpoint: str | Path | None = None,
) -> dict[str, Any]:
    """Train `kind` (and the baselines), score every method on the test videos; write the metrics and,
    when given, the per-class AP plot, every method's scores (for late fusion) and the trained head.

    With `release_checkpoint` (kind fc), the release's ImagineNet-FC weights are scored instead of
    training the fc head.
    """
    if release_checkpoint is not None:
        if kind != "fc":
            raise CprCoachError("the release's checkpoint is an fc head", fix="pass --head fc with it")
        kind = RELEASE_FC
    features = load_features(features_path)
    codes = list(features.meta["classes"])
    composite = features.multi_hot.sum(axis=1) >= 2
    heldout = (features.split == "test") & features.is_single
    if not composite.any():
        log.warning("the features hold no composite videos: no mAP can be computed")
    extra = [m for m in BASELINES if m != kind] if baselines and kind != BACKBONE_SOFTMAX else []
    methods = [kind, *extra]
    reports, timings, all_scores = {}, {}, {}
    for method in methods:
        started = time.perf_counter()
        head, scores, history = train_method(method, features, settings, seed, device, release_checkpoint)
        timings[method] = round(time.perf_counter() - started, 2)
        all_scores[method] = scores
        reports[method] = score_report(
            scores, features.multi_hot, features.view, features.recording, composite, heldout, codes
        )
        fused = reports[method]["composite"]["fused"]
        log.info(
            "%s: composite mAP %s, mmit-mAP %s (fused over views), held-out single top-1 %s, %.1f s",
            TITLES[method],
            fused["mAP"],
            fused["mmit_mAP"],
            reports[method]["single_top1"]["fused"]["top1"],
            timings[method],
        )
        if method == kind and head is not None:
            if history:
                first, last = history[0]["loss"], history[-1]["loss"]
                log.info("%s: loss %.4f -> %.4f over %d epochs", method, first, last, len(history))
            if checkpoint is not None:
                saved = "fc" if kind == RELEASE_FC else kind
                save_head(checkpoint, saved, head, features, head_inputs(saved, features).shape[-1])
    # A method's time: its backbones' training and its own (the backbone softmax's is the backbones' alone).
    train_s = {m: round(backbone_seconds(features) + timings[m], 2) for m in methods}
    train = (features.split == "train") & features.is_single
    modality = features.meta.get("modality")
    metrics = {
        "modality": modality,
        "fusion": features.meta.get("fusion", "none"),
        "members": features.meta.get("members"),
        "head": kind,
        "features": str(features_path),
        "features_source": features.meta.get("source", "cprcoach model backbone"),
        "release_checkpoint": str(release_checkpoint) if release_checkpoint is not None else None,
        "backbone_checkpoint": features.meta.get("checkpoint"),
        "seed": seed,
        "epochs": {BACKBONE_SOFTMAX: features.meta.get("epochs"), RELEASE_FC: None}.get(kind, settings.epochs),
        "settings": asdict(settings) if kind != RELEASE_FC else None,
        "imagination": None
        if kind in (BACKBONE_SOFTMAX, RELEASE_FC)
        else {
            "orders": list(settings.orders),
            "draws_per_combination": settings.draws,
            "singles_as_pairs": True,
            "test_copies": HEADS[kind].copies,
        },
        "class_names": dict(zip(codes, features.meta.get("class_names", []), strict=False)),
        "n_train_videos": int(train.sum()),
        "n_composite_videos": int(composite.sum()),
        "n_heldout_single_videos": int(heldout.sum()),
        "device": str(device),
        "timings": {"train_and_score_s": timings, "backbone": features.meta.get("timings"), "train_s": train_s},
        **reports[kind],
        "baselines": {m: reports[m] for m in methods[1:]},
        "summary": {m: {**headline_figures(r), "train_s": train_s[m]} for m, r in reports.items()},
    }
    write_json_atomic(metrics_path, metrics)
    if scores_path is not None:
        meta = {
            "modality": modality,
            "head": kind,
            "seed": seed,
            "classes": codes,
            "class_names": features.meta.get("class_names", []),
            "train_s": train_s,
        }
        save_scores(scores_path, Scores(scores=all_scores, meta=meta, **features.labels()))
    if plot_path is not None:
        plot_class_ap(
            {TITLES[m]: reports[m]["composite"]["fused"]["per_class_AP"] for m in methods},
            {TITLES[m]: reports[m]["composite"]["fused"]["mAP"] for m in methods},
            plot_path,
            f"{modality}: per-class AP on composite videos (fused over views)",
            metrics["class_names"],
        )
    log.info("-> %s", ", ".join(str(p) for p in (metrics_path, scores_path, plot_path, checkpoint) if p is not None))
    return metrics


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="cprcoach model imagine", description=__doc__)
    parser.add_argument("--features", type=Path, required=True, help="features of `cprcoach model backbone` (.npz)")
    parser.add_argument("--head", choices=METHODS, required=True, help="the method to train and score")
    parser.add_argument("--metrics", type=Path, required=True, help="metrics JSON to write")
    parser.add_argument("--plot", type=Path, help="per-class AP bar plot to write (.png)")
    parser.add_argument(
        "--scores", type=Path, help="every method's scores of every video to write (.npz), for late fusion"
    )
    parser.add_argument("--checkpoint", type=Path, help="trained head to write (.pt), for `cprcoach model assess`")
    parser.add_argument("--no-baselines", action="store_true", help="score only --head")
    parser.add_argument(
        "--release-checkpoint",
        type=Path,
        help="with --head fc: score the release's ImagineNet-FC weights (ST-GCN_pre-trained.pth) instead of training",
    )
    add_settings_argument(parser, "model")
    parser.add_argument("--seed", type=int, help="the run's seed (default: the first of model.seeds)")
    parser.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


@cli_errors
def run(args: argparse.Namespace) -> None:
    setup_logging(args.verbose)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.head == BACKBONE_SOFTMAX and args.checkpoint is not None:
        raise CprCoachError("the backbone's own scores have no head to save", fix="leave out --checkpoint")
    settings = ModelSettings.from_config(args.settings)
    run_imagine(
        args.features,
        args.head,
        args.metrics,
        settings.imagine,
        settings.seeds[0] if args.seed is None else args.seed,
        resolve_device(settings.device),
        plot_path=args.plot,
        scores_path=args.scores,
        checkpoint=args.checkpoint,
        baselines=not args.no_baselines,
        release_checkpoint=args.release_checkpoint,
    )
