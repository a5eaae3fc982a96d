"""A contact sheet for the report: the middle frame of each view for a few recordings."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cprcoach.errors import VideoError, cli_errors
from cprcoach.figures import plt, save_png
from cprcoach.logs import setup_logging
from cprcoach.video.frames import REBUILD, check_clip, decode_frames

log = logging.getLogger(__name__)


def middle_frame(path: str | Path) -> np.ndarray:
    """Decode the middle frame of a clip as RGB (decoding stops there)."""
    middle = check_clip(path) // 2
    for index, frame in enumerate(decode_frames(path)):
        if index == middle:
            return frame
    raise VideoError("clip has fewer frames than its packets", path=path, fix=REBUILD)


def contact_sheet(rows: Sequence[tuple[str, Sequence[tuple[str, Path]]]], out: str | Path) -> None:
    """Draw a grid: one row per recording (title, [(view, clip path), ...]), one column per view."""
    columns = max(len(views) for _, views in rows)
    figure, axes = plt.subplots(len(rows), columns, figsize=(3.2 * columns, 2.0 * len(rows)), squeeze=False)
    for r, (title, views) in enumerate(rows):
        for c, (view, path) in enumerate(views):
            axes[r][c].imshow(middle_frame(path))
            axes[r][c].set_title(f"{title} · {view}", fontsize=8)
        for axis in axes[r]:
            axis.axis("off")
    save_png(figure, out)


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="cprcoach video sheet", description=__doc__)
    parser.add_argument(
        "clips", nargs="+", type=Path, help="clips named {participant}/{view}/{label}_{take}.{clip}.mp4"
    )
    parser.add_argument("--out", required=True, type=Path, help="PNG to write")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


@cli_errors
def run(args: argparse.Namespace) -> None:
    setup_logging(args.verbose)
    grouped: dict[str, list[tuple[str, Path]]] = {}
    for path in args.clips:
        recording = f"{path.parent.parent.name} {path.name.split('.')[0]}"
        grouped.setdefault(recording, []).append((path.parent.name, path))
    contact_sheet(list(grouped.items()), args.out)
    log.info("%d recordings x %d views -> %s", len(grouped), max(map(len, grouped.values())), args.out)
