"""The fused Triton kernels of the GPU's TV-L1, run on the CPU by Triton's interpreter.

CI has no GPU, so each kernel is checked here against what it replaces: the median filter
against cv2.medianBlur, the warp against the PyTorch remap, and the whole solver against the
PyTorch solver on the same pairs. The interpreter is slow, so the solver runs a short schedule
on small frames; the GPU figures are in the README.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from collections.abc import Iterator
from types import ModuleType

import cv2
import numpy as np
import pytest
import torch

from cprcoach.flow.benchmark import synthetic_clip
from cprcoach.flow.tvl1 import TVL1Params, _Scale, median_filter, tvl1_torch

# Two scales, two warps, 2 x 10 inner iterations: every kernel and every stopping path, quickly.
SHORT = {"nscales": 2, "warps": 2, "outer_iterations": 2, "inner_iterations": 10}


@pytest.fixture(scope="module")
def kernels() -> Iterator[ModuleType]:
    """cprcoach.flow.kernels imported with TRITON_INTERPRET=1, which Triton reads at decoration time."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TRITON_INTERPRET", "1")
        patch.delitem(sys.modules, "cprcoach.flow.kernels", raising=False)
        yield importlib.import_module("cprcoach.flow.kernels")
        patch.delitem(sys.modules, "cprcoach.flow.kernels", raising=False)


def pairs(height: int = 32, width: int = 40, count: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    clip, _ = synthetic_clip(count + 1, height, width)
    frames = torch.from_numpy(clip).float()
    return frames[:-1], frames[1:]


@pytest.mark.parametrize("size", [5, 3])
def test_median_kernel_is_opencvs_and_skips_pairs_that_are_done(kernels, size):
    values = np.random.default_rng(size).normal(size=(3, 2, 37, 45)).astype(np.float32)
    values[:, :, ::3] = values[:, :, ::3].round()  # ties
    values[:, :, :, ::4] = 0.5
    out = torch.full(values.shape, np.nan)
    done_at = torch.tensor([kernels.NOT_DONE, 3, kernels.NOT_DONE], dtype=torch.int32)
    active = torch.arange(3, dtype=torch.int32)
    kernels.median_of_active_pairs(torch.from_numpy(values), out, done_at, active, 4, size)
    for pair, channel in [(0, 0), (0, 1), (2, 0), (2, 1)]:
        np.testing.assert_array_equal(out[pair, channel].numpy(), cv2.medianBlur(values[pair, channel], size))
    assert out[1].isnan().all()  # converged at iteration 3, before iteration 4


def test_median_of_other_sizes_is_the_pytorch_filter(kernels):
    values = torch.from_numpy(np.random.default_rng(7).normal(size=(2, 3, 20, 23)).astype(np.float32))
    out = torch.zeros(2, 2, 20, 23)
    active = torch.arange(2, dtype=torch.int32)
    kernels.median_of_active_pairs(values, out, torch.full((2,), kernels.NOT_DONE, dtype=torch.int32), active, 1, 7)
    torch.testing.assert_close(out, median_filter(values[:, :2], 7))


def test_warp_data_matches_the_pytorch_remap(kernels):
    frames0, frames1 = pairs(37, 45)
    flow = torch.from_numpy(np.random.default_rng(0).normal(scale=3, size=(2, 2, 37, 45)).astype(np.float32))
    flow[0] = flow[0].round()  # whole pixels, some outside the frame
    scale = _Scale(frames0[:, None], frames1[:, None], flow, TVL1Params(), fused=False)
    expected = scale._linearise()  # float64 grid_sample
    data = kernels.warp_data(scale.i0, scale.i1_stack, scale.flow)
    assert data.shape == (2, 3, 37, 45)
    assert (data[0] - expected[0]).abs().max() < 1e-6  # exact samples at whole pixels
    assert ((data - expected).abs() / expected.abs().amax(dim=(2, 3), keepdim=True)).max() < 1e-5


@pytest.mark.parametrize(
    "options",
    [{}, {"gamma": 0.1}, {"median_filtering": 3}, {"median_filtering": 1}],
    ids=["defaults", "gamma", "median3", "no-median"],
)
def test_fused_solver_matches_the_pytorch_solver(kernels, options):
    params = TVL1Params(**SHORT, **options)
    frames0, frames1 = pairs()
    fused = tvl1_torch(frames0, frames1, params, fused=True)
    eager = tvl1_torch(frames0, frames1, params, fused=False)
    assert fused.shape == eager.shape == (2, 2, 32, 40)
    assert fused.abs().max() > 0.5
    assert (fused - eager).abs().max() < 2e-3


def test_a_pair_stops_at_the_iteration_that_converges(kernels):
    """With a huge epsilon every pair converges in its first iteration of each warp, as on the CPU."""
    params = TVL1Params(**SHORT, epsilon=100.0)
    frames0, frames1 = pairs()
    frames0[1] = frames1[1]  # identical frames: no change at all
    fused = tvl1_torch(frames0, frames1, params, fused=True)
    eager = tvl1_torch(frames0, frames1, params, fused=False)
    assert (fused - eager).abs().max() < 1e-3  # the warps' float32 and float64 remaps differ by ~1e-4
    assert fused[1].abs().max() < 1e-6
    assert (fused[0] - tvl1_torch(frames0, frames1, TVL1Params(**SHORT), fused=False)[0]).abs().max() > 0.1


def test_fused_solver_on_the_cpu_without_the_interpreter_is_a_clear_error():
    code = (
        "import torch\nfrom cprcoach.flow.tvl1 import TVL1Params, tvl1_torch\n"
        "tvl1_torch(torch.zeros(1, 32, 32), torch.zeros(1, 32, 32), TVL1Params(), fused=True)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={"PATH": ""})
    assert result.returncode != 0
    assert "the fused TV-L1 kernels run on a CUDA device" in result.stderr
    assert "TRITON_INTERPRET=1" in result.stderr
