"""`cprcoach model backbone`: train a backbone on the single classes, then write its checkpoint and
the features of every video (train and test) that the ImagineNet heads learn from.

Modalities: skeleton (ST-GCN on the Halpe-26 graph, cprcoach.model.stgcn), rgb and flow (a
TSN-style 2D CNN over segments, cprcoach.model.tsn), all read from the shards through their index
(the workflow's way); the skeleton can also come from a sample sheet and its pose files.

Features file (.npz, one row per video in sample-sheet order):
  pooled     (N, d) float32        the token sequence's mean: what the fc and sigmoid heads read
  tokens     (N, T', d) float32    the last block's output pooled over joints: what sa and ca read
  logits     (N, 14) float32       the backbone's own class scores (the backbone baseline)
  multi_hot  (N, 14) uint8         labels
  video_id, participant, view, label, take, split   text, from the sample sheet
  meta       0-d str               JSON: modality, checkpoint, classes, input, seed, timings
Checkpoint (.pt, torch.load(weights_only=True)): format, modality, architecture (stgcn, tsn), the
network's config and weights, the class codes and names, the input settings (skeleton: frames T;
rgb, flow: segments and snippet length), the training settings, history and timings.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

import cprcoach
from cprcoach.atomic import atomic_path
from cprcoach.classes import ClassTable, load_classes
from cprcoach.errors import CprCoachError, cli_errors
from cprcoach.logs import setup_logging
from cprcoach.model.data import FRAMES, TEXT_FIELDS, SkeletonBundle, bundle_from_index, bundle_from_poses, multi_hot
from cprcoach.model.stgcn import STGCN, STGCNConfig
from cprcoach.model.store import load_payload, load_weights, save_payload
from cprcoach.model.train import BackboneSettings, fit_backbone, resolve_device, seed_everything
from cprcoach.model.tsn import TSN, TSNConfig, TSNSettings, default_length, extract_tsn, fit_tsn
from cprcoach.samples import read_sheet
from cprcoach.shards.index import read_index

log = logging.getLogger(__name__)

# /2: the labels are the official classes (E01-E13 named other errors in /1).
CHECKPOINT_FORMAT = "cprcoach-backbone/2"
FEATURES_FORMAT = "cprcoach-features/2"
MODALITIES = ("skeleton", "rgb", "flow")
ARCHITECTURES = {"stgcn": (STGCN, STGCNConfig), "tsn": (TSN, TSNConfig)}


@dataclass
class Features:
    """The backbone's view of every video (see the module docstring)."""

    pooled: np.ndarray
    tokens: np.ndarray
    logits: np.ndarray
    multi_hot: np.ndarray
    video_id: np.ndarray
    participant: np.ndarray
    view: np.ndarray
    label: np.ndarray
    take: np.ndarray
    split: np.ndarray
    meta: dict[str, Any]

    def __len__(self) -> int:
        return len(self.pooled)

    @property
    def is_single(self) -> np.ndarray:
        return self.multi_hot.sum(axis=1) == 1

    @property
    def recording(self) -> np.ndarray:
        """One key per recording: the views of a participant's take of a class share it."""
        return np.char.add(np.char.add(np.char.add(self.participant, "/"), np.char.add(self.label, "/")), self.take)


@torch.no_grad()
def extract(model: STGCN, x: np.ndarray, device: torch.device, batch_size: int = 64) -> tuple[np.ndarray, ...]:
    """(pooled, tokens, logits) of every video of x (N, 3, T, V), in eval mode."""
    model.to(device).eval()
    chunks = np.array_split(x, max(1, math.ceil(len(x) / batch_size)))
    parts = [model.features(torch.from_numpy(chunk).to(device)) for chunk in chunks]
    return tuple(torch.cat([p[i] for p in parts]).cpu().numpy() for i in range(3))


def save_features(path: str | Path, features: Features) -> None:
    arrays = {f.name: getattr(features, f.name) for f in fields(features) if f.name != "meta"}
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **arrays, meta=np.array(json.dumps({"format": FEATURES_FORMAT, **features.meta})))


def load_features(path: str | Path) -> Features:
    path = Path(path)
    fix = "rerun `cprcoach model backbone`"
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {f.name: data[f.name] for f in fields(Features)}
    except (OSError, KeyError, ValueError) as error:
        raise CprCoachError(f"not a readable features file ({error})", path=path, fix=fix) from None
    meta = json.loads(str(arrays.pop("meta")))
    if meta.get("format") != FEATURES_FORMAT:
        raise CprCoachError(f"not a {FEATURES_FORMAT} file", path=path, fix=fix)
    return Features(meta=meta, **arrays)


def architecture_of(model: torch.nn.Module) -> str:
    return next(name for name, (network, _) in ARCHITECTURES.items() if isinstance(model, network))


def save_checkpoint(path: str | Path, model: torch.nn.Module, extra: dict[str, Any]) -> None:
    state = {key: value.cpu() for key, value in model.state_dict().items()}
    payload = {
        "format": CHECKPOINT_FORMAT,
        "architecture": architecture_of(model),
        "config": asdict(model.config),
        "state_dict": state,
        **extra,
    }
    save_payload(path, payload)


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> tuple[torch.nn.Module, dict[str, Any]]:
    """The trained backbone (eval mode, on `device`) and the rest of its checkpoint."""
    fix = "pass a checkpoint written by `cprcoach model backbone`"
    checkpoint = load_payload(path, CHECKPOINT_FORMAT, fix, device)
    network, network_config = ARCHITECTURES[checkpoint["architecture"]]
    model = network(network_config(**checkpoint["config"]))
    load_weights(model, checkpoint["state_dict"], path, fix)
    return model.to(device).eval(), checkpoint


def training_rows(split: np.ndarray, is_single: np.ndarray) -> np.ndarray:
    """Where the training videos are (split train, single class); an error if there are none."""
    train = (split == "train") & is_single
    if not train.any():
        raise CprCoachError(
            "no training videos: the sheet has no single-class videos with split 'train'",
            fix="check split.heldout_participants in config.yaml (someone must be left to train on)",
        )
    return train


def train_skeleton(
    bundle: SkeletonBundle, settings: BackboneSettings, config: STGCNConfig, device: torch.device
) -> tuple[STGCN, list[dict]]:
    """ST-GCN trained with cross-entropy on the bundle's training videos (split train, single class)."""
    train = bundle.subset(training_rows(bundle.split, bundle.is_single))
    seed_everything(settings.seed)
    model = STGCN(config)
    log.info(
        "training ST-GCN on %d videos (%d classes present), %d epochs on %s",
        len(train),
        len(np.unique(train.class_index)),
        settings.epochs,
        device,
    )
    return model, fit_backbone(model, train.x, train.class_index, settings, device)


def train_video(
    table: pd.DataFrame, settings: TSNSettings, config: TSNConfig, device: torch.device
) -> tuple[TSN, list[dict]]:
    """The TSN CNN trained with cross-entropy on the index's training videos."""
    labels = np.stack([multi_hot(str(text)) for text in table["multi_hot"]])
    train = table[training_rows(table["split"].astype(str).to_numpy(), labels.sum(axis=1) == 1)]
    seed_everything(settings.seed)
    model = TSN(config)
    log.info(
        "training the %s TSN on %d videos (%d classes present), %d epochs on %s",
        config.modality,
        len(train),
        train["label_index"].nunique(),
        settings.epochs,
        device,
    )
    return model, fit_tsn(model, train, settings, device)


def train_and_write(
    train: Callable[[], tuple[torch.nn.Module, list[dict]]],
    extract_all: Callable[[torch.nn.Module], tuple[np.ndarray, np.ndarray, np.ndarray]],
    labels: dict[str, np.ndarray],
    table: ClassTable,
    run: dict[str, Any],
    checkpoint: str | Path,
    features_path: str | Path,
) -> Features:
    """Train, extract every video's features, then write the checkpoint and the features file.

    `run` describes the run for both files: modality, input, settings, seed, epochs, device.
    """
    started = time.perf_counter()
    model, history = train()
    train_seconds = time.perf_counter() - started
    started = time.perf_counter()
    pooled, tokens, logits = extract_all(model)
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
    modality: str, inputs: dict[str, int], settings: BackboneSettings | TSNSettings, device: torch.device
) -> dict[str, Any]:
    return {
        "modality": modality,
        "input": inputs,
        "settings": asdict(settings),
        "seed": settings.seed,
        "epochs": settings.epochs,
        "device": str(device),
    }


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


def run_skeleton_backbone(
    bundle: SkeletonBundle,
    checkpoint: str | Path,
    features_path: str | Path,
    settings: BackboneSettings,
    config: STGCNConfig,
    device: torch.device,
    classes_path: str | Path | None = None,
) -> Features:
    """Train ST-GCN, then write the checkpoint and every video's features; returns the features."""
    table = check_classes(bundle.multi_hot.shape[1], classes_path)
    config.num_classes = table.num_outputs
    labels = {"multi_hot": bundle.multi_hot, **{name: getattr(bundle, name) for name in TEXT_FIELDS}}
    return train_and_write(
        lambda: train_skeleton(bundle, settings, config, device),
        lambda model: extract(model, bundle.x, device),
        labels,
        table,
        run_description("skeleton", {"frames": bundle.frames}, settings, device),
        checkpoint,
        features_path,
    )


def run_video_backbone(
    index: pd.DataFrame,
    checkpoint: str | Path,
    features_path: str | Path,
    settings: TSNSettings,
    config: TSNConfig,
    device: torch.device,
    classes_path: str | Path | None = None,
) -> Features:
    """Train the rgb or flow TSN, then write the checkpoint and every video's features."""
    labels = {
        "multi_hot": np.stack([multi_hot(str(text)) for text in index["multi_hot"]]),
        **{name: np.asarray(index[name].astype(str), dtype=str) for name in TEXT_FIELDS},
    }
    table = check_classes(labels["multi_hot"].shape[1], classes_path)
    config.num_classes = table.num_outputs
    return train_and_write(
        lambda: train_video(index, settings, config, device),
        lambda model: extract_tsn(model, index, device, workers=settings.workers),
        labels,
        table,
        run_description(config.modality, {"segments": config.segments, "length": config.length}, settings, device),
        checkpoint,
        features_path,
    )


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="cprcoach model backbone", description=__doc__)
    parser.add_argument("--modality", choices=MODALITIES, default="skeleton")
    source = parser.add_argument_group("input (a shard index; for the skeleton also a sample sheet with pose files)")
    source.add_argument("--index", type=Path, help="shard index (TSV) of `cprcoach shards index`")
    source.add_argument("--samples", type=Path, help="skeleton only: the sample sheet (TSV), with --poses")
    source.add_argument(
        "--poses", help="skeleton only: pose file pattern, e.g. 'results/pose/{participant}/{view}/{label}_{take}.npz'"
    )
    parser.add_argument("--classes", type=Path, help="class table YAML (default: the project's table)")
    parser.add_argument("--checkpoint", type=Path, required=True, help="backbone checkpoint to write (.pt)")
    parser.add_argument("--features", type=Path, required=True, help="features of every video to write (.npz)")
    skeleton, network = BackboneSettings(), STGCNConfig()
    training = parser.add_argument_group("training (defaults: skeleton / rgb and flow)")
    training.add_argument("--epochs", type=int, help=f"default {skeleton.epochs} / {TSNSettings().epochs}")
    training.add_argument("--batch-size", type=int, help=f"default {skeleton.batch_size} / {TSNSettings().batch_size}")
    training.add_argument("--lr", type=float, help="peak learning rate of the one-cycle schedule")
    training.add_argument("--channels", type=int, nargs="+", help="channels per block")
    training.add_argument("--seed", type=int, default=0)
    graph = parser.add_argument_group("skeleton (ST-GCN)")
    graph.add_argument("--frames", type=int, default=FRAMES, help="frames T every video is resampled to")
    graph.add_argument("--strides", type=int, nargs="+", default=network.strides, help="time stride per block")
    video = parser.add_argument_group("rgb and flow (TSN)")
    video.add_argument("--segments", type=int, default=TSNConfig.segments, help="snippets per video")
    video.add_argument("--length", type=int, help="frames (rgb) or flow pairs (flow) per snippet; default 1 / 5")
    video.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    parser.add_argument("--device", default="auto", help="auto (cuda if present), cpu, cuda, cuda:1 ...")
    parser.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


def given(args: argparse.Namespace, *names: str) -> dict[str, Any]:
    """The options of `names` that were given on the command line (the rest keep their defaults)."""
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def load_bundle(args: argparse.Namespace) -> SkeletonBundle:
    """The skeleton bundle from --index, or from --samples and --poses."""
    if args.index is not None:
        if args.samples is not None or args.poses is not None:
            raise CprCoachError("two inputs given", fix="pass --index INDEX, or --samples SHEET and --poses PATTERN")
        return bundle_from_index(args.index, args.frames)
    if args.samples is None or args.poses is None:
        raise CprCoachError("no input", fix="pass --index INDEX, or --samples SHEET and --poses PATTERN")
    return bundle_from_poses(read_sheet(args.samples), args.poses, args.frames)


@cli_errors
def run(args: argparse.Namespace) -> None:
    setup_logging(args.verbose)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    training = given(args, "epochs", "batch_size", "lr")
    if args.modality == "skeleton":
        config = STGCNConfig(strides=args.strides, **given(args, "channels"))
        if len(config.channels) != len(config.strides):
            raise CprCoachError(
                f"{len(config.channels)} block widths but {len(config.strides)} strides",
                fix="give model.skeleton.channels and model.skeleton.strides (--channels, --strides) one entry per block",
            )
        settings = BackboneSettings(seed=args.seed, **training)
        run_skeleton_backbone(load_bundle(args), args.checkpoint, args.features, settings, config, device, args.classes)
        return
    if args.index is None:
        raise CprCoachError(f"the {args.modality} backbone reads the shards", fix="pass --index INDEX")
    length = args.length or default_length(args.modality)
    config = TSNConfig(modality=args.modality, segments=args.segments, length=length, **given(args, "channels"))
    settings = TSNSettings(seed=args.seed, workers=args.workers, **training)
    run_video_backbone(read_index(args.index), args.checkpoint, args.features, settings, config, device, args.classes)
