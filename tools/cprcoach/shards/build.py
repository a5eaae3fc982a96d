"""`cprcoach shards build`: one shard from the sample sheet's rows of one participant and view.

The per-video files come as four lists in the sheet's order (what a Snakemake rule expands
from the sheet); each video's probe JSON ties its files to its recording, so files passed out
of order are an error, not a mislabelled shard.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from cprcoach.errors import CprCoachError, cli_errors
from cprcoach.logs import setup_logging
from cprcoach.samples import read_sheet
from cprcoach.settings import add_settings_argument
from cprcoach.shards.store import INPUT_FILES, ShardSettings, build_shard

log = logging.getLogger(__name__)


def shard_videos(
    sheet: pd.DataFrame, participant: str, view: str, files: dict[str, Sequence[str | Path]]
) -> list[dict[str, Any]]:
    """The videos of one shard: the sheet rows of (participant, view) with their files, in sheet order."""
    rows = sheet[(sheet["participant"] == participant) & (sheet["view"] == view)]
    if rows.empty:
        raise CprCoachError(
            f"the sample sheet has no videos of participant {participant} in view {view}",
            fix="check --participant and --view",
        )
    wrong = {kind: len(paths) for kind, paths in files.items() if len(paths) != len(rows)}
    if wrong:
        raise CprCoachError(
            f"{participant} {view} has {len(rows)} videos in the sheet, but got "
            + ", ".join(f"{n} --{kind}" for kind, n in wrong.items()),
            fix="pass one file per video of the sheet, in its order",
        )
    return [
        {**row, **{kind: Path(files[kind][i]) for kind in INPUT_FILES}} for i, row in enumerate(rows.to_dict("records"))
    ]


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="cprcoach shards build", description=__doc__)
    parser.add_argument("--samples", type=Path, required=True, help="the sample sheet (TSV)")
    parser.add_argument("--participant", required=True)
    parser.add_argument("--view", required=True)
    parser.add_argument("--rgb", nargs="+", required=True, help="rgb clips (.rgb.mp4), in sheet order")
    parser.add_argument("--flow", nargs="+", required=True, help="flow files (.npz), in sheet order")
    parser.add_argument("--pose", nargs="+", required=True, help="pose files (.npz), in sheet order")
    parser.add_argument("--probe", nargs="+", required=True, help="probe JSONs of the resize stage, in sheet order")
    parser.add_argument("--out", type=Path, required=True, help="shard to write ({participant}_{view}.h5)")
    add_settings_argument(parser, "shards")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


@cli_errors
def run(args: argparse.Namespace) -> None:
    setup_logging(args.verbose)
    files = {kind: getattr(args, kind) for kind in INPUT_FILES}
    videos = shard_videos(read_sheet(args.samples), args.participant, args.view, files)
    build_shard(videos, args.out, ShardSettings.from_config(args.settings))
