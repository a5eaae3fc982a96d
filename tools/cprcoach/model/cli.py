"""The model stage: train the backbones, train and score ImagineNet heads, fuse modalities, sum up
seeds and runs, assess one recording."""

from __future__ import annotations

from collections.abc import Sequence

from cprcoach.dispatch import dispatch
from cprcoach.model.registry import METHODS

COMMANDS = {
    "backbone": ("cprcoach.model.backbone", "train a backbone on the single classes; write checkpoint + features"),
    "imagine": ("cprcoach.model.imagine", f"train a head ({'|'.join(METHODS)}), score it, write metrics"),
    "join": ("cprcoach.model.join", "several modalities' features -> one fusion's features file"),
    "late": ("cprcoach.model.late", "late fusion of several modalities' scores, weights learned on the training split"),
    "seeds": ("cprcoach.model.seeds", "one run's metrics over its seeds: mean, spread, AP plot with error bars"),
    "summary": ("cprcoach.model.summary", "one table of every method over the seeds, and imagination's gains"),
    "import-release": (
        "cprcoach.model.release",
        "the release's Single/Multi feature pickles -> our features file",
        "build_import_parser",
        "run_import",
    ),
    "export-release": (
        "cprcoach.model.release",
        "our features -> Single/Multi pickles the release's scripts read",
        "build_export_parser",
        "run_export",
    ),
    "assess": ("cprcoach.model.assess", "the errors and probabilities of one recording"),
}


def main(argv: Sequence[str] | None = None) -> None:
    dispatch("cprcoach model", __doc__, COMMANDS, argv)
