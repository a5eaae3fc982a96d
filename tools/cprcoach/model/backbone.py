"""`cprcoach model backbone`: train a backbone on the single classes, then write its checkpoint and
the features of every video (train and test) that the ImagineNet heads learn from
(cprcoach.model.checkpoints describes both files).

Modalities (cprcoach.model.registry): skeleton (ST-GCN on the Halpe-26 graph), rgb and flow (a
TSN-style 2D CNN over segments), all read from the shards through their index (the workflow's
way); the skeleton can also come from a sample sheet and its pose files. The settings are config.yaml's
model section (--settings): model.skeleton for the skeleton, model.video for rgb and flow.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

import cprcoach
from cprcoach.classes import ClassTable, load_classes
from cprcoach.errors import CprCoachError, cli_errors
from cprcoach.logs import setup_logging
from cprcoach.model.checkpoints import Features, save_checkpoint, save_features
from cprcoach.model.data import (
    TEXT_FIELDS,
    SkeletonBatches,
    SkeletonBundle,
    bundle_from_index,
    bundle_from_poses,
    multi_hot,
    skeleton_inputs,
    tsn_batches,
    tsn_inputs,
)
from cprcoach.model.networks.stgcn import STGCN, STGCNConfig
from cprcoach.model.networks.tsn import TSN, TSNConfig
from cprcoach.model.registry import MODALITIES
from cprcoach.model.settings import BackboneTraining, ModelSettings
from cprcoach.model.train import extract, fit, resolve_device, seed_everything
from cprcoach.samples import read_sheet
from cprcoach.settings import add_settings_argument
from cprcoach.shards.index import read_index

log = logging.getLogger(__name__)

# Videos per forward pass when extracting features (memory only: eval mode treats each video alone).
SKELETON_EXTRACT_BATCH = 64
TSN_EXTRACT_BATCH = 32


def training_rows(split: np.ndarray, is_single: np.ndarray) -> np.ndarray:
    """Where the training videos are (split train, single class); an error if there are none."""
    train = (split == "train") & is_single
    if not train.any():
        raise CprCoachError(
            "no training videos: the sheet has no single-class videos with split 'train'",
            fix="check split.heldout_participants in config.yaml (someone must be left to train on)",
        )
    return train


def check_classes(width: int, classes_path: str | Path | None) -> ClassTable:
    """The class table, which must have as many single classes as the labels have entries."""
    table = load_classes(classes_path)
    if width != table.num_outputs:
        raise CprCoachError(
            f"labels have {width} entries, the class table {table.num_outputs}",
            path=table.source,
            fix="use the class table the sample sheet was made with (--classes)",
        )
    return table


def train_and_write(
    train: Callable[[], tuple[torch.nn.Module, list[dict]]],
    inputs: Callable[[], Iterable[torch.Tensor]],
    labels: dict[str, np.ndarray],
    table: ClassTable,
    run: dict[str, Any],
    checkpoint: str | Path,
    features_path: str | Path,
    device: torch.device,
) -> Features:
    """Train, extract every video's features, then write the checkpoint and the features file.

    `train` seeds, builds and trains the network; `run` describes the run for both files: modality,
    input, settings, seed, epochs, device.
    """
    started = time.perf_counter()
    model, history = train()
    train_seconds = time.perf_counter() - started
    started = time.perf_counter()
    pooled, tokens, logits = extract(model, inputs(), device)
    timings = {"train_s": round(train_seconds, 2), "extract_s": round(time.perf_counter() - started, 2)}
    info = {**run, "timings": timings}
    single = labels["multi_hot"].sum(axis=1) == 1
    heldout = (labels["split"] == "test") & single
    top1 = logits[heldout].argmax(1) == labels["multi_hot"][heldout].argmax(1)
    heldout_top1 = float(np.mean(top1)) if heldout.any() else None
    classes = {"classes": table.single_codes, "class_names": [table.name(code) for code in table.single_codes]}
    save_checkpoint(
        checkpoint,
        model,
        {
            **classes,
            **info,
            "history": history,
            "heldout_single_top1": heldout_top1,
            "versions": {"cprcoach": cprcoach.__version__, "torch": str(torch.__version__)},
        },
    )
    meta = {"checkpoint": str(checkpoint), **classes, **info, "heldout_single_top1": heldout_top1}
    features = Features(pooled=pooled, tokens=tokens, logits=logits, meta=meta, **labels)
    save_features(features_path, features)
    log.info(
        "%s backbone: %.1f s training (last loss %.3f, train accuracy %.2f), held-out single top-1 %s -> %s, %s",
        info["modality"],
        info["timings"]["train_s"],
        history[-1]["loss"] if history else float("nan"),
        history[-1]["accuracy"] if history else float("nan"),
        f"{heldout_top1:.3f}" if heldout_top1 is not None else "n/a",
        checkpoint,
        features_path,
    )
    return features


def run_description(
    modality: str, inputs: dict[str, int], settings: BackboneTraining, seed: int, device: torch.device
) -> dict[str, Any]:
    return {
        "modality": modality,
        "input": inputs,
        "settings": asdict(settings),
        "seed": seed,
        "epochs": settings.epochs,
        "device": str(device),
    }


def run_skeleton_backbone(
    bundle: SkeletonBundle,
    checkpoint: str | Path,
    features_path: str | Path,
    settings: ModelSettings,
    seed: int,
    device: torch.device,
    classes_path: str | Path | None = None,
) -> Features:
    """Train ST-GCN on the bundle's training videos, then write the checkpoint and every video's features."""
    table = check_classes(bundle.multi_hot.shape[1], classes_path)
    skeleton = settings.skeleton
    config = STGCNConfig.from_settings(skeleton, table.num_outputs)
    train = bundle.subset(training_rows(bundle.split, bundle.is_single))
    log.info(
        "training ST-GCN on %d videos (%d classes present), %d epochs on %s",
        len(train),
        len(np.unique(train.class_index)),
        skeleton.epochs,
        device,
    )
    labels = {"multi_hot": bundle.multi_hot, **{name: getattr(bundle, name) for name in TEXT_FIELDS}}

    def train_network() -> tuple[STGCN, list[dict]]:
        seed_everything(seed)
        model = STGCN(config)
        batches = SkeletonBatches(train.x, train.class_index, skeleton.batch_size, skeleton.crop, seed, device)
        return model, fit(model, batches, skeleton, device)

    return train_and_write(
        train_network,
        lambda: skeleton_inputs(bundle.x, SKELETON_EXTRACT_BATCH),
        labels,
        table,
        run_description("skeleton", {"frames": bundle.frames}, skeleton, seed, device),
        checkpoint,
        features_path,
        device,
    )


def run_video_backbone(
    modality: str,
    index: pd.DataFrame,
    checkpoint: str | Path,
    features_path: str | Path,
    settings: ModelSettings,
    seed: int,
    device: torch.device,
    classes_path: str | Path | None = None,
) -> Features:
    """Train the rgb or flow TSN on the index's training videos, then write the checkpoint and every
    video's features."""
    labels = {
        "multi_hot": np.stack([multi_hot(str(text)) for text in index["multi_hot"]]),
        **{name: np.asarray(index[name].astype(str), dtype=str) for name in TEXT_FIELDS},
    }
    table = check_classes(labels["multi_hot"].shape[1], classes_path)
    video = settings.video
    config = TSNConfig.from_settings(video, modality, table.num_outputs)
    train = index[training_rows(labels["split"], labels["multi_hot"].sum(axis=1) == 1)]
    log.info(
        "training the %s TSN on %d videos (%d classes present), %d epochs on %s",
        modality,
        len(train),
        train["label_index"].nunique(),
        video.epochs,
        device,
    )

    def train_network() -> tuple[TSN, list[dict]]:
        seed_everything(seed)
        model = TSN(config)
        batches = tsn_batches(config, train, video.batch_size, video.workers, seed, device)
        return model, fit(model, batches, video, device)

    return train_and_write(
        train_network,
        lambda: tsn_inputs(config, index, TSN_EXTRACT_BATCH, video.workers),
        labels,
        table,
        run_description(modality, {"segments": config.segments, "length": config.length}, video, seed, device),
        checkpoint,
        features_path,
        device,
    )


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="cprcoach model backbone", description=__doc__)
    parser.add_argument("--modality", choices=MODALITIES, required=True)
    source = parser.add_argument_group("input (a shard index; for the skeleton also a sample sheet with pose files)")
    source.add_argument("--index", type=Path, help="shard index (TSV) of `cprcoach shards index`")
    source.add_argument("--samples", type=Path, help="skeleton only: the sample sheet (TSV), with --poses")
    source.add_argument(
        "--poses", help="skeleton only: pose file pattern, e.g. 'results/pose/{participant}/{view}/{label}_{take}.npz'"
    )
    parser.add_argument("--classes", type=Path, help="class table YAML (default: the project's table)")
    parser.add_argument("--checkpoint", type=Path, required=True, help="backbone checkpoint to write (.pt)")
    parser.add_argument("--features", type=Path, required=True, help="features of every video to write (.npz)")
    add_settings_argument(parser, "model")
    parser.add_argument("--seed", type=int, help="the run's seed (default: the first of model.seeds)")
    parser.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


def load_bundle(args: argparse.Namespace, frames: int) -> SkeletonBundle:
    """The skeleton bundle from --index, or from --samples and --poses."""
    if args.index is not None:
        if args.samples is not None or args.poses is not None:
            raise CprCoachError("two inputs given", fix="pass --index INDEX, or --samples SHEET and --poses PATTERN")
        return bundle_from_index(args.index, frames)
    if args.samples is None or args.poses is None:
        raise CprCoachError("no input", fix="pass --index INDEX, or --samples SHEET and --poses PATTERN")
    return bundle_from_poses(read_sheet(args.samples), args.poses, frames)


@cli_errors
def run(args: argparse.Namespace) -> None:
    setup_logging(args.verbose)
    if args.threads:
        torch.set_num_threads(args.threads)
    settings = ModelSettings.from_config(args.settings)
    seed = settings.seeds[0] if args.seed is None else args.seed
    device = resolve_device(settings.device)
    if args.modality == "skeleton":
        bundle = load_bundle(args, settings.skeleton.frames)
        run_skeleton_backbone(bundle, args.checkpoint, args.features, settings, seed, device, args.classes)
        return
    if args.index is None:
        raise CprCoachError(f"the {args.modality} backbone reads the shards", fix="pass --index INDEX")
    index = read_index(args.index)
    run_video_backbone(args.modality, index, args.checkpoint, args.features, settings, seed, device, args.classes)
