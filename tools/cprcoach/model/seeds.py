"""`cprcoach model seeds`: one run's metrics over its seeds (model.seeds), the mean and the spread.

The per-seed metrics files (of `cprcoach model imagine` or `cprcoach model late`) of one modality
or fusion and one head become one file with, per method, every headline figure and every class's
fused composite AP as its mean, standard deviation (the sample's, ddof 1; null for one seed) and
per-seed values, and a per-class AP plot with the standard deviation as error bars. A gain smaller
than the spread reads off it as such.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cprcoach.atomic import write_json_atomic
from cprcoach.errors import CprCoachError, cli_errors
from cprcoach.logs import setup_logging
from cprcoach.model.imagine import TITLES
from cprcoach.model.plots import plot_class_ap

log = logging.getLogger(__name__)

IDENTITY = ("modality", "fusion", "head")


def spread(values: Sequence[float | None]) -> dict[str, Any]:
    """Mean, standard deviation (ddof 1; null for one value) and the values; null where one is undefined."""
    values = list(values)
    if any(v is None for v in values):
        return {"mean": None, "std": None, "values": values}
    array = np.asarray(values, dtype=np.float64)
    std = float(array.std(ddof=1)) if len(array) > 1 else None
    return {"mean": round(float(array.mean()), 6), "std": None if std is None else round(std, 6), "values": values}


def read_metrics(path: str | Path) -> dict[str, Any]:
    try:
        metrics = json.loads(Path(path).read_text())
        for key in (*IDENTITY, "seed", "summary"):
            metrics[key]
    except (OSError, ValueError, KeyError) as error:
        raise CprCoachError(
            f"not a metrics file of `cprcoach model imagine` or `late` ({error!r})", path=path, fix="rerun that job"
        ) from None
    return metrics


def method_report(metrics: dict[str, Any], method: str) -> dict[str, Any]:
    """One method's score report in a metrics file: the head's own at the top level, a baseline's under baselines."""
    return metrics if method == metrics["head"] else metrics["baselines"][method]


def over_seeds(paths: Sequence[str | Path]) -> dict[str, Any]:
    runs = [read_metrics(path) for path in paths]
    first = runs[0]
    for run, path in zip(runs[1:], paths[1:], strict=True):
        if tuple(run[k] for k in IDENTITY) != tuple(first[k] for k in IDENTITY):
            raise CprCoachError(
                f"it is {'/'.join(map(str, (run[k] for k in IDENTITY)))}, {paths[0]} "
                f"{'/'.join(map(str, (first[k] for k in IDENTITY)))}",
                path=path,
                fix="pass the seeds of one run",
            )
    seeds = [run["seed"] for run in runs]
    if len(set(seeds)) < len(seeds):
        raise CprCoachError(f"seeds repeat ({seeds})", path=paths[0], fix="pass each seed's metrics once")
    methods = [m for m in first["summary"] if all(m in run["summary"] for run in runs)]
    summary, per_class = {}, {}
    for method in methods:
        figures = [name for name in first["summary"][method] if all(name in r["summary"][method] for r in runs)]
        summary[method] = {name: spread([r["summary"][method][name] for r in runs]) for name in figures}
        aps = [method_report(r, method)["composite"]["fused"]["per_class_AP"] for r in runs]
        per_class[method] = {code: spread([ap[code] for ap in aps]) for code in aps[0]}
    return {
        **{key: first[key] for key in IDENTITY},
        "members": first.get("members"),
        "seeds": seeds,
        "per_seed": [str(path) for path in paths],
        "class_names": first.get("class_names", {}),
        "summary": summary,
        "per_class_AP_fused": per_class,
        # Late fusion: each seed's learned weights per method.
        **({"weights": [r["weights"] for r in runs]} if "weights" in first else {}),
    }


def run_seeds(paths: Sequence[str | Path], metrics_path: str | Path, plot_path: str | Path | None = None) -> dict:
    result = over_seeds(paths)
    write_json_atomic(metrics_path, result)
    if plot_path is not None:
        methods = list(result["summary"])
        per_class = result["per_class_AP_fused"]
        fusion = {"none": "", "features": ", fused on features", "late": ", fused late"}[result["fusion"]]
        plot_class_ap(
            {TITLES[m]: {c: v["mean"] for c, v in per_class[m].items()} for m in methods},
            {TITLES[m]: result["summary"][m]["composite_mAP_fused"]["mean"] for m in methods},
            plot_path,
            f"{result['modality']}{fusion}: per-class AP on composite videos (fused over views), "
            f"mean over {len(result['seeds'])} seed{'s' if len(result['seeds']) > 1 else ''}",
            result["class_names"],
            errors={TITLES[m]: {c: v["std"] for c, v in per_class[m].items()} for m in methods},
        )
    head = result["summary"][result["head"]]["composite_mAP_fused"]
    log.info(
        "%s/%s/%s over seeds %s: fused composite mAP %s +- %s -> %s",
        *(result[k] for k in IDENTITY),
        result["seeds"],
        head["mean"],
        head["std"],
        metrics_path,
    )
    return result


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="cprcoach model seeds", description=__doc__)
    parser.add_argument("metrics", type=Path, nargs="+", help="one run's metrics.json of every seed")
    parser.add_argument("--out", type=Path, required=True, help="metrics over the seeds to write (.json)")
    parser.add_argument("--plot", type=Path, help="per-class AP plot with error bars to write (.png)")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


@cli_errors
def run(args: argparse.Namespace) -> None:
    setup_logging(args.verbose)
    run_seeds(args.metrics, args.out, args.plot)
