"""`cprcoach shards check`: validate a shard against the index and the sidecars it was built from.

Per video: the datasets and attributes are present, the frame counts agree (RGB T, flow T-1,
keypoints T) between the arrays, the attributes, the index and the probe, flow and pose files
that are still on disk; the first and last JPEG decode to the recorded size; the raw file has
the recorded size. With --checksums every stored byte is read against its checksum (HDF5's
Fletcher-32 per chunk, a CRC-32 per JPEG), as the workflow's shard_check does before any model
trains; with --source-checksums the raw videos still on disk are hashed again against the recorded
sha256 (that reads the whole raw dataset). Every problem is listed at once.
"""

from __future__ import annotations

import argparse
import logging
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import h5py
import pandas as pd

from cprcoach.atomic import write_json_atomic
from cprcoach.errors import CprCoachError, cli_errors
from cprcoach.flow.format import flow_pairs
from cprcoach.logs import setup_logging
from cprcoach.paths import same_file
from cprcoach.pose.format import pose_frames
from cprcoach.shards.index import read_index
from cprcoach.shards.store import (
    DATASETS,
    FORMAT,
    REQUIRED_ATTRS,
    DamagedShardError,
    decode_jpegs,
    group_attrs,
    open_shard,
    plain,
    sha256_file,
    verify_video,
)
from cprcoach.skeleton import HALPE26
from cprcoach.video.probe import listed_clip, read_probe

log = logging.getLogger(__name__)

# Index columns that must equal the shard's attributes (split may differ: the index takes it from the sheet).
SAME_AS_INDEX = ("label", "multi_hot", "label_index", "frames", "flow_frames", "source_sha256", "source_size")


@dataclass
class CheckResult:
    shard: str
    videos: int = 0
    checksums: int = 0  # videos whose stored bytes verified
    source_checksums: int = 0  # raw videos hashed again
    problems: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def _shapes(group: h5py.Group, frames: int) -> list[str]:
    want = {
        "flow_x": (frames - 1, None, None),
        "flow_y": (frames - 1, None, None),
        "keypoints": (frames, len(HALPE26), 3),
        "box": (frames, 4),
        "found": (frames,),
        "interpolated": (frames,),
    }
    problems = []
    for name, shape in want.items():
        got = group[name].shape
        if len(got) != len(shape) or any(w is not None and g != w for g, w in zip(got, shape, strict=True)):
            expected = tuple("*" if w is None else w for w in shape)
            problems.append(f"{name} is {got}, expected {expected} for {frames} RGB frames")
    return problems


def _sidecar_frames(kind: str, path: Path, rgb_clip: str) -> int | None:
    """The RGB frame count a per-video file implies; None when the probe does not list the clip."""
    if kind == "probe":
        probe = read_probe(path)
        name = listed_clip(probe, rgb_clip)
        return int(probe["clips"][name]["frames"]) if name else None
    if kind == "flow":
        return flow_pairs(path) + 1
    return pose_frames(path)


def _sidecars(attrs: dict, frames: int, result: CheckResult) -> list[str]:
    """Frame counts of the probe, flow and pose files, where they still exist."""
    problems = []
    for kind in ("probe", "flow", "pose"):
        path = Path(attrs[f"{kind}_path"])
        if not path.is_file():
            result.skipped.append(f"{attrs['video_id']}: {kind} file {path} is gone")
            continue
        try:
            count = _sidecar_frames(kind, path, attrs["rgb_path"])
        except (CprCoachError, OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as error:
            problems.append(f"its {kind} file {path} is unreadable ({error!r})")
            continue
        if count != frames:
            shown = "lists no such rgb clip" if count is None else f"implies {count} RGB frames"
            problems.append(f"its {kind} file {path} {shown}, the shard holds {frames}")
    return problems


def _check_video(
    group: h5py.Group, row: pd.Series | None, checksums: bool, source_checksums: bool, result: CheckResult
) -> list[str]:
    missing_sets = [name for name in DATASETS if name not in group]
    if missing_sets:
        return [f"no dataset {', '.join(missing_sets)}"]
    attrs = group_attrs(group)
    missing = [key for key in REQUIRED_ATTRS if key not in attrs]
    if missing:
        return [f"no attribute {', '.join(missing)}"]
    frames = len(group["rgb"])
    problems = _shapes(group, frames)
    if attrs["frames"] != frames or attrs["flow_frames"] != frames - 1:
        problems.append(
            f"attributes say {attrs['frames']} frames and {attrs['flow_frames']} flows, it holds {frames} RGB"
        )
    if row is not None:
        problems += [
            f"{key} is {attrs[key]!r} in the shard, {plain(row[key])!r} in the index"
            for key in SAME_AS_INDEX
            if str(attrs[key]) != str(row[key])
        ]
    shape = (attrs["height"], attrs["width"], 3)
    decoded = decode_jpegs(group["rgb"][[0, frames - 1]] if frames > 1 else group["rgb"][[0]])
    if decoded.shape[1:] != shape:
        problems.append(f"its JPEGs decode to {decoded.shape[1:]}, the attributes say {shape}")
    if group["flow_x"].shape[1:] != (attrs["flow_height"], attrs["flow_width"]):
        problems.append(
            f"flow is {group['flow_x'].shape[1:]}, the attributes say {attrs['flow_height']}x{attrs['flow_width']}"
        )
    problems += _sidecars(attrs, frames, result)
    source = Path(attrs["source_path"])
    if not source.is_file():
        result.skipped.append(f"{attrs['video_id']}: raw video {source} is gone")
    elif source.stat().st_size != attrs["source_size"]:
        problems.append(f"the raw video is {source.stat().st_size} bytes, the shard recorded {attrs['source_size']}")
    elif source_checksums:
        result.source_checksums += 1
        if sha256_file(source) != attrs["source_sha256"]:
            problems.append(f"the raw video's sha256 differs from the recorded {attrs['source_sha256']}")
    if checksums:
        try:
            verify_video(group)
            result.checksums += 1
        except DamagedShardError as error:
            problems.append(error.message)
    return problems


def check_shard(
    path: str | Path, index: pd.DataFrame, checksums: bool = False, source_checksums: bool = False
) -> CheckResult:
    """Everything wrong with one shard (an empty `problems` list: it is sound)."""
    result = CheckResult(str(path))
    rows = index[[same_file(s, path) for s in index["shard"]]].set_index("video_id", drop=False)
    with open_shard(path) as shard:
        groups = list(shard)
        result.videos = len(groups)
        listed = [str(v) for v in shard.attrs.get("videos", [])]
        if listed != groups:
            result.problems.append(f"the file attribute `videos` lists {listed}, the groups are {groups}")
        for key in ("participant", "view"):
            stray = sorted(set(rows[key]) - {shard.attrs.get(key)})
            if stray:
                result.problems.append(f"the index puts {key} {', '.join(stray)} in this {shard.attrs.get(key)} shard")
        if rows.empty:
            result.problems.append("the index lists no video of this shard")
        absent = [v for v in rows["video_id"] if v not in shard]
        if absent:
            result.problems.append("in the index, not in the shard: " + ", ".join(absent))
        extra = [g for g in groups if not rows.empty and g not in rows.index]
        if extra:
            result.problems.append("in the shard, not in the index: " + ", ".join(extra))
        for name in groups:
            row = rows.loc[name] if name in rows.index else None
            result.problems += [
                f"{name}: {p}" for p in _check_video(shard[name], row, checksums, source_checksums, result)
            ]
    return result


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="cprcoach shards check", description=__doc__)
    parser.add_argument("shards", nargs="+", type=Path, help="shard files (.h5)")
    parser.add_argument("--index", type=Path, required=True, help="the index (TSV) of `cprcoach shards index`")
    parser.add_argument("--checksums", action="store_true", help="read every stored byte against its checksum")
    parser.add_argument(
        "--source-checksums", action="store_true", help="hash the raw videos still on disk against the recorded sha256"
    )
    parser.add_argument("--out", type=Path, help="JSON report to write when every shard is sound")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


@cli_errors
def run(args: argparse.Namespace) -> None:
    setup_logging(args.verbose)
    index = read_index(args.index)
    results = [check_shard(path, index, args.checksums, args.source_checksums) for path in args.shards]
    for result in results:
        for note in result.skipped:
            log.info("%s: not checked: %s", result.shard, note)
    bad = [r for r in results if r.problems]
    if bad:
        raise CprCoachError(
            "shards that do not match the index or their sidecars:\n"
            + "\n".join(f"  {r.shard}:\n" + "\n".join(f"    {p}" for p in r.problems) for r in bad),
            fix="rebuild the listed shards (`cprcoach shards build`), then the index",
        )
    for result in results:
        log.info("%s: %d videos sound (%d checksums verified)", result.shard, result.videos, result.checksums)
    if args.out:
        write_json_atomic(args.out, {"format": FORMAT, "shards": [asdict(r) for r in results]})
