"""The flow stage around the TV-L1 solvers: quantisation, the stored file, the report figure."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from cprcoach.errors import CprCoachError
from cprcoach.flow.extract import extract_flow
from cprcoach.flow.format import read_flow
from cprcoach.flow.params import FlowSettings
from cprcoach.flow.quantize import dequantize, quantize

FAST_TVL1 = {"nscales": 2, "warps": 1, "inner_iterations": 5, "outer_iterations": 2}


def fast(**flow) -> FlowSettings:
    """The flow section of a test, with the quick TV-L1."""
    return FlowSettings.from_config({"tvl1": FAST_TVL1, **flow})


def test_quantize_follows_the_community_convention():
    flow = np.array([-30.0, -20.0, 0.0, 10.0, 20.0, 25.0], np.float32)
    assert quantize(flow, 20).tolist() == [0, 0, 128, 191, 255, 255]
    inside = np.linspace(-20, 20, 101, dtype=np.float32)
    assert np.abs(dequantize(quantize(inside, 20), 20) - inside).max() <= 20 / 255 + 1e-5  # half a step


@pytest.mark.parametrize("backend", ["opencv", "torch"])
def test_stored_flow_of_a_moving_pattern(video_factory, tmp_path, backend):
    clip = video_factory(width=96, height=72, frames=6)
    meta = extract_flow(clip, tmp_path / "flow.npz", fast(backend=backend, bound=20), threads=2)
    x, y, stored = read_flow(tmp_path / "flow.npz")
    assert x.shape == y.shape == (5, 72, 96) and x.dtype == np.uint8
    assert stored == meta and stored["backend"] == backend and stored["frames"] == 6
    assert stored["tvl1"]["nscales"] == 2
    # testsrc2 scrolls: some pixels move, none beyond the bound.
    assert np.abs(dequantize(x, 20)).max() > 0.5
    assert not list(tmp_path.glob(".*partial*"))


def test_float_output_keeps_pixels(video_factory, tmp_path):
    clip = video_factory(width=64, height=48, frames=3)
    extract_flow(clip, tmp_path / "flow.npz", fast(backend="opencv", output="float16"), threads=1)
    x, y, meta = read_flow(tmp_path / "flow.npz")
    assert x.dtype == np.float16 and x.shape == (2, 48, 64) and meta["output"] == "float16"


def test_one_frame_clip_is_a_clear_error(video_factory, tmp_path):
    clip = video_factory(frames=1)
    with pytest.raises(CprCoachError, match="a clip of one frame has no flow"):
        extract_flow(clip, tmp_path / "flow.npz", fast(backend="opencv"), threads=1)
    assert not (tmp_path / "flow.npz").exists()


def test_cli_and_figure(video_factory, tmp_path):
    clip = video_factory(width=96, height=72, frames=4)
    other = video_factory("other.mp4", width=96, height=72, frames=3)
    flow, other_flow = tmp_path / "P01" / "V1" / "E00_01.npz", tmp_path / "P01" / "V2" / "E00_01.npz"
    run = [sys.executable, "-m", "cprcoach.flow"]
    settings = json.dumps({"backend": "torch", "tvl1": FAST_TVL1})
    extract = [*run, "extract", str(clip), str(other), "--out", str(flow), str(other_flow), "--threads", "1"]
    subprocess.run([*extract, "--settings", settings], check=True)
    assert read_flow(flow)[0].shape == (3, 72, 96) and read_flow(other_flow)[0].shape == (2, 72, 96)
    result = subprocess.run(
        [*run, "extract", str(clip), str(other), "--out", str(flow), "--threads", "1"], capture_output=True, text=True
    )
    assert result.returncode == 2 and "2 clips but 1 --out paths" in result.stderr
    out = tmp_path / "flow.png"
    subprocess.run([*run, "plot", "--clips", str(clip), "--flows", str(flow), "--out", str(out)], check=True)
    assert out.read_bytes()[:4] == b"\x89PNG"
    result = subprocess.run(
        [*run, "extract", str(clip), "--out", str(flow), "--threads", "1", "--settings", '{"device": "cuda"}'],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:  # no GPU here: a clear message, no traceback
        assert "flow.device is cuda, but torch sees no GPU" in result.stderr and "Traceback" not in result.stderr
