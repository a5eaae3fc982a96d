"""The shard file: its layout, the writer, and `open_shard`, the one way every reader opens it.

`{participant}_{view}.h5`, file attributes: format, participant, view, videos (ids in
sample-sheet order), created, layout (codecs and their settings), versions. One group per
video, named by its video_id, in sample-sheet order:
  rgb                  (T,) vlen uint8      one JPEG per frame of the rgb clip
  flow_x, flow_y       (T-1,H',W') uint8    quantised flow (float16 if the flow stage kept floats);
                                            chunks of one frame, Zstd (lossless)
  keypoints            (T,26,3) float32     Halpe-26 x, y in raw-video pixels, score
  box                  (T,4) float32        the rescuer's box, raw-video pixels
  found, interpolated  (T,) bool
  rgb_crc32            (T,) uint32          the CRC-32 of each JPEG (HDF5 filters cannot checksum
                                            variable-length data)
Every dataset but rgb carries HDF5's Fletcher-32 filter, which checks each chunk as it is read;
read_rgb checks each JPEG against its CRC-32. A chunk or a frame that does not verify is a
DamagedShardError naming the shard, the video and the dataset (verify_video reads them all).
Group attributes: the sample-sheet fields, label_index, frame counts and sizes, the raw source
(path, bytes, sha256, frame size, fps) and the preprocessing parameters (the probe, flow and pose
metadata as JSON, with their versions).

Layout choices, measured on 340x256 frames (see the stage report): JPEG (quality 90) is 6-8x
smaller than losslessly compressed pixels and decodes faster; Zstd-6 per-frame chunks keep the
flow exact at 1/8-1/10 of its size and read faster than gzip; JPEG flow would halve that
again, but lossily.
"""

from __future__ import annotations

import hashlib
import json
import logging
import platform
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import h5py
import hdf5plugin
import numpy as np

import cprcoach
from cprcoach.atomic import atomic_path
from cprcoach.errors import CprCoachError
from cprcoach.flow.format import read_flow
from cprcoach.paths import same_file
from cprcoach.pose.format import read_pose
from cprcoach.samples import COLUMNS as SHEET_COLUMNS
from cprcoach.settings import ConfigSection
from cprcoach.video.frames import read_frames
from cprcoach.video.probe import listed_clip, read_probe

log = logging.getLogger(__name__)

FORMAT = "cprcoach-shard/3"  # /3: every dataset checksummed (Fletcher-32, and a CRC-32 per JPEG)
# The sample sheet's fields a video's group keeps as attributes (its path is source_path).
SHEET_FIELDS = tuple(column for column in SHEET_COLUMNS if column not in ("path", "file_label"))
INPUT_FILES = ("rgb", "flow", "pose", "probe")
DATASETS = ("rgb", "rgb_crc32", "flow_x", "flow_y", "keypoints", "box", "found", "interpolated")
# The group attributes the index copies, with their types: the index's columns come from here.
INDEX_ATTRS: dict[str, type] = {
    "participant": str,
    "view": str,
    "label": str,
    "take": str,
    "kind": str,
    "n_errors": int,
    "multi_hot": str,
    "label_index": int,
    "split": str,
    "frames": int,
    "flow_frames": int,
    "fps": float,
    "height": int,
    "width": int,
    "flow_height": int,
    "flow_width": int,
    "flow_dtype": str,
    "flow_bound": float,
    "flow_backend": str,
    "pose_backend": str,
    "rgb_bytes": int,
    "flow_bytes": int,
    "source_width": int,
    "source_height": int,
    "source_fps": float,
    "source_frames": int,
    "source_duration": float,
    "source_size": int,
    "source_sha256": str,
    "source_path": str,
}
# Group attributes every reader may rely on (check.py verifies them): those, the per-video files
# the shard was built from and their metadata.
REQUIRED_ATTRS = (
    "video_id",
    *INDEX_ATTRS,
    "rgb_path",
    "flow_path",
    "pose_path",
    "probe_path",
    "probe_meta",
    "flow_meta",
    "pose_meta",
)
REBUILD = "rerun `cprcoach shards build` for this participant and view"
# The datasets HDF5 checksums itself (Fletcher-32 per chunk); rgb is checked by rgb_crc32.
CHECKSUMMED = tuple(name for name in DATASETS if name != "rgb")


def open_shard(path: str | Path) -> h5py.File:
    """Open a shard read-only; hdf5plugin is imported with this module, so its Zstd filter is registered.

    File locking is off: a shard is never modified after its rename, and locks fail on many
    network file systems.
    """
    path = Path(path)
    try:
        shard = h5py.File(path, "r", locking=False)
    except OSError as error:
        raise CprCoachError(f"cannot open the shard ({error})", path=path, fix=REBUILD) from None
    if shard.attrs.get("format") != FORMAT:
        found = shard.attrs.get("format")
        shard.close()
        raise CprCoachError(f"not a {FORMAT} file (format {found!r})", path=path, fix=REBUILD)
    return shard


def plain(value: Any) -> Any:
    """An HDF5 attribute as a Python value (numpy scalars and byte strings decoded)."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value


def group_attrs(group: h5py.Group) -> dict[str, Any]:
    return {key: plain(value) for key, value in group.attrs.items()}


class DamagedShardError(CprCoachError):
    """Bytes of a shard that do not verify against their checksum: a disk or a copy damaged it."""


REBUILD_DAMAGED = "delete the shard and rerun snakemake, which rebuilds it from the per-video files"


def _damaged(dataset: h5py.Dataset, what: str) -> DamagedShardError:
    video, name = dataset.name.strip("/").split("/", 1)
    return DamagedShardError(
        f"video {video}, dataset {name}: {what}; the shard is damaged", path=dataset.file.filename, fix=REBUILD_DAMAGED
    )


def _read(dataset: h5py.Dataset, selection: Any = ()) -> np.ndarray:
    """dataset[selection], with a chunk that fails its Fletcher-32 check named as damage."""
    try:
        return dataset[selection]
    except OSError as error:
        raise _damaged(dataset, f"a chunk does not verify against its checksum ({error})") from None


def read_array(group: h5py.Group, name: str) -> np.ndarray:
    """One whole dataset of a video, checked."""
    return _read(group[name])


def take(dataset: h5py.Dataset, indices: Sequence[int] | np.ndarray) -> np.ndarray:
    """dataset[indices] for any indices, repeats and disorder included, checked.

    Runs of consecutive indices are read as slices: h5py's list indexing is some 30x slower
    on chunked, compressed data (measured on flow stacks).
    """
    unique, inverse = np.unique(np.asarray(indices, dtype=np.int64), return_inverse=True)
    breaks = np.flatnonzero(np.diff(unique) != 1) + 1
    runs = [_read(dataset, slice(int(run[0]), int(run[-1]) + 1)) for run in np.split(unique, breaks)]
    return np.concatenate(runs)[inverse]


def decode_jpegs(blobs: Sequence[np.ndarray]) -> np.ndarray:
    """JPEG byte arrays -> (n,H,W,3) uint8 RGB."""
    return np.stack([cv2.cvtColor(cv2.imdecode(blob, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB) for blob in blobs])


def read_jpegs(group: h5py.Group, indices: Sequence[int] | np.ndarray) -> np.ndarray:
    """The JPEG bytes of frames `indices`, each checked against its CRC-32."""
    indices = np.asarray(indices, dtype=np.int64)
    blobs, crcs = take(group["rgb"], indices), take(group["rgb_crc32"], indices)
    for frame, blob, crc in zip(indices, blobs, crcs, strict=True):
        if zlib.crc32(blob) != crc:
            raise _damaged(group["rgb"], f"frame {frame}'s JPEG does not match its CRC-32")
    return blobs


def read_rgb(group: h5py.Group, indices: Sequence[int] | np.ndarray) -> np.ndarray:
    """Frames `indices` of a video's RGB clip, (n,H,W,3) uint8."""
    return decode_jpegs(read_jpegs(group, indices))


def verify_video(group: h5py.Group) -> None:
    """Read every byte of a video's datasets against its checksums; raises DamagedShardError."""
    for name in CHECKSUMMED:
        read_array(group, name)
    read_jpegs(group, np.arange(len(group["rgb"])))


def video_group(shard: h5py.File, video_id: str) -> h5py.Group:
    if video_id not in shard:
        raise CprCoachError(
            f"the shard holds no video {video_id}",
            path=shard.filename,
            fix="rebuild the index (`cprcoach shards index`)",
        )
    return shard[video_id]


def sha256_file(path: str | Path) -> str:
    """Streamed, so a 4K recording is never held in memory."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def label_index(multi_hot: str) -> int:
    """The one class index of a video: its class for a single-class video, its first error for a composite.

    The first error (the lowest index of the class table) is a convention for tools that need
    one integer (pyskl, mmaction2 lists); the multi-hot vector is the full label.
    """
    return multi_hot.index("1")


def versions() -> dict[str, str]:
    return {
        "cprcoach": cprcoach.__version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "h5py": h5py.__version__,
        "hdf5": h5py.version.hdf5_version,
        "hdf5plugin": hdf5plugin.version,
        "opencv": cv2.__version__,
    }


def _check_inputs(videos: Sequence[dict[str, Any]]) -> None:
    if not videos:
        raise CprCoachError("no videos to put in the shard", fix="check --participant and --view against the sheet")
    missing = [
        f"{v.get('video_id', i)}: {k}"
        for i, v in enumerate(videos)
        for k in (*SHEET_FIELDS, "path", *INPUT_FILES)
        if k not in v
    ]
    if missing:
        raise CprCoachError("videos lack fields: " + ", ".join(missing))
    ids = [v["video_id"] for v in videos]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise CprCoachError("videos listed twice: " + ", ".join(duplicates))
    for key in ("participant", "view"):
        values = sorted({str(v[key]) for v in videos})
        if len(values) > 1:
            raise CprCoachError(f"one shard holds one {key}, got {', '.join(values)}")


def _write_video(shard: h5py.File, video: dict[str, Any], jpeg_quality: int, flow_level: int) -> int:
    """Check one video's files against each other and write its group; returns its frame count."""
    vid = video["video_id"]
    probe = read_probe(video["probe"])
    if not same_file(probe["source"]["path"], video["path"]):
        raise CprCoachError(
            f"{vid}: the probe is of {probe['source']['path']}, the sheet says {video['path']}",
            path=video["probe"],
            fix="pass the per-video files in sample-sheet order (the rows of --participant and --view)",
        )
    rgb_clip = listed_clip(probe, video["rgb"])
    x, y, flow_meta = read_flow(video["flow"])
    pose = read_pose(video["pose"])
    unmatched = [
        f"{kind} {path}"
        for kind, path, name in (
            ("rgb clip", video["rgb"], rgb_clip),
            ("flow of", flow_meta["clip"], listed_clip(probe, flow_meta["clip"])),
            ("pose of", pose.meta["clip"]["path"], listed_clip(probe, pose.meta["clip"]["path"])),
        )
        if name is None
    ]
    if unmatched:
        raise CprCoachError(
            f"{vid}: not clips of this recording's probe: {'; '.join(unmatched)}",
            path=video["probe"],
            fix="pass the per-video files in sample-sheet order (the rows of --participant and --view)",
        )
    frames = read_frames(video["rgb"])
    count = len(frames)
    wrong = [
        f"{what} has {got} (expected {want})"
        for what, got, want in (("flow", len(x), count - 1), ("pose", pose.frames, count))
        if got != want
    ]
    if wrong:
        raise CprCoachError(
            f"{vid}: the rgb clip has {count} frames, but " + ", ".join(wrong),
            path=video["rgb"],
            fix="rerun the flow and pose stages of this video",
        )
    source = Path(video["path"])
    if not source.is_file():
        raise CprCoachError("raw video not found: the shard records its checksum", path=source, fix="restore it")
    size = source.stat().st_size
    if size != probe["source"]["size_bytes"]:
        raise CprCoachError(
            f"the raw video is {size} bytes, the probe says {probe['source']['size_bytes']}: it changed after resizing",
            path=source,
            fix="rerun the workflow from the resize stage for this video",
        )

    group = shard.create_group(vid)
    encode = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality]
    blobs = np.empty(count, dtype=object)
    for i, frame in enumerate(frames):
        blobs[i] = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), encode)[1].reshape(-1)
    group.create_dataset("rgb", data=blobs, dtype=h5py.vlen_dtype(np.uint8))
    checked = {"fletcher32": True}
    group.create_dataset("rgb_crc32", data=np.array([zlib.crc32(b) for b in blobs], dtype=np.uint32), **checked)
    flow_args = {"chunks": (1, *x.shape[1:]), "compression": hdf5plugin.Zstd(flow_level), **checked}
    flow_x = group.create_dataset("flow_x", data=x, **flow_args)
    flow_y = group.create_dataset("flow_y", data=y, **flow_args)
    small = {"compression": hdf5plugin.Zstd(flow_level), **checked}
    group.create_dataset("keypoints", data=pose.keypoints, **small)
    group.create_dataset("box", data=pose.box, **small)
    group.create_dataset("found", data=pose.found, **checked)
    group.create_dataset("interpolated", data=pose.interpolated, **checked)
    src = probe["source"]
    attrs = {key: video[key] for key in SHEET_FIELDS}
    attrs |= {
        "n_errors": int(video["n_errors"]),
        "label_index": label_index(video["multi_hot"]),
        "frames": count,
        "flow_frames": len(x),
        "fps": float(probe["clips"][rgb_clip]["fps"]),
        "height": int(frames.shape[1]),
        "width": int(frames.shape[2]),
        "flow_height": int(x.shape[1]),
        "flow_width": int(x.shape[2]),
        "flow_dtype": str(x.dtype),
        "flow_bound": float(flow_meta["bound"]),
        "flow_backend": flow_meta["backend"],
        "pose_backend": pose.meta["backend"],
        "rgb_bytes": int(sum(len(b) for b in blobs)),
        "flow_bytes": int(flow_x.id.get_storage_size() + flow_y.id.get_storage_size()),
        "source_path": str(source),
        "source_size": size,
        "source_sha256": sha256_file(source),
        "source_width": int(src["width"]),
        "source_height": int(src["height"]),
        "source_fps": float(src["fps"]),
        "source_frames": int(src["frames"]),
        "source_duration": float(src["duration"]),
        "rgb_path": str(video["rgb"]),
        "flow_path": str(video["flow"]),
        "pose_path": str(video["pose"]),
        "probe_path": str(video["probe"]),
        "probe_meta": json.dumps({key: value for key, value in probe.items() if key != "seconds"}),
        "flow_meta": json.dumps(flow_meta),
        "pose_meta": json.dumps(pose.meta),
    }
    group.attrs.update(attrs)
    return count


@dataclass(frozen=True)
class ShardSettings(ConfigSection):
    """How a shard stores its videos (config ``shards``)."""

    SECTION = "shards"

    jpeg_quality: int  # of the RGB frames
    flow_level: int  # Zstd level of the flow


def build_shard(videos: Sequence[dict[str, Any]], out: str | Path, settings: ShardSettings | None = None) -> Path:
    """Write one shard from its videos: each a dict of the sample-sheet fields and its files
    (rgb clip, flow .npz, pose .npz, probe JSON), stored as settings say (by default, the
    schema's). Written to a temporary sibling and renamed, so an interrupted or failed build
    leaves no shard and no partial file."""
    started = time.perf_counter()
    settings = settings or ShardSettings.from_config()
    jpeg_quality, flow_level = settings.jpeg_quality, settings.flow_level
    _check_inputs(videos)
    out = Path(out)
    with atomic_path(out) as tmp, h5py.File(tmp, "w", track_order=True) as shard:
        shard.attrs.update(
            {
                "format": FORMAT,
                "participant": str(videos[0]["participant"]),
                "view": str(videos[0]["view"]),
                "videos": [v["video_id"] for v in videos],
                "created": datetime.now(UTC).isoformat(timespec="seconds"),
                "layout": json.dumps(
                    {
                        "rgb": {"codec": "jpeg", "quality": jpeg_quality, "colour": "RGB"},
                        "flow": {"codec": "zstd", "level": flow_level, "chunk": "one frame"},
                        "keypoints": {"joints": "halpe26", "units": "raw-video pixels"},
                    }
                ),
                "versions": json.dumps(versions()),
            }
        )
        frames = sum(_write_video(shard, video, jpeg_quality, flow_level) for video in videos)
    log.info(
        "%s: %d videos, %d frames, %.1f MB in %.1f s",
        out,
        len(videos),
        frames,
        out.stat().st_size / 1e6,
        time.perf_counter() - started,
    )
    return out
