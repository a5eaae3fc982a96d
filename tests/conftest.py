"""Shared test helpers: small videos made on the spot with ffmpeg's test sources, and the
workflow's per-video stages run on one recording."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from types import SimpleNamespace

import h5py
import pytest

# Triton reads TRITON_INTERPRET when it is imported, so this comes before any test imports it: the
# GPU's TV-L1 kernels then run on the CPU, under Triton's interpreter (tests/test_flow_kernels.py).
os.environ.setdefault("TRITON_INTERPRET", "1")

from cprcoach.config import validate_config
from cprcoach.flow.extract import extract_flow
from cprcoach.flow.params import TVL1Params
from cprcoach.pose.estimate import estimate_pose
from cprcoach.pose.format import PoseTrack
from cprcoach.shards.store import decode_jpegs, video_group
from cprcoach.video.ffmpeg import ffmpeg_exe
from cprcoach.video.resize import ClipSpec, EncoderSettings, resize_video

REPO = Path(__file__).resolve().parent.parent
# The small synthetic recordings of the stage tests: source size, RGB clip size and a quick TV-L1.
SOURCE, RGB = (256, 136), (96, 72)
FAST_TVL1 = {"nscales": 2, "warps": 1, "inner_iterations": 5, "outer_iterations": 2}
FAST = TVL1Params.from_config(FAST_TVL1)


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
    settings = EncoderSettings(threads=1)
    resize_video(raw, specs, paths["probe"], source_width=SOURCE[0], source_height=SOURCE[1], fps=25, settings=settings)
    extract_flow(paths["rgb"], paths["flow"], params=FAST, backend="opencv", threads=1)
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
