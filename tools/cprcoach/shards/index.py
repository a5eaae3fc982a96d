"""The index: one TSV row per video of every shard, rebuilt from the shards' attributes alone.

No pixel is read, so rebuilding it after a participant's shards are added takes a moment
and leaves the old shards untouched. Shard paths are stored relative to the index's folder
(the index and its shards move together); read_index makes them absolute again.
"""

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
from cprcoach.shards.store import INDEX_ATTRS, group_attrs, open_shard

log = logging.getLogger(__name__)

# The index's columns: video_id, shard and group, then the group attributes the layout names for it.
ATTR_COLUMNS = list(INDEX_ATTRS)
INDEX_COLUMNS = ["video_id", "shard", "group", *ATTR_COLUMNS]
TEXT_COLUMNS = ["video_id", "shard", "group", *(name for name, kind in INDEX_ATTRS.items() if kind is str)]


def shard_rows(path: str | Path) -> list[dict]:
    """The index rows of one shard, in its (sample-sheet) order."""
    rows = []
    with open_shard(path) as shard:
        for name in shard:
            attrs = group_attrs(shard[name])
            missing = [key for key in ATTR_COLUMNS if key not in attrs]
            if missing:
                raise CprCoachError(
                    f"video {name} lacks the attributes {', '.join(missing)}",
                    path=path,
                    fix="rebuild the shard with this version (`cprcoach shards build`)",
                )
            rows.append({"video_id": name, "shard": str(path), "group": name, **{k: attrs[k] for k in ATTR_COLUMNS}})
    return rows


def build_index(shards: Sequence[str | Path], samples: str | Path | None = None) -> pd.DataFrame:
    """Every video of `shards`. With the sample sheet, the split comes from it (a changed held-out
    list needs no rebuilt shard) and the rows follow its order; a video in one but not the other is an error."""
    table = pd.DataFrame([row for path in shards for row in shard_rows(path)], columns=INDEX_COLUMNS)
    duplicates = sorted(table.loc[table["video_id"].duplicated(), "video_id"])
    if duplicates:
        raise CprCoachError(
            "videos in more than one shard: " + ", ".join(duplicates), fix="index each shard once; remove stale shards"
        )
    if samples is None:
        return table
    sheet = read_sheet(samples)
    missing = sorted(set(sheet["video_id"]) - set(table["video_id"]))
    extra = sorted(set(table["video_id"]) - set(sheet["video_id"]))
    if missing or extra:
        listed = [f"not in any shard: {', '.join(missing[:10])}" if missing else ""]
        listed += [f"not in the sample sheet: {', '.join(extra[:10])}" if extra else ""]
        raise CprCoachError(
            "the shards and the sample sheet disagree (" + "; ".join(filter(None, listed)) + ")",
            path=samples,
            fix="build the shards of every participant and view of the sheet; remove shards of videos not in it",
        )
    table = table.set_index("video_id", drop=False).loc[sheet["video_id"]].reset_index(drop=True)
    table["split"] = sheet["split"].to_numpy()
    return table


def write_index(table: pd.DataFrame, path: str | Path) -> None:
    folder = Path(path).absolute().parent
    relative = table.assign(shard=[os.path.relpath(Path(s).absolute(), folder) for s in table["shard"]])
    with atomic_path(path) as tmp:
        relative[INDEX_COLUMNS].to_csv(tmp, sep="\t", index=False)


def read_index(path: str | Path) -> pd.DataFrame:
    """The index with text columns kept as text (takes and multi-hot keep leading zeros), shards absolute."""
    path = Path(path)
    try:
        table = pd.read_csv(path, sep="\t", dtype=dict.fromkeys(TEXT_COLUMNS, str))
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise CprCoachError(
            f"cannot read the index ({error})", path=path, fix="rerun `cprcoach shards index`"
        ) from None
    missing = [c for c in INDEX_COLUMNS if c not in table.columns]
    if missing:
        raise CprCoachError(
            f"not a shard index: no column {', '.join(missing)}", path=path, fix="rerun `cprcoach shards index`"
        )
    folder = path.absolute().parent
    table["shard"] = [os.path.normpath(folder / s) for s in table["shard"]]
    return table


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="cprcoach shards index", description=__doc__)
    parser.add_argument("shards", nargs="+", type=Path, help="shard files (.h5)")
    parser.add_argument("--out", type=Path, required=True, help="index to write (TSV)")
    parser.add_argument(
        "--samples", type=Path, help="sample sheet: take the split and the order from it, check coverage"
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


@cli_errors
def run(args: argparse.Namespace) -> None:
    setup_logging(args.verbose)
    table = build_index(args.shards, args.samples)
    write_index(table, args.out)
    counts = table.groupby("split").size().to_dict()
    log.info("%d videos of %d shards -> %s (%s)", len(table), len(args.shards), args.out, counts)
