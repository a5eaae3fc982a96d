"""Sample discovery: raw recordings + file-name pattern -> the sample sheet every stage reads.

Run as `python -m cprcoach.samples` (or `cprcoach samples`) to write the sheet as TSV.
"""

from __future__ import annotations

import argparse
import logging
import re
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from cprcoach.atomic import atomic_path
from cprcoach.classes import ClassTable, LabelError, load_classes
from cprcoach.errors import SampleSheetError, cli_errors
from cprcoach.logs import setup_logging

log = logging.getLogger(__name__)

FIELDS = ("participant", "view", "label", "take")
# What each field may contain in a raw file name; the Snakefile constrains its wildcards with the
# same expressions (the label with the class table's canonical codes, which the paths it makes
# use), so a path never matches ambiguously. A label may be written with any of its aliases
# (cprcoach.classes): code, index, official or short name, errors of a composite joined by '+'.
FIELD_REGEX = {
    "participant": r"[A-Za-z0-9]+",
    "view": r"[A-Za-z0-9]+",
    "label": r"[A-Za-z0-9][A-Za-z0-9 _-]*(?:\+[A-Za-z0-9 _-]+)*",
    "take": r"[0-9]+",
}
# What each field may hold, as the error for a name that does not parse says it.
FIELD_RULES = (
    "participant and view: ASCII letters and digits only, no spaces; take: digits; label: a class"
    " (code, index or name, errors joined by '+')"
)
VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".avi", ".m4v", ".webm"}
# label is the canonical code (E04+E07) that every path and table uses; file_label what the file name said.
COLUMNS = [
    "video_id",
    "participant",
    "view",
    "label",
    "take",
    "kind",
    "n_errors",
    "multi_hot",
    "split",
    "path",
    "file_label",
]
MAX_LISTED = 20


def pattern_regex(pattern: str) -> re.Pattern[str]:
    """Compile a raw-file pattern such as `{participant}/{view}/{label}_{take}.mp4`."""
    parts = re.split(r"\{(\w+)\}", pattern)
    regex = ""
    for i, part in enumerate(parts):
        if i % 2 == 0:
            regex += re.escape(part)
        elif part in FIELD_REGEX:
            regex += f"(?P<{part}>{FIELD_REGEX[part]})"
        else:
            raise SampleSheetError(
                f"raw_pattern names an unknown field {{{part}}}",
                fix="use only " + ", ".join(f"{{{f}}}" for f in FIELDS),
            )
    return re.compile(regex + r"\Z")


def video_id(participant: str, view: str, label: str, take: str) -> str:
    return f"{participant}_{view}_{label}_{take}"


def _listing(title: str, items: Sequence[str]) -> str:
    shown = [f"      {item}" for item in items[:MAX_LISTED]]
    if len(items) > MAX_LISTED:
        shown.append(f"      ... and {len(items) - MAX_LISTED} more")
    return f"  {title} ({len(items)}):\n" + "\n".join(shown)


def discover_samples(
    raw_dir: str | Path,
    pattern: str,
    views: Sequence[str],
    classes: ClassTable,
    heldout_participants: Sequence[str] = (),
) -> pd.DataFrame:
    """Build the sample sheet from the videos under `raw_dir`.

    Every problem (names that do not parse, labels that are no class, unknown views, duplicates,
    recordings missing a view) is collected and raised as one SampleSheetError.
    """
    raw_dir = Path(raw_dir)
    if not raw_dir.is_dir():
        raise SampleSheetError(
            "raw video folder not found",
            path=raw_dir,
            fix="set raw_dir in config.yaml, or run `make demo` to render the synthetic dataset",
        )
    regex = pattern_regex(pattern)
    rows, unparsed, unknown_labels, unknown_views = [], [], [], []
    by_key: dict[tuple[str, str, str, int], list[str]] = {}
    for path in sorted(p for p in raw_dir.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES):
        relative = path.relative_to(raw_dir).as_posix()
        match = regex.match(relative)
        if match is None:
            unparsed.append(relative)
            continue
        fields = match.groupdict()
        try:
            label = classes.resolve(fields["label"])
        except LabelError as error:
            unknown_labels.append(f"{relative}: {error}")
            continue
        if fields["view"] not in views:
            unknown_views.append(f"{relative} (view {fields['view']})")
            continue
        by_key.setdefault((fields["participant"], fields["view"], label, int(fields["take"])), []).append(relative)
        rows.append({**fields, "label": label, "file_label": fields["label"], "path": str(path)})

    duplicates = [" and ".join(paths) for paths in by_key.values() if len(paths) > 1]
    present: dict[tuple[str, str, int], set[str]] = {}
    for participant, view, label, take in by_key:
        present.setdefault((participant, label, take), set()).add(view)
    missing_views = [
        f"{participant} {label} take {take}: missing {', '.join(v for v in views if v not in got)}"
        for (participant, label, take), got in sorted(present.items())
        if len(got) < len(views)
    ]

    problems = []
    if unparsed:
        problems.append(_listing(f"names that do not match raw_pattern {pattern!r} ({FIELD_RULES})", unparsed))
    if unknown_labels:
        problems.append(_listing(f"labels that are not classes of the class table {classes.source}", unknown_labels))
    if unknown_views:
        problems.append(_listing(f"views not in the configured views {list(views)}", unknown_views))
    if duplicates:
        problems.append(_listing("duplicates (same participant, view, label and take)", duplicates))
    if missing_views:
        problems.append(_listing("recordings missing a view", missing_views))
    if problems:
        raise SampleSheetError(
            "the raw videos cannot be turned into a sample sheet:\n" + "\n".join(problems),
            path=raw_dir,
            fix="rename, move or remove the listed files (or adjust raw_pattern, views and classes in config.yaml)",
        )
    if not rows:
        raise SampleSheetError(
            f"no videos match raw_pattern {pattern!r}",
            path=raw_dir,
            fix="check raw_dir and raw_pattern in config.yaml, or run `make demo`",
        )

    sheet = pd.DataFrame(rows)
    sheet["video_id"] = [video_id(*r) for r in sheet[list(FIELDS)].itertuples(index=False)]
    sheet["kind"] = ["composite" if classes.is_composite(label) else "single" for label in sheet["label"]]
    sheet["n_errors"] = [classes.n_errors(label) for label in sheet["label"]]
    sheet["multi_hot"] = [classes.multi_hot_string(label) for label in sheet["label"]]
    heldout = set(heldout_participants)
    sheet["split"] = [
        "test" if kind == "composite" or p in heldout else "train"
        for kind, p in zip(sheet["kind"], sheet["participant"], strict=True)
    ]
    for participant in sorted(heldout - set(sheet["participant"])):
        log.warning("held-out participant %s has no videos under %s", participant, raw_dir)
    order = {code: i for i, code in enumerate(classes.all_codes)}
    sheet = sheet.assign(
        _label_order=sheet["label"].map(order),
        _take=sheet["take"].astype(int),
        _view=sheet["view"].map(list(views).index),
    )
    sheet = sheet.sort_values(["participant", "_label_order", "_take", "_view"]).reset_index(drop=True)
    return sheet[COLUMNS]


def samples_from_config(config: dict) -> pd.DataFrame:
    """The sample sheet for a validated configuration."""
    return discover_samples(
        config["raw_dir"],
        config["raw_pattern"],
        config["views"],
        load_classes(config["classes"]),
        config["split"]["heldout_participants"],
    )


def write_sheet(sheet: pd.DataFrame, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        sheet.to_csv(tmp, sep="\t", index=False)


def read_sheet(path: str | Path) -> pd.DataFrame:
    """Read a sample sheet back with every field as text (takes keep their leading zeros)."""
    return pd.read_csv(path, sep="\t", dtype=str).astype({"n_errors": int})


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="cprcoach samples", description=__doc__)
    parser.add_argument("--raw-dir", required=True, help="folder of the raw recordings")
    parser.add_argument(
        "--pattern", required=True, help="raw-file pattern, e.g. '{participant}/{view}/{label}_{take}.mp4'"
    )
    parser.add_argument("--views", nargs="+", required=True, help="views every recording must have")
    parser.add_argument("--classes", default=None, help="class table YAML (default: the project's table)")
    parser.add_argument("--heldout", nargs="*", default=[], help="participants whose single-class videos are tested")
    parser.add_argument("--out", required=True, help="sample sheet to write (TSV)")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


@cli_errors
def run(args: argparse.Namespace) -> None:
    setup_logging(args.verbose)
    sheet = discover_samples(args.raw_dir, args.pattern, args.views, load_classes(args.classes), args.heldout)
    write_sheet(sheet, args.out)
    counts = sheet.groupby(["split", "kind"]).size().to_dict()
    log.info("%d videos of %d participants -> %s (%s)", len(sheet), sheet["participant"].nunique(), args.out, counts)


def main(argv: Sequence[str] | None = None) -> None:
    run(build_parser().parse_args(argv))


if __name__ == "__main__":
    main()
