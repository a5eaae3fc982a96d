"""`cprcoach shards stats`: the CPR-Coach README's statistics table, regenerated from the processed data.

Every figure comes from the index (which carries the probe sidecars' source sizes, rates and
byte counts, copied into the shards at build time) and the shards' file sizes; no pixel is read.
Frames (RGB+Flow) counts each flow pair twice (an x and a y image), as the release does.
The `cpr_coach` column holds the published figure of each row for comparison.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

import pandas as pd

from cprcoach.atomic import atomic_path
from cprcoach.errors import CprCoachError, cli_errors
from cprcoach.logs import setup_logging
from cprcoach.shards.index import read_index

log = logging.getLogger(__name__)

PUBLISHED = {
    "Perspectives": "4",
    "FPS": "25",
    "Video Resolution": "4096x2160",
    "Number of Participants": "12",
    "Classes of Single-class Actions": "1+13=14",
    "Classes of Composite Error Actions": "59+10+5=74",
    "Frames (RGB)": "2,217,756",
    "Frames (RGB+Flow)": "6,644,596",
    "Videos": "4,544",
    "Avg. Len. of Videos": "19.52s",
    "Storage Size (raw videos)": "449GB",
    "Storage Size (shards)": "",
}


def human_bytes(size: float) -> str:
    """Decimal units with three significant digits, as the README writes them (449GB)."""
    units = ("B", "KB", "MB", "GB", "TB")
    power = 0
    while size >= 1000 and power < len(units) - 1:
        size /= 1000
        power += 1
    digits = 0 if size >= 100 or power == 0 else 1 if size >= 10 else 2
    return f"{size:.{digits}f}{units[power]}"


def _joined(values) -> str:
    return ", ".join(dict.fromkeys(values))


def dataset_stats(index: pd.DataFrame) -> pd.DataFrame:
    """The statistics table (item, value, cpr_coach) of the videos of an index."""
    shards = list(dict.fromkeys(index["shard"]))
    missing = [s for s in shards if not os.path.isfile(s)]
    if missing:
        raise CprCoachError(
            "shards of the index are missing: " + ", ".join(missing), fix="rebuild them, or rebuild the index"
        )
    singles = index[index["kind"] == "single"]
    composites = index[index["kind"] == "composite"]
    correct = int((singles["n_errors"] == 0).any())
    errors = singles.loc[singles["n_errors"] > 0, "label"].nunique()
    by_size = composites.groupby("n_errors")["label"].nunique()
    sizes = range(2, max([4, *by_size.index]) + 1)
    composite_text = "+".join(str(by_size.get(n, 0)) for n in sizes) + f"={by_size.sum()}"
    rgb = int(index["frames"].sum())
    flow = int(index["flow_frames"].sum())
    values = {
        "Perspectives": str(index["view"].nunique()),
        "FPS": _joined(f"{fps:g}" for fps in index["fps"]),
        "Video Resolution": _joined(
            f"{w}x{h}" for w, h in zip(index["source_width"], index["source_height"], strict=True)
        ),
        "Number of Participants": str(index["participant"].nunique()),
        "Classes of Single-class Actions": f"{correct}+{errors}={correct + errors}",
        "Classes of Composite Error Actions": composite_text,
        "Frames (RGB)": f"{rgb:,}",
        "Frames (RGB+Flow)": f"{rgb + 2 * flow:,}",
        "Videos": f"{len(index):,}",
        "Avg. Len. of Videos": f"{(index['frames'] / index['fps']).mean():.2f}s",
        "Storage Size (raw videos)": human_bytes(index.drop_duplicates("source_path")["source_size"].sum()),
        "Storage Size (shards)": human_bytes(sum(os.path.getsize(s) for s in shards)),
    }
    return pd.DataFrame({"item": list(values), "value": list(values.values()), "cpr_coach": list(PUBLISHED.values())})


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="cprcoach shards stats", description=__doc__)
    parser.add_argument("--index", type=Path, required=True, help="the index (TSV) of `cprcoach shards index`")
    parser.add_argument("--out", type=Path, required=True, help="table to write (TSV)")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


@cli_errors
def run(args: argparse.Namespace) -> None:
    setup_logging(args.verbose)
    table = dataset_stats(read_index(args.index))
    with atomic_path(args.out) as tmp:
        table.to_csv(tmp, sep="\t", index=False)
    log.info("statistics of %s -> %s\n%s", args.index, args.out, table.to_string(index=False))
