"""Aggregate the per-video probe sidecars into one table of the processed dataset."""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from cprcoach.atomic import atomic_path
from cprcoach.errors import CprCoachError, cli_errors
from cprcoach.logs import setup_logging
from cprcoach.samples import read_sheet
from cprcoach.video.probe import read_probe

log = logging.getLogger(__name__)


def summarise(sheet: pd.DataFrame, probes: Sequence[str | Path]) -> pd.DataFrame:
    """One row per video: the sample sheet's fields, what the source was, what each clip got."""
    by_source = {}
    for path in probes:
        probe = read_probe(path)
        by_source[os.path.normpath(probe["source"]["path"])] = probe
    missing = [p for p in sheet["path"] if os.path.normpath(p) not in by_source]
    if missing:
        raise CprCoachError(
            f"{len(missing)} videos have no probe sidecar, e.g. {missing[:3]}", fix="rerun the workflow to resize them"
        )
    rows = []
    for sample in sheet.itertuples(index=False):
        probe = by_source[os.path.normpath(sample.path)]
        source = probe["source"]
        row = {
            "video_id": sample.video_id,
            "participant": sample.participant,
            "view": sample.view,
            "label": sample.label,
            "split": sample.split,
            "codec": source["codec"],
            "width": source["width"],
            "height": source["height"],
            "fps": round(source["fps"], 3),
            "frames": source["frames"],
            "seconds": round(source["duration"], 3),
            "megabytes": round(source["size_bytes"] / 1e6, 3),
            "resampled": probe["resampled"],
        }
        row.update({f"{name}_frames": clip["frames"] for name, clip in probe["clips"].items()})
        rows.append(row)
    return pd.DataFrame(rows)


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="cprcoach video summary", description=__doc__)
    parser.add_argument("--samples", required=True, type=Path, help="sample sheet (TSV)")
    parser.add_argument("--probes", required=True, nargs="+", help="probe sidecars (*.probe.json)")
    parser.add_argument("--out", required=True, type=Path, help="table to write (TSV)")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


@cli_errors
def run(args: argparse.Namespace) -> None:
    setup_logging(args.verbose)
    table = summarise(read_sheet(args.samples), args.probes)
    with atomic_path(args.out) as tmp:
        table.to_csv(tmp, sep="\t", index=False)
    log.info(
        "%d videos, %d frames (%.1f h), %d resampled -> %s",
        len(table),
        table["frames"].sum(),
        table["seconds"].sum() / 3600,
        table["resampled"].sum(),
        args.out,
    )
