"""The flow stage around the TV-L1 solvers: quantisation, the stored file, the report figure."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from cprcoach.errors import CprCoachError
from cprcoach.flow.extract import extract_flow
from cprcoach.flow.format import read_flow
from cprcoach.flow.params import TVL1Params
from cprcoach.flow.quantize import dequantize, quantize

FAST = TVL1Params.from_config({"nscales": 2, "warps": 1, "inner_iterations": 5, "outer_iterations": 2})


def test_quantize_follows_the_community_convention():
    flow = np.array([-30.0, -20.0, 0.0, 10.0, 20.0, 25.0], np.float32)
    assert quantize(flow, 20).tolist() == [0, 0, 128, 191, 255, 255]
    inside = np.linspace(-20, 20, 101, dtype=np.float32)
    assert np.abs(dequantize(quantize(inside, 20), 20) - inside).max() <= 20 / 255 + 1e-5  # half a step


@pytest.mark.parametrize("backend", ["opencv", "torch"])
def test_stored_flow_of_a_moving_pattern(video_factory, tmp_path, backend):
    clip = video_factory(width=96, height=72, frames=6)
    meta = extract_flow(clip, tmp_path / "flow.npz", params=FAST, backend=backend, bound=20, threads=2)
    x, y, stored = read_flow(tmp_path / "flow.npz")
    assert x.shape == y.shape == (5, 72, 96) and x.dtype == np.uint8
    assert stored == meta and stored["backend"] == backend and stored["frames"] == 6
    assert stored["tvl1"]["nscales"] == 2
    # testsrc2 scrolls: some pixels move, none beyond the bound.
    assert np.abs(dequantize(x, 20)).max() > 0.5
    assert not list(tmp_path.glob(".*partial*"))


def test_float_output_keeps_pixels(video_factory, tmp_path):
    clip = video_factory(width=64, height=48, frames=3)
    extract_flow(clip, tmp_path / "flow.npz", params=FAST, backend="opencv", output="float16")
    x, y, meta = read_flow(tmp_path / "flow.npz")
    assert x.dtype == np.float16 and x.shape == (2, 48, 64) and meta["output"] == "float16"


def test_one_frame_clip_is_a_clear_error(video_factory, tmp_path):
    clip = video_factory(frames=1)
    with pytest.raises(CprCoachError, match="a clip of one frame has no flow"):
        extract_flow(clip, tmp_path / "flow.npz", params=FAST, backend="opencv")
    assert not (tmp_path / "flow.npz").exists()


def test_cli_and_figure(video_factory, tmp_path):
    clip = video_factory(width=96, height=72, frames=4)
    other = video_factory("other.mp4", width=96, height=72, frames=3)
    flow, other_flow = tmp_path / "P01" / "V1" / "E00_01.npz", tmp_path / "P01" / "V2" / "E00_01.npz"
    run = [sys.executable, "-m", "cprcoach.flow"]
    tvl1 = '{"nscales": 2, "warps": 1, "inner_iterations": 5, "outer_iterations": 2}'
    extract = [*run, "extract", str(clip), str(other), "--out", str(flow), str(other_flow)]
    subprocess.run([*extract, "--backend", "torch", "--tvl1", tvl1], check=True)
    assert read_flow(flow)[0].shape == (3, 72, 96) and read_flow(other_flow)[0].shape == (2, 72, 96)
    result = subprocess.run(
        [*run, "extract", str(clip), str(other), "--out", str(flow)], capture_output=True, text=True
    )
    assert result.returncode == 2 and "2 clips but 1 --out paths" in result.stderr
    out = tmp_path / "flow.png"
    subprocess.run([*run, "plot", "--clips", str(clip), "--flows", str(flow), "--out", str(out)], check=True)
    assert out.read_bytes()[:4] == b"\x89PNG"
    result = subprocess.run(
        [*run, "extract", str(clip), "--out", str(flow), "--device", "cuda"], capture_output=True, text=True
    )
    if result.returncode != 0:  # no GPU here: a clear message, no traceback
        assert "flow.device is cuda, but torch sees no GPU" in result.stderr and "Traceback" not in result.stderr
