"""`cprcoach model summary`: one table of every trained method, from the metrics files of a run.

One row per (modality, head run, method): ImagineNet's own row and its baselines' rows, each
with the composite mAP and mmit-mAP (per video and fused over views), the fused mAP and mmit-mAP
of the composites of each order (2, 3 and 4 errors) and the held-out single top-1, so what
imagination adds reads off one table.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from cprcoach.atomic import atomic_path
from cprcoach.errors import CprCoachError, cli_errors
from cprcoach.logs import setup_logging
from cprcoach.model.imagine import TITLES

log = logging.getLogger(__name__)


def summary_table(paths: Sequence[str | Path]) -> pd.DataFrame:
    rows = []
    for path in paths:
        try:
            metrics = json.loads(Path(path).read_text())
            summary = metrics["summary"]
        except (OSError, ValueError, KeyError) as error:
            raise CprCoachError(
                f"not a metrics file of `cprcoach model imagine` ({error!r})", path=path, fix="rerun the head"
            ) from None
        for method, figures in summary.items():
            rows.append(
                {
                    "modality": metrics["modality"],
                    "run": metrics["head"],
                    "method": TITLES[method],
                    "imagination": method == metrics["head"],
                    **figures,
                }
            )
    return pd.DataFrame(rows)


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="cprcoach model summary", description=__doc__)
    parser.add_argument("metrics", type=Path, nargs="+", help="metrics.json files of `cprcoach model imagine`")
    parser.add_argument("--out", type=Path, required=True, help="TSV to write")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


@cli_errors
def run(args: argparse.Namespace) -> None:
    setup_logging(args.verbose)
    table = summary_table(args.metrics)
    with atomic_path(args.out) as tmp:
        table.to_csv(tmp, sep="\t", index=False, float_format="%.4f")
    log.info("%d methods from %d runs -> %s\n%s", len(table), len(args.metrics), args.out, table.to_string(index=False))
