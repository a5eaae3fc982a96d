"""The official release's ImagineNet files (github Shunli-Wang/CPR-Coach), both ways.

The release's features are Python pickles, one list item per video:
- Single_*.pkl, the single-class training videos: item[0][0] is the class index 0-13 (the label
  order of classes.yaml), item[1] the feature;
- Multi_*.pkl (Double_*.pkl in its README), the double-error test videos: item[0] is the 14-entry
  multi-hot label (any shape that reshapes to 14), item[1] the feature.
A feature is one pooled vector (d,) (ST-GCN: 1024 floats), or a token sequence (T, d) for the
attention variants.

`cprcoach model import-release` turns them into our features file (cprcoach.model.checkpoints), so
`cprcoach model imagine` trains and scores every head and both baselines on the release's own
features: the pooled feature is the vector, or the sequence's mean; the tokens are the sequence, or
the vector as a sequence of one. The release ships no backbone scores, so the backbone baseline's
logits come from a linear softmax layer (the backbone's own classifier: Linear(d, 14), cross-entropy)
refit on the training features. Single-class videos are the train split, the multi-label ones the
test split; neither has views, so every video is its own recording.

`cprcoach model export-release` writes our features in the release's layout, so its own scripts
(train_ImagineNet_FC.py, eval_ImagineNet_FC.py) read them unchanged: Single_NAME.pkl holds the
training split's single-class videos, Multi_NAME.pkl the composites of the chosen orders (the
release tests on two-error ones). Its scripts build the head for 1024 channels; --pad-to 1024
appends zeros to narrower features, which leaves the function a linear first layer can compute the
same (the zero inputs meet weights that never change the output).

Pickles can hold code: reading one runs only numpy's array reconstruction and plain containers
here, and anything else is refused.
"""

from __future__ import annotations

import argparse
import logging
import pickle
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from cprcoach.atomic import atomic_path
from cprcoach.classes import load_classes
from cprcoach.errors import CprCoachError, cli_errors
from cprcoach.logs import setup_logging
from cprcoach.model.checkpoints import Features, load_features, save_features
from cprcoach.model.metrics import error_counts

log = logging.getLogger(__name__)

RELEASE = "github Shunli-Wang/CPR-Coach"
# What a release pickle may be made of: numpy arrays, scalars and dtypes, in lists and tuples.
_ALLOWED = {
    ("numpy", "array"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
}
SOFTMAX_STEPS = 300


class _ArraysOnly(pickle.Unpickler):
    """An unpickler that rebuilds numpy arrays and nothing else."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not a numpy array")


def read_release_pickle(path: str | Path) -> list:
    """The list of items of a release pickle (numpy arrays in lists and tuples only)."""
    path = Path(path)
    fix = "pass the release's Single_*.pkl or Multi_*.pkl feature file"
    try:
        with open(path, "rb") as handle:
            items = _ArraysOnly(handle).load()
    except FileNotFoundError:
        raise CprCoachError("no such file", path=path, fix=fix) from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError) as error:
        raise CprCoachError(f"not a release feature pickle ({error})", path=path, fix=fix) from None
    if not isinstance(items, (list, tuple)) or not items:
        raise CprCoachError("the pickle holds no list of videos", path=path, fix=fix)
    return list(items)


def _item(item: Any, index: int, path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        label, feature = item[0], item[1]
        return np.asarray(label, dtype=np.float64).reshape(-1), np.asarray(feature, dtype=np.float32)
    except (TypeError, IndexError, ValueError) as error:
        raise CprCoachError(
            f"item {index} is not (label, feature) ({error})", path=path, fix="pass a release feature pickle"
        ) from None


def _stacked(features: list[np.ndarray], path: Path) -> np.ndarray:
    """The features of one file, (N, d) or (N, T, d): one shape for every video."""
    shapes = {f.shape for f in features}
    if len(shapes) != 1 or len(next(iter(shapes))) not in (1, 2):
        raise CprCoachError(
            f"the features have shapes {sorted(shapes)[:4]}: expected one (d,) or (T, d) for every video",
            path=path,
            fix="pass the pooled (FC) or the token (SA, CA) feature pickle of one backbone",
        )
    return np.stack(features)


def _pooled_and_tokens(single: np.ndarray, multi: np.ndarray, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Pooled (N, d) and token (N, T, d) features of both files, which must be of one backbone."""
    if single.shape[1:] != multi.shape[1:]:
        raise CprCoachError(
            f"its features are {multi.shape[1:]}, the Single file's {single.shape[1:]}",
            path=path,
            fix="pass the Single and Multi files of one backbone",
        )
    stacked = np.concatenate([single, multi])
    if stacked.ndim == 2:
        return stacked, stacked[:, None, :]
    return stacked.mean(axis=1), stacked


def _class_indices(labels: list[np.ndarray], width: int, path: Path) -> np.ndarray:
    """The Single file's class index of every video: item[0][0], an integer 0 to width - 1."""
    fix = "pass the Single pickle as --single (item[0][0] is the class index 0-13) and the Multi one as --multi"
    for i, label in enumerate(labels):
        if label.size == width and label.size > 1:
            raise CprCoachError(f"item {i}'s label is a {width}-entry vector: this is a Multi file", path=path, fix=fix)
        if label.size == 0 or not np.isfinite(label[0]) or label[0] != int(label[0]) or not 0 <= label[0] < width:
            raise CprCoachError(
                f"item {i}'s label {label.tolist()} is not a class index 0-{width - 1}", path=path, fix=fix
            )
    return np.array([int(label[0]) for label in labels])


def _multi_hot(labels: list[np.ndarray], width: int, path: Path) -> np.ndarray:
    """The Multi file's labels as (N, width) 0/1: composites, so no correct class and two errors or more."""
    fix = "pass the Multi (double-error) pickle as --multi"
    for i, label in enumerate(labels):
        if label.size != width:
            raise CprCoachError(f"item {i}'s label is not a {width}-entry multi-hot vector", path=path, fix=fix)
        hot = label > 0.5
        if hot[0] or hot.sum() < 2:
            raise CprCoachError(
                f"item {i}'s label {label.astype(int).tolist()} is not a composite (no correct class, two errors or more)",
                path=path,
                fix=fix,
            )
    return (np.stack(labels) > 0.5).astype(np.uint8)


def refit_softmax(pooled: np.ndarray, classes: np.ndarray, num_classes: int, seed: int = 0) -> np.ndarray:
    """Logits of every video from a linear softmax layer (Linear(d, C), cross-entropy) fit on the rows
    with a class (classes >= 0): the backbone's own classifier, where the release ships no scores."""
    torch.manual_seed(seed)
    x = torch.from_numpy(pooled)
    train = torch.from_numpy(classes >= 0)
    targets = torch.from_numpy(classes[classes >= 0].astype(np.int64))
    mean, std = x[train].mean(dim=0), x[train].std(dim=0).clamp_min(1e-6)
    layer = torch.nn.Linear(x.shape[1], num_classes)
    optimiser = torch.optim.LBFGS(layer.parameters(), max_iter=SOFTMAX_STEPS, line_search_fn="strong_wolfe")
    normalised = (x - mean) / std

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        loss = F.cross_entropy(layer(normalised[train]), targets) + 1e-3 * layer.weight.square().sum()
        loss.backward()
        return loss

    optimiser.step(closure)
    with torch.no_grad():
        return layer(normalised).numpy()


def import_release(
    single: str | Path, multi: str | Path, out: str | Path, classes: str | Path | None = None, seed: int = 0
) -> Features:
    """Our features file from the release's Single and Multi pickles (see the module docstring)."""
    started = time.perf_counter()
    table = load_classes(classes)
    single, multi = Path(single), Path(multi)
    singles = [_item(item, i, single) for i, item in enumerate(read_release_pickle(single))]
    multis = [_item(item, i, multi) for i, item in enumerate(read_release_pickle(multi))]
    width = table.num_outputs
    class_index = _class_indices([label for label, _ in singles], width, single)
    test_hot = _multi_hot([label for label, _ in multis], width, multi)
    multi_hot = np.concatenate([np.eye(width, dtype=np.uint8)[class_index], test_hot])
    pooled, tokens = _pooled_and_tokens(
        _stacked([f for _, f in singles], single), _stacked([f for _, f in multis], multi), multi
    )
    codes = [table.code_of_vector(vector) for vector in multi_hot]
    n_single, n_multi = len(singles), len(multis)
    logits = refit_softmax(pooled, np.concatenate([class_index, np.full(n_multi, -1)]), width, seed)
    meta = {
        "modality": "release",
        "source": {"release": RELEASE, "single": str(single), "multi": str(multi)},
        "checkpoint": None,
        "classes": table.single_codes,
        "class_names": [table.name(code) for code in table.single_codes],
        "logits": "a linear softmax layer refit on the training features (the release ships no backbone scores)",
        "input": {"dim": int(pooled.shape[1]), "tokens": int(tokens.shape[1])},
        "seed": seed,
        "epochs": None,
        "heldout_single_top1": None,
        "timings": {"import_s": round(time.perf_counter() - started, 2)},
    }
    features = Features(
        pooled=pooled.astype(np.float32),
        tokens=tokens.astype(np.float32),
        logits=logits.astype(np.float32),
        multi_hot=multi_hot,
        video_id=np.array([f"single_{i:05d}" for i in range(n_single)] + [f"multi_{i:05d}" for i in range(n_multi)]),
        participant=np.full(n_single + n_multi, "release"),
        view=np.full(n_single + n_multi, "all"),
        label=np.array(codes),
        take=np.array([f"{i:05d}" for i in range(n_single + n_multi)]),
        split=np.array(["train"] * n_single + ["test"] * n_multi),
        meta=meta,
    )
    save_features(Path(out) / "features.npz", features)
    log.info(
        "%d single-class and %d multi-label videos, %d-d features (%d tokens) -> %s",
        n_single,
        n_multi,
        pooled.shape[1],
        tokens.shape[1],
        Path(out) / "features.npz",
    )
    return features


class _PortablePickler(pickle.Pickler):
    """Pickles numpy arrays as numpy.array(nested lists, dtype): no reference to numpy's private
    modules (numpy 2 names numpy._core, which the release's older numpy cannot import)."""

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, np.ndarray):
            return np.array, (obj.tolist(), obj.dtype.str)
        return NotImplemented


def _write_pickle(path: Path, items: list) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        _PortablePickler(handle, protocol=2).dump(items)


def _padded(x: np.ndarray, pad_to: int | None, path: Path) -> np.ndarray:
    if pad_to is None or x.shape[-1] == pad_to:
        return x
    if x.shape[-1] > pad_to:
        raise CprCoachError(
            f"the features have {x.shape[-1]} channels, more than --pad-to {pad_to}",
            path=path,
            fix="leave out --pad-to, or give a width at least the features'",
        )
    return np.concatenate([x, np.zeros((*x.shape[:-1], pad_to - x.shape[-1]), dtype=x.dtype)], axis=-1)


def export_release(
    features_path: str | Path,
    out: str | Path,
    name: str = "STGCN",
    *,
    orders: tuple[int, ...] = (2,),
    tokens: bool = False,
    pad_to: int | None = None,
) -> tuple[Path, Path]:
    """Single_NAME.pkl and Multi_NAME.pkl of a features file, in the release's layout."""
    features_path = Path(features_path)
    features = load_features(features_path)
    values = _padded(features.tokens if tokens else features.pooled, pad_to, features_path).astype(np.float32)
    train = np.flatnonzero((features.split == "train") & features.is_single)
    test = np.flatnonzero((features.multi_hot.sum(axis=1) >= 2) & np.isin(error_counts(features.multi_hot), orders))
    if not len(train) or not len(test):
        raise CprCoachError(
            f"{len(train)} training single-class videos and {len(test)} composites of {list(orders)} errors",
            path=features_path,
            fix="export features of a run with both (see --orders)",
        )
    counts = np.bincount(features.multi_hot[train].argmax(axis=1), minlength=features.multi_hot.shape[1])
    short = [features.meta["classes"][c] for c in range(1, len(counts)) if counts[c] < counts[0]]
    if short:
        raise CprCoachError(
            f"{', '.join(short)} have fewer training videos than the correct class ({counts[0]}), and the release's "
            "FC_ComposeDataset draws as many of every error class as the correct class has",
            path=features_path,
            fix="export features of a run with as many training videos of every class",
        )
    single_items = [(np.array([int(features.multi_hot[i].argmax())]), values[i]) for i in train]
    multi_items = [(features.multi_hot[i].astype(np.float32), values[i]) for i in test]
    out = Path(out)
    paths = (out / f"Single_{name}.pkl", out / f"Multi_{name}.pkl")
    _write_pickle(paths[0], single_items)
    _write_pickle(paths[1], multi_items)
    log.info(
        "%d single-class and %d composite videos (%s errors), %s -> %s, %s",
        len(single_items),
        len(multi_items),
        "+".join(map(str, orders)),
        f"{values.shape[1:]} features",
        *paths,
    )
    return paths


def build_import_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--single", type=Path, required=True, help="the release's Single_*.pkl (training videos)")
    parser.add_argument("--multi", type=Path, required=True, help="the release's Multi_*.pkl (double-error test)")
    parser.add_argument("--out", type=Path, required=True, help="folder to write features.npz into")
    parser.add_argument("--classes", type=Path, help="class table YAML (default: the project's, the release's order)")
    parser.add_argument("--seed", type=int, default=0, help="of the refit softmax layer")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


def build_export_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--features", type=Path, required=True, help="features of `cprcoach model backbone`")
    parser.add_argument("--out", type=Path, required=True, help="folder to write Single_NAME.pkl and Multi_NAME.pkl")
    parser.add_argument("--name", default="STGCN", help="NAME of the files (the release's scripts read STGCN)")
    parser.add_argument(
        "--orders", type=int, nargs="+", default=[2], help="composite orders of the Multi file (the release: 2)"
    )
    parser.add_argument("--tokens", action="store_true", help="write token sequences (T, d), for the SA and CA scripts")
    parser.add_argument("--pad-to", type=int, help="zero-pad the features to this width (the release's scripts: 1024)")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


@cli_errors
def run_import(args: argparse.Namespace) -> None:
    setup_logging(args.verbose)
    import_release(args.single, args.multi, args.out, args.classes, args.seed)


@cli_errors
def run_export(args: argparse.Namespace) -> None:
    setup_logging(args.verbose)
    export_release(
        args.features, args.out, args.name, orders=tuple(args.orders), tokens=args.tokens, pad_to=args.pad_to
    )
