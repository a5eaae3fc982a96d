"""The model stage's files: backbone and head checkpoints, and the features file.

Checkpoints (.pt) hold one dict, written atomically and read back with torch.load(weights_only=True),
which reads only tensors and plain containers, so a checkpoint from elsewhere cannot run code; the
"format" key tells a backbone from a head from anything else.
- Backbone: format, modality, architecture (cprcoach.model.registry), the network's config and
  weights, the class codes and names, the input settings (skeleton: frames T; rgb, flow: segments
  and snippet length), the training settings, history and timings.
- Head: format, kind, feature width, classes, test copies, the backbone it was trained on, weights.

Features file (.npz, one row per video in sample-sheet order):
  pooled     (N, d) float32        the token sequence's mean: what the fc and sigmoid heads read
  tokens     (N, T', d) float32    the last block's output pooled over joints: what sa and ca read
  logits     (N, 14) float32       the backbone's own class scores (the backbone baseline)
  multi_hot  (N, 14) uint8         labels
  video_id, participant, view, label, take, split   text, from the sample sheet
  meta       0-d str               JSON: modality, checkpoint, classes, input, seed, timings
A fusion's joined features (cprcoach.model.join) are a features file too, its meta naming the members.

Scores file (.npz, one head run's probabilities of every video, what late fusion combines):
  scores     (M, N, 14) float32    every method's probabilities, in the order of `methods`
  methods    (M,) str              the methods (the head and its baselines)
  multi_hot, video_id, participant, view, label, take, split   as in the features file
  meta       0-d str               JSON: modality, head, seed, classes, seconds per method (train_s)
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cprcoach.atomic import atomic_path
from cprcoach.errors import CprCoachError
from cprcoach.model.heads import make_head
from cprcoach.model.registry import ARCHITECTURES, HEADS

# /2: the labels are the official classes (E01-E13 named other errors in /1); heads: the release's fc keys.
CHECKPOINT_FORMAT = "cprcoach-backbone/2"
HEAD_FORMAT = "cprcoach-head/2"
FEATURES_FORMAT = "cprcoach-features/2"
SCORES_FORMAT = "cprcoach-scores/1"


# --- any checkpoint -----------------------------------------------------------------------------------


def save_payload(path: str | Path, payload: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_payload(path: str | Path, expected: str, fix: str, device: torch.device | str = "cpu") -> dict[str, Any]:
    """The dict saved at `path`, which must be of format `expected`; tensors mapped to `device`."""
    path = Path(path)
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except (OSError, RuntimeError, EOFError) as error:
        raise CprCoachError(f"cannot read the file ({error})", path=path, fix=fix) from None
    if not isinstance(payload, dict) or payload.get("format") != expected:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise CprCoachError(f"not a {expected} file ({found!r})", path=path, fix=fix)
    return payload


def load_weights(module: torch.nn.Module, state: dict[str, torch.Tensor], path: str | Path, fix: str) -> None:
    """Load a state dict into the network the file describes; a mismatch names the file, not a traceback."""
    try:
        module.load_state_dict(state)
    except RuntimeError as error:
        raise CprCoachError(f"its weights do not fit the network it describes ({error})", path=path, fix=fix) from None


def cpu_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {key: value.cpu() for key, value in module.state_dict().items()}


# --- backbones -----------------------------------------------------------------------------------------


def architecture_of(model: torch.nn.Module) -> str:
    return next(name for name, architecture in ARCHITECTURES.items() if isinstance(model, architecture.network))


def save_checkpoint(path: str | Path, model: torch.nn.Module, extra: dict[str, Any]) -> None:
    payload = {
        "format": CHECKPOINT_FORMAT,
        "architecture": architecture_of(model),
        "config": asdict(model.config),
        "state_dict": cpu_state(model),
        **extra,
    }
    save_payload(path, payload)


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> tuple[torch.nn.Module, dict[str, Any]]:
    """The trained backbone (eval mode, on `device`) and the rest of its checkpoint."""
    fix = "pass a checkpoint written by `cprcoach model backbone`"
    checkpoint = load_payload(path, CHECKPOINT_FORMAT, fix, device)
    architecture = ARCHITECTURES[checkpoint["architecture"]]
    model = architecture.network(architecture.config(**checkpoint["config"]))
    load_weights(model, checkpoint["state_dict"], path, fix)
    return model.to(device).eval(), checkpoint


# --- the features file ----------------------------------------------------------------------------------


@dataclass
class VideoLabels:
    """Every video's labels and sample-sheet fields, in sample-sheet order: what features and scores share."""

    multi_hot: np.ndarray
    video_id: np.ndarray
    participant: np.ndarray
    view: np.ndarray
    label: np.ndarray
    take: np.ndarray
    split: np.ndarray

    def __len__(self) -> int:
        return len(self.multi_hot)

    @property
    def is_single(self) -> np.ndarray:
        return self.multi_hot.sum(axis=1) == 1

    @property
    def recording(self) -> np.ndarray:
        """One key per recording: the views of a participant's take of a class share it."""
        return np.char.add(np.char.add(np.char.add(self.participant, "/"), np.char.add(self.label, "/")), self.take)

    def labels(self) -> dict[str, np.ndarray]:
        """The label fields by name, to build another file's dataclass on the same videos."""
        return {f.name: getattr(self, f.name) for f in fields(VideoLabels)}


@dataclass
class Features(VideoLabels):
    """The backbone's view of every video (see the module docstring)."""

    pooled: np.ndarray
    tokens: np.ndarray
    logits: np.ndarray
    meta: dict[str, Any]


@dataclass
class Scores(VideoLabels):
    """One head run's probabilities of every video, per method (see the module docstring)."""

    scores: dict[str, np.ndarray]
    meta: dict[str, Any]


def save_arrays(path: str | Path, arrays: dict[str, np.ndarray], meta: dict[str, Any], file_format: str) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **arrays, meta=np.array(json.dumps({"format": file_format, **meta})))


def load_arrays(path: str | Path, names: list[str], file_format: str, fix: str) -> tuple[dict[str, np.ndarray], dict]:
    """The named arrays of an .npz written by save_arrays, and its meta; the format is checked."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in [*names, "meta"]}
    except (OSError, KeyError, ValueError) as error:
        raise CprCoachError(f"not a readable {file_format} file ({error})", path=path, fix=fix) from None
    meta = json.loads(str(arrays.pop("meta")))
    if meta.get("format") != file_format:
        raise CprCoachError(f"not a {file_format} file ({meta.get('format')!r})", path=path, fix=fix)
    return arrays, meta


def save_features(path: str | Path, features: Features) -> None:
    arrays = {f.name: getattr(features, f.name) for f in fields(features) if f.name != "meta"}
    save_arrays(path, arrays, features.meta, FEATURES_FORMAT)


def load_features(path: str | Path) -> Features:
    names = [f.name for f in fields(Features) if f.name != "meta"]
    arrays, meta = load_arrays(path, names, FEATURES_FORMAT, "rerun `cprcoach model backbone`")
    return Features(meta=meta, **arrays)


def save_scores(path: str | Path, scores: Scores) -> None:
    methods = list(scores.scores)
    arrays = {
        **scores.labels(),
        "methods": np.array(methods, dtype=str),
        "scores": np.stack([scores.scores[m] for m in methods]).astype(np.float32),
    }
    save_arrays(path, arrays, scores.meta, SCORES_FORMAT)


def load_scores(path: str | Path) -> Scores:
    names = [*(f.name for f in fields(VideoLabels)), "methods", "scores"]
    arrays, meta = load_arrays(path, names, SCORES_FORMAT, "rerun `cprcoach model imagine` with --scores")
    methods, scores = arrays.pop("methods"), arrays.pop("scores")
    return Scores(scores={str(m): s for m, s in zip(methods, scores, strict=True)}, meta=meta, **arrays)


# --- heads ----------------------------------------------------------------------------------------------


def save_head(path: str | Path, kind: str, head: torch.nn.Module, features: Features, dim: int) -> None:
    payload = {
        "format": HEAD_FORMAT,
        "kind": kind,
        "dim": dim,
        "num_classes": features.multi_hot.shape[1],
        "copies": HEADS[kind].copies,
        "classes": list(features.meta["classes"]),
        "backbone_checkpoint": features.meta.get("checkpoint"),
        "state_dict": cpu_state(head),
    }
    save_payload(path, payload)


def load_head(path: str | Path, device: torch.device | str = "cpu") -> tuple[torch.nn.Module, dict[str, Any]]:
    """A trained head (eval mode) and its checkpoint's fields."""
    fix = "pass a head written by `cprcoach model imagine --checkpoint`"
    payload = load_payload(path, HEAD_FORMAT, fix, device)
    head = make_head(payload["kind"], payload["dim"], payload["num_classes"])
    load_weights(head, payload["state_dict"], path, fix)
    return head.to(device).eval(), payload
