"""`cprcoach model join`: one features file from several modalities' features (a fusion, such as
rgb+flow), on which the ImagineNet heads then train as on one modality's: fusion on features.

- The videos must be the same, in the same order (every backbone writes the shard index's order).
- Each modality is first scaled so that its training videos' pooled features have a root mean
  square of 1: without it, the modality with the largest activations would dominate the joined
  vector. The scale comes from the training split alone.
- The pooled features are concatenated.
- The token sequences differ in length between backbones (ST-GCN's is its frames over its strides,
  TSN's its segments). They are averaged over time down to the shortest (adaptive average pooling),
  then concatenated channel by channel, so that token t of the joined sequence is the same stretch
  of the video in every modality.
- An imagined composite draws one source video per error and reads every modality of it at once,
  so the joined sample is consistent.
- The logits are the log of the modalities' mean softmax, so the backbone baseline of a fusion is
  the two-stream average of the backbones' probabilities.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from cprcoach.errors import CprCoachError, cli_errors
from cprcoach.logs import setup_logging
from cprcoach.model.checkpoints import Features, load_features, save_features
from cprcoach.model.registry import fusion_name

log = logging.getLogger(__name__)


def check_same_videos(members: Sequence[Features], paths: Sequence[str | Path]) -> None:
    """Every member describes the same videos in the same order, with the same labels and classes, and
    comes from a backbone of the same seed."""
    first = members[0]
    for features, path in zip(members[1:], paths[1:], strict=True):
        if len(features) != len(first) or not np.array_equal(features.video_id, first.video_id):
            raise CprCoachError(
                f"its videos are not those of {paths[0]} ({len(features)} against {len(first)}, or in another order)",
                path=path,
                fix="train every backbone of the fusion on the same shard index (rerun the workflow)",
            )
        if not np.array_equal(features.multi_hot, first.multi_hot) or features.meta["classes"] != first.meta["classes"]:
            raise CprCoachError(f"its labels differ from those of {paths[0]}", path=path, fix="rerun its backbone")
        if features.meta.get("seed") != first.meta.get("seed"):
            raise CprCoachError(
                f"its backbone was trained with seed {features.meta.get('seed')}, that of {paths[0]} with "
                f"{first.meta.get('seed')}",
                path=path,
                fix="join the backbones of one seed",
            )


def training_scale(features: Features) -> float:
    """1 / the root mean square of the training videos' pooled features (1 where there are none)."""
    train = (features.split == "train") & features.is_single
    pooled = features.pooled[train] if train.any() else features.pooled
    rms = float(np.sqrt(np.mean(np.square(pooled, dtype=np.float64))))
    return 1.0 / rms if rms > 0 else 1.0


def pool_tokens(tokens: np.ndarray, length: int) -> np.ndarray:
    """(N, T, d) -> (N, length, d): the mean of each of `length` equal stretches of time."""
    pooled = F.adaptive_avg_pool1d(torch.from_numpy(tokens).transpose(1, 2), length)
    return pooled.transpose(1, 2).contiguous().numpy()


def join_features(members: Sequence[Features], paths: Sequence[str | Path]) -> Features:
    """The fusion of `members` (one features file per modality, in the fusion's order)."""
    if len(members) < 2:
        raise CprCoachError("a fusion joins two modalities or more", fix="pass two features files or more")
    check_same_videos(members, paths)
    scales = [training_scale(features) for features in members]
    length = min(features.tokens.shape[1] for features in members)
    pooled = np.concatenate([f.pooled * s for f, s in zip(members, scales, strict=True)], axis=1)
    tokens = np.concatenate([pool_tokens(f.tokens, length) * s for f, s in zip(members, scales, strict=True)], axis=2)
    probabilities = np.mean([torch.softmax(torch.from_numpy(f.logits), 1).numpy() for f in members], axis=0)
    modalities = [str(features.meta["modality"]) for features in members]
    timings = {
        key: round(sum(float((f.meta.get("timings") or {}).get(key, 0.0)) for f in members), 2)
        for key in ("train_s", "extract_s")
    }
    first = members[0].meta
    meta = {
        "modality": fusion_name(modalities),
        "fusion": "features",
        "source": "cprcoach model join",
        "members": modalities,
        "member_features": [str(path) for path in paths],
        "member_checkpoints": [f.meta.get("checkpoint") for f in members],
        "scales": dict(zip(modalities, scales, strict=True)),
        "checkpoint": None,
        "classes": first["classes"],
        "class_names": first.get("class_names", []),
        "input": {"dim": int(pooled.shape[1]), "tokens": length},
        "seed": first.get("seed"),
        "epochs": {m: f.meta.get("epochs") for m, f in zip(modalities, members, strict=True)},
        "timings": timings,
    }
    return Features(
        pooled=pooled.astype(np.float32),
        tokens=tokens.astype(np.float32),
        logits=np.log(np.clip(probabilities, 1e-12, None)).astype(np.float32),
        meta=meta,
        **members[0].labels(),
    )


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="cprcoach model join", description=__doc__)
    parser.add_argument("features", type=Path, nargs="+", help="features files of `cprcoach model backbone`, in order")
    parser.add_argument("--out", type=Path, required=True, help="joined features file to write (.npz)")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


@cli_errors
def run(args: argparse.Namespace) -> None:
    setup_logging(args.verbose)
    joined = join_features([load_features(path) for path in args.features], args.features)
    save_features(args.out, joined)
    log.info(
        "%s: %d videos, %d-d pooled features, %d tokens (scales %s) -> %s",
        joined.meta["modality"],
        len(joined),
        joined.pooled.shape[1],
        joined.tokens.shape[1],
        {m: round(s, 3) for m, s in joined.meta["scales"].items()},
        args.out,
    )
