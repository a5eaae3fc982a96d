"""Shared test helpers: small videos made on the spot with ffmpeg's test sources, and the
workflow's per-video stages run on one recording."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np
import pytest

# Triton reads TRITON_INTERPRET when it is imported, so this comes before any test imports it: the
# GPU's TV-L1 kernels then run on the CPU, under Triton's interpreter (tests/test_flow_kernels.py).
os.environ.setdefault("TRITON_INTERPRET", "1")

from cprcoach.config import validate_config
from cprcoach.flow.extract import extract_flow
from cprcoach.flow.params import FlowSettings
from cprcoach.pose.estimate import estimate_pose
from cprcoach.pose.format import PoseTrack
from cprcoach.shards.store import decode_jpegs, open_shard, video_group
from cprcoach.video.ffmpeg import ffmpeg_exe
from cprcoach.video.resize import ClipSpec, VideoSettings, resize_video

REPO = Path(__file__).resolve().parent.parent
# The small synthetic recordings of the stage tests: source size, RGB clip size and a quick TV-L1.
SOURCE, RGB = (256, 136), (96, 72)
FAST_TVL1 = {"nscales": 2, "warps": 1, "inner_iterations": 5, "outer_iterations": 2}
FAST_FLOW = FlowSettings.from_config({"backend": "opencv", "tvl1": FAST_TVL1})


def tiny_config(root: Path, *, seed: int, singles: list[str], composites: list[str]) -> dict:
    """A one-participant, two-view dataset of 1 s recordings under `root`, with the settings that
    preprocess_recording uses (SOURCE, RGB, FAST_TVL1, the groundtruth pose)."""
    return validate_config(
        {
            "raw_dir": str(root / "raw"),
            "raw_pattern": "{participant}/{view}/{label}_{take}.mp4",
            "results_dir": str(root / "results"),
            "classes": None,
            "views": ["V1", "V2"],
            "split": {"heldout_participants": []},
            "video": {
                "source": {"width": SOURCE[0], "height": SOURCE[1], "fps": 25},
                "clips": {
                    "rgb": {"width": RGB[0], "height": RGB[1]},
                    "pose": {"width": SOURCE[0], "height": SOURCE[1]},
                },
            },
            "flow": {"backend": "opencv", "tvl1": FAST_TVL1},
            "pose": {"backend": "groundtruth"},
            "synth": {
                "seed": seed,
                "participants": 1,
                "seconds": 1.0,
                "singles": singles,
                "composites": composites,
                "workers": 1,
            },
        }
    )


def preprocess_recording(raw: Path, paths: dict[str, Path], pose: dict | None = None) -> None:
    """One raw recording through the workflow's per-video stages: the rgb and pose clips with the
    probe, OpenCV flow and the groundtruth pose (`pose`: the config's pose section)."""
    specs = [ClipSpec("rgb", *RGB, paths["rgb"]), ClipSpec("pose", *SOURCE, paths["pose_clip"])]
    clips = {spec.name: {"width": spec.width, "height": spec.height} for spec in specs}
    video = VideoSettings.from_config({"source": {"width": SOURCE[0], "height": SOURCE[1], "fps": 25}, "clips": clips})
    resize_video(raw, specs, paths["probe"], video, threads=1)
    extract_flow(paths["rgb"], paths["flow"], FAST_FLOW, threads=1)
    estimate_pose(paths["pose_clip"], paths["probe"], paths["pose"], pose or {"backend": "groundtruth"})


def make_video(
    path: Path,
    *,
    width: int = 160,
    height: int = 84,
    fps: float = 25,
    frames: int = 25,
    audio: bool = False,
    video: bool = True,
    faststart: bool = True,
) -> Path:
    """An H.264 MP4 of ffmpeg's moving test pattern (optionally with a tone, or audio only)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    seconds = frames / fps
    command = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y"]
    if video:
        command += ["-f", "lavfi", "-i", f"testsrc2=s={width}x{height}:r={fps}:d={seconds}"]
    if audio:
        command += ["-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}"]
    if video:
        command += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-frames:v", str(frames)]
    if audio:
        command += ["-c:a", "aac"]
    if faststart:
        command += ["-movflags", "+faststart"]
    subprocess.run([*command, str(path)], check=True)
    return path


def read_video(shard: h5py.File, video_id: str) -> SimpleNamespace:
    """Everything a shard holds of one video, decoded, to compare with the files it was built from."""
    group = video_group(shard, video_id)
    pose = PoseTrack(
        group["keypoints"][:],
        group["box"][:],
        group["found"][:],
        group["interpolated"][:],
        json.loads(group.attrs["pose_meta"]),
    )
    return SimpleNamespace(
        rgb=decode_jpegs(group["rgb"][:]), flow_x=group["flow_x"][:], flow_y=group["flow_y"][:], pose=pose
    )


@pytest.fixture
def video_factory(tmp_path):
    def factory(name: str = "clip.mp4", **kwargs) -> Path:
        return make_video(tmp_path / name, **kwargs)

    return factory


# Keys whose values differ between two runs of one configuration: durations and dates.
VOLATILE_KEYS = {"seconds", "pairs_per_second", "timings", "created", "train_s"}


def meaning(value, results: Path):
    """A value as comparable data, without what differs between runs: the results folder in paths,
    durations and dates."""
    if isinstance(value, dict):
        return {key: meaning(item, results) for key, item in value.items() if key not in VOLATILE_KEYS}
    if isinstance(value, list | tuple):
        return [meaning(item, results) for item in value]
    if type(value).__module__.startswith("torch"):  # a tensor (torch is imported only where one is read)
        value = value.numpy()
    if isinstance(value, np.ndarray | np.generic):
        value = np.asarray(value)
        if value.dtype.kind in "OUS":
            return meaning(value.tolist(), results)
        return (value.dtype.str, value.shape, value.tobytes())
    if isinstance(value, bytes):
        return value.replace(str(results).encode(), b"RESULTS")
    if isinstance(value, str):
        if value.startswith("{"):  # JSON metadata in npz files and HDF5 attributes
            return meaning(json.loads(value), results)
        return value.replace(str(results), "RESULTS")
    if isinstance(value, float):
        return repr(value)  # nan == nan
    return value


def content(path: Path):
    """What a result file holds, read by its type (containers record their own write times)."""
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=True) as data:
            return {key: data[key] for key in data.files}
    if path.suffix == ".h5":
        tree = {}
        with open_shard(path) as shard:
            tree["/"] = dict(shard.attrs)
            shard.visititems(
                lambda name, item: tree.__setitem__(
                    name, {"attrs": dict(item.attrs), "data": item[()] if isinstance(item, h5py.Dataset) else None}
                )
            )
        return tree
    if path.suffix == ".json":
        return json.loads(path.read_text())
    if path.suffix in (".tsv", ".md"):  # tables: their training-time columns are durations
        rows = [line.split("\t" if path.suffix == ".tsv" else "|") for line in path.read_text().splitlines()]
        timed = {
            i for i, cell in enumerate(rows[0] if rows else []) if cell.strip() in ("train_s", "train_s_std", "train s")
        }
        return [[cell for i, cell in enumerate(row) if i not in timed] for row in rows]
    if path.suffix == ".pkl":
        with path.open("rb") as handle:
            return pickle.load(handle)
    if path.suffix == ".pt":
        import torch

        return torch.load(path, map_location="cpu", weights_only=False)
    return path.read_bytes()


def result_files(results: Path) -> list[Path]:
    """A results folder's files, relative; logs and benchmarks are about the run, not the data."""
    paths = (p.relative_to(results) for p in results.rglob("*") if p.is_file())
    return sorted(p for p in paths if p.parts[0] not in ("logs", "benchmarks"))


def assert_same_results(first: Path, second: Path) -> None:
    """Two results folders hold the same files with the same data (paths and times aside)."""
    assert result_files(first) == result_files(second)
    for path in result_files(first):
        assert meaning(content(first / path), first) == meaning(content(second / path), second), path
