"""`cprcoach model summary`: one table of every trained method over the seeds, and what imagination and
fusion gain, from the metrics of `cprcoach model seeds`.

The table has one row per (modality or fusion, how it was fused, head run, method). The head run's
own ImagineNet row sits beside its baselines' rows (--markdown writes it as one markdown table,
modality by method, for a README). Each figure is the mean over the seeds, with its
standard deviation beside it (`_std`):
- the composite mAP and mmit-mAP, per video and fused over views;
- the fused mAP and mmit-mAP of the composites with 2, 3 and 4 errors;
- the held-out single top-1;
- the seconds the method took to train (and score): its backbones and its head.

The gains table pairs the seeds. Its comparisons:
- imagination: every ImagineNet head against each baseline trained on the same features;
- fusion: every fused head (on features or late) against the same head on each of its modalities;
- best: the best fused row against the best single-modality row, by mean fused composite mAP. Both
  are picked on the test videos, so this one is read after the fact, not declared before it.
Each gain is the mean over the seeds of the difference in fused composite mAP, with the standard
deviation of that difference. `beyond_noise` says whether the mean exceeds twice the deviation:
the noise of training (seeds), not that of the test set's sampling (its recordings are the same in
every seed). The row of the head named in model.primary before the run is marked `primary`; for
it, `target_met` says whether it beats the baseline by at least PRIMARY_MARGIN and beyond the noise.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cprcoach.atomic import atomic_path, write_text_atomic
from cprcoach.errors import CprCoachError, cli_errors
from cprcoach.logs import setup_logging
from cprcoach.model.imagine import TITLES
from cprcoach.model.registry import BASELINES, FUSION_KINDS

log = logging.getLogger(__name__)

PRIMARY_MARGIN = 0.05  # the bar: ImagineNet beats both baselines by this much fused composite mAP
SCORE = "composite_mAP_fused"


def read_over_seeds(path: str | Path) -> dict[str, Any]:
    try:
        metrics = json.loads(Path(path).read_text())
        metrics["seeds"], metrics["summary"], metrics["fusion"]
    except (OSError, ValueError, KeyError) as error:
        raise CprCoachError(
            f"not a metrics file of `cprcoach model seeds` ({error!r})", path=path, fix="rerun that job"
        ) from None
    return metrics


def summary_table(runs: Sequence[dict[str, Any]]) -> pd.DataFrame:
    rows = []
    for run in runs:
        for method, figures in run["summary"].items():
            row = {
                "modality": run["modality"],
                "fusion": run["fusion"],
                "run": run["head"],
                "method": TITLES[method],
                "imagination": method == run["head"],
                "seeds": len(run["seeds"]),
            }
            for name, value in figures.items():
                row[name], row[f"{name}_std"] = value["mean"], value["std"]
            rows.append(row)
    return pd.DataFrame(rows)


def paired_gain(better: dict[str, Any], seeds: Sequence[int], other: dict[str, Any], other_seeds: Sequence[int]):
    """Mean and standard deviation (ddof 1) over the common seeds of the difference of two figures."""
    common = [s for s in seeds if s in other_seeds]
    if not common or None in better["values"] or None in other["values"]:
        return None, None, len(common)
    ours = dict(zip(seeds, better["values"], strict=True))
    theirs = dict(zip(other_seeds, other["values"], strict=True))
    differences = np.array([ours[s] - theirs[s] for s in common])
    std = float(differences.std(ddof=1)) if len(common) > 1 else None
    return float(differences.mean()), std, len(common)


def name_of(run: dict[str, Any], method: str) -> str:
    fusion = "" if run["fusion"] == "none" else f" ({run['fusion']})"
    return f"{run['modality']}{fusion} {TITLES[method]}" + ("" if method == run["head"] else f" [{run['head']} run]")


def gain_row(comparison, run, method, against_run, against_method, primary: tuple[str, str, str] | None):
    mean, std, n = paired_gain(
        run["summary"][method][SCORE], run["seeds"], against_run["summary"][against_method][SCORE], against_run["seeds"]
    )
    beyond = None if mean is None or std is None else bool(mean > 2 * std)
    is_primary = (
        primary is not None and (run["modality"], run["fusion"], run["head"]) == primary and method == run["head"]
    )
    return {
        "comparison": comparison,
        "model": name_of(run, method),
        "against": name_of(against_run, against_method),
        "gain": mean,
        "gain_std": std,
        "seeds": n,
        "beyond_noise": beyond,
        "primary": is_primary,
        "target_met": bool(mean >= PRIMARY_MARGIN and beyond) if is_primary and beyond is not None else None,
    }


def gains_table(runs: Sequence[dict[str, Any]], primary: tuple[str, str, str] | None = None) -> pd.DataFrame:
    rows = []
    by_name = {(run["modality"], run["fusion"], run["head"]): run for run in runs}
    for run in runs:
        head = run["head"]
        for baseline in BASELINES:
            if baseline in run["summary"]:
                rows.append(gain_row("imagination", run, head, run, baseline, primary))
        for member in run.get("members") or []:
            if (member, "none", head) in by_name:
                rows.append(gain_row("fusion", run, head, by_name[(member, "none", head)], head, None))
    candidates = [(run, m) for run in runs for m in run["summary"] if run["summary"][m][SCORE]["mean"] is not None]
    fused = [c for c in candidates if c[0]["fusion"] != "none"]
    single = [c for c in candidates if c[0]["fusion"] == "none"]
    if fused and single:

        def best(rows_: list) -> tuple:
            return max(rows_, key=lambda c: c[0]["summary"][c[1]][SCORE]["mean"])

        (run, method), (other, other_method) = best(fused), best(single)
        rows.append(gain_row("best", run, method, other, other_method, None))
    return pd.DataFrame(rows)


# The markdown table's columns: (title, figure).
MARKDOWN_COLUMNS = (
    ("composite mAP", "composite_mAP"),
    ("fused over views", SCORE),
    ("2 errors", "mAP_fused_2_errors"),
    ("3 errors", "mAP_fused_3_errors"),
    ("4 errors", "mAP_fused_4_errors"),
    ("held-out top-1", "single_top1_fused"),
    ("train s", "train_s"),
)


def mean_spread(row: pd.Series, figure: str) -> str:
    if figure not in row or pd.isna(row[figure]):
        return "n/a"
    digits = 0 if figure == "train_s" else 3
    std = row.get(f"{figure}_std")
    return f"{row[figure]:.{digits}f}" + ("" if pd.isna(std) else f" ± {std:.{digits}f}")


def markdown_table(table: pd.DataFrame) -> str:
    """The summary as one markdown table, modality (or fusion) by method, each figure mean ± std over
    the seeds. A baseline appears once per modality and fusion: every head run trains the same one."""
    rows = table.drop_duplicates(subset=["modality", "fusion", "method"], keep="first")
    header = ["modality", "fusion", "method", *(title for title, _ in MARKDOWN_COLUMNS)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, row in rows.iterrows():
        cells = [row["modality"], row["fusion"], row["method"], *(mean_spread(row, f) for _, f in MARKDOWN_COLUMNS)]
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    return "\n".join(lines) + "\n"


def write_tsv(table: pd.DataFrame, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        table.to_csv(tmp, sep="\t", index=False, float_format="%.4f")


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="cprcoach model summary", description=__doc__)
    parser.add_argument("metrics", type=Path, nargs="+", help="metrics.json files of `cprcoach model seeds`")
    parser.add_argument("--out", type=Path, required=True, help="the table of every method (TSV) to write")
    parser.add_argument("--gains", type=Path, help="the gains of imagination and of fusion (TSV) to write")
    parser.add_argument("--markdown", type=Path, help="the table as markdown, mean ± std per figure, to write (.md)")
    parser.add_argument(
        "--primary",
        nargs=3,
        metavar=("MODALITY", "FUSION", "HEAD"),
        help=f"the head named before the run (model.primary); FUSION one of {', '.join(FUSION_KINDS)}",
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


@cli_errors
def run(args: argparse.Namespace) -> None:
    setup_logging(args.verbose)
    runs = [read_over_seeds(path) for path in args.metrics]
    table = summary_table(runs)
    write_tsv(table, args.out)
    shown = ["modality", "fusion", "run", "method", "seeds", SCORE, f"{SCORE}_std", "train_s"]
    log.info("%d methods from %d runs -> %s\n%s", len(table), len(runs), args.out, table[shown].to_string(index=False))
    if args.markdown is not None:
        write_text_atomic(args.markdown, markdown_table(table))
    if args.gains is not None:
        primary = tuple(args.primary) if args.primary else None
        if primary is not None and primary[1] not in FUSION_KINDS:
            raise CprCoachError(
                f"--primary: fusion {primary[1]!r} is not one of {', '.join(FUSION_KINDS)}",
                fix="name the fusion as model.primary.fusion does",
            )
        if primary is not None and not any((r["modality"], r["fusion"], r["head"]) == primary for r in runs):
            raise CprCoachError(
                f"the primary head {'/'.join(primary)} is not among the runs",
                fix="name a trained modality or fusion and head in model.primary",
            )
        gains = gains_table(runs, primary)
        write_tsv(gains, args.gains)
        log.info("gains -> %s\n%s", args.gains, gains.to_string(index=False))
