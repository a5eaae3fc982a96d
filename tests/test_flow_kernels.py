"""The fused Triton kernels of the GPU's TV-L1, run on the CPU by Triton's interpreter.

CI has no GPU, so each kernel is checked here against what it replaces: the median filter
against cv2.medianBlur, the warp against the PyTorch remap, and the whole solver against the
PyTorch solver on the same pairs. The interpreter is slow, so the solver runs a short schedule
on small frames; the GPU figures are in the README.
"""

from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from cprcoach.bench.flow import synthetic_clip
from cprcoach.flow.median import median_filter
from cprcoach.flow.tvl1 import TVL1Params, _Scale, tvl1_torch

kernels = pytest.importorskip("cprcoach.flow.kernels", reason="Triton, which the kernels need, is Linux-only")
from cprcoach.flow import launch, median_kernel  # noqa: E402  (after the skip: they import Triton too)

# Two scales, two warps, 2 x 10 inner iterations: every kernel and every stopping path, quickly.
SHORT = {"nscales": 2, "warps": 2, "outer_iterations": 2, "inner_iterations": 10}


def test_the_kernels_run_under_the_interpreter():
    """conftest.py sets TRITON_INTERPRET=1 before Triton is imported; without it nothing here runs on a CPU."""
    from triton.runtime.interpreter import InterpretedFunction

    assert isinstance(kernels.primal_step, InterpretedFunction)


def pairs(height: int = 32, width: int = 40, count: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    clip, _ = synthetic_clip(count + 1, height, width)
    frames = torch.from_numpy(clip).float()
    return frames[:-1], frames[1:]


@pytest.mark.parametrize("size", [5, 3])
def test_median_kernel_is_opencvs_for_the_active_pairs(size):
    values = np.random.default_rng(size).normal(size=(3, 2, 37, 45)).astype(np.float32)
    values[:, :, ::3] = values[:, :, ::3].round()  # ties
    values[:, :, :, ::4] = 0.5
    out = torch.full(values.shape, np.nan)
    median_kernel.median_of_active_pairs(torch.from_numpy(values), out, torch.tensor([0, 2], dtype=torch.int32), size)
    for pair, channel in [(0, 0), (0, 1), (2, 0), (2, 1)]:
        np.testing.assert_array_equal(out[pair, channel].numpy(), cv2.medianBlur(values[pair, channel], size))
    assert out[1].isnan().all()  # not active: left alone


def test_median_of_other_sizes_is_the_pytorch_filter():
    values = torch.from_numpy(np.random.default_rng(7).normal(size=(2, 3, 20, 23)).astype(np.float32))
    out = torch.zeros(2, 2, 20, 23)
    median_kernel.median_of_active_pairs(values, out, torch.arange(2, dtype=torch.int32), 7)
    torch.testing.assert_close(out, median_filter(values[:, :2], 7))


def test_warp_data_matches_the_pytorch_remap():
    frames0, frames1 = pairs(37, 45)
    flow = torch.from_numpy(np.random.default_rng(0).normal(scale=3, size=(2, 2, 37, 45)).astype(np.float32))
    flow[0] = flow[0].round()  # whole pixels, some outside the frame
    scale = _Scale(frames0[:, None], frames1[:, None], flow, TVL1Params.from_config(), False, torch.float32)
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
def test_fused_solver_matches_the_pytorch_solver(options):
    """With the same float32 dual: the float16 one's rounding, amplified over warps, is tested a warp at a time."""
    params = TVL1Params.from_config({**SHORT, **options})
    frames0, frames1 = pairs()
    fused = tvl1_torch(frames0, frames1, params, fused=True, dual_dtype=torch.float32)
    eager = tvl1_torch(frames0, frames1, params, fused=False)
    assert fused.shape == eager.shape == (2, 2, 32, 40)
    assert fused.abs().max() > 0.5
    assert (fused - eager).abs().max() < 2e-3


def test_large_frames_take_several_tiles_a_program_with_the_same_result(monkeypatch):
    params = TVL1Params.from_config(SHORT)
    frames0, frames1 = pairs()
    one_tile = tvl1_torch(frames0, frames1, params, fused=True)
    monkeypatch.setattr(kernels, "MAX_TILES", 1)  # 32x40 is 3 tiles of 512: as a frame above 131k pixels
    monkeypatch.setattr(kernels, "LARGE_FRAME_TILES", 2)  # 2 programs, the second's second tile outside
    assert (tvl1_torch(frames0, frames1, params, fused=True) - one_tile).abs().max() < 1e-5
    two_tiles = tvl1_torch(frames0, frames1, params, fused=True, dual_dtype=torch.float32)
    assert (two_tiles - tvl1_torch(frames0, frames1, params, fused=False)).abs().max() < 2e-3


def test_batches_beyond_a_cuda_grid_and_strided_tensors_are_clear_errors():
    with pytest.raises(ValueError, match="at most 65535 pairs at once.*not 70000: set flow.batch_size"):
        launch.launch_grid(170, 70000)
    flow = torch.zeros(1, 2, 16, 16)
    with pytest.raises(ValueError, match="contiguous float32 tensors here"):
        kernels.warp_data(torch.zeros(1, 1, 16, 16), torch.zeros(1, 3, 16, 16), flow.transpose(2, 3))


def test_a_pair_stops_at_the_iteration_that_converges():
    """With a huge epsilon every pair converges in its first iteration of each warp, as on the CPU."""
    params = TVL1Params.from_config({**SHORT, "epsilon": 100.0})
    frames0, frames1 = pairs()
    frames0[1] = frames1[1]  # identical frames: no change at all
    fused = tvl1_torch(frames0, frames1, params, fused=True)
    eager = tvl1_torch(frames0, frames1, params, fused=False, dual_dtype=torch.float16)
    assert (fused - eager).abs().max() < 1e-3  # the warps' float32 and float64 remaps differ by ~1e-4
    assert fused[1].abs().max() < 1e-6
    assert (fused[0] - tvl1_torch(frames0, frames1, TVL1Params.from_config(SHORT), fused=False)[0]).abs().max() > 0.1


@pytest.mark.parametrize("dual_dtype", [torch.float16, torch.float32], ids=["float16", "float32"])
@pytest.mark.parametrize(("channels", "tiles_per_program"), [(2, 1), (3, 1), (3, 2)])
def test_the_merged_step_is_the_dual_step_then_the_primal_step_bit_for_bit(channels, tiles_per_program, dual_dtype):
    """The neighbours' new q that each program computes again is what their programs store, borders included."""
    batch, height, width = 2, 23, 37  # two tiles of 512, the second part outside the frame
    generator = torch.Generator().manual_seed(channels)
    flow = torch.randn(batch, channels, height, width, generator=generator) * torch.tensor([0.5, 3.0]).view(2, 1, 1, 1)
    dual = ((torch.rand(batch, 2, channels, height, width, generator=generator) * 2 - 1) * 0.8).to(dual_dtype)
    data = torch.randn(batch, 3, height, width, generator=generator)
    params = TVL1Params.from_config({"gamma": 0.5 if channels == 3 else 0.0})
    tiles = -(-height * width // kernels.TILE)
    programs = -(-tiles // tiles_per_program)
    done_at = torch.full((batch,), kernels.NOT_DONE, dtype=torch.int32)
    active = torch.arange(batch, dtype=torch.int32)
    steps = {"tau": params.tau, "lambda_theta": params.lambda_ * params.theta, "gamma": params.gamma}
    shape = {"CHANNELS": channels, "TILE": kernels.TILE}
    stopping = {"n_pairs": batch, "programs": programs, "tiles_per_program": tiles_per_program, "scaled_epsilon": 0.0}
    tau_theta = params.tau / params.theta
    merged_flow, merged_dual, merged_partial = (
        torch.empty_like(flow),
        torch.empty_like(dual),
        torch.zeros(2, batch, programs),
    )
    kernels.dual_primal_step[(programs, batch)](
        flow,
        dual,
        data,
        merged_flow,
        merged_dual,
        merged_partial,
        done_at,
        active,
        height=height,
        width=width,
        iteration=0,
        tau_theta=tau_theta,
        CHUNK=kernels.PARTIAL_CHUNK,
        **stopping,
        **steps,
        **shape,
    )
    new_dual, new_flow, partial = torch.empty_like(dual), torch.empty_like(flow), torch.zeros(2, batch, programs)
    kernels.dual_step[(tiles, batch)](
        flow, dual, new_dual, done_at, active, height, width, iteration=0, tau_theta=tau_theta, **shape
    )
    kernels.primal_step[(programs, batch)](
        flow,
        flow,
        new_dual,
        data,
        new_flow,
        partial,
        done_at,
        active,
        height=height,
        width=width,
        start_stride=channels * height * width,
        iteration=1,
        CHUNK=kernels.PARTIAL_CHUNK,
        **stopping,
        **steps,
        **shape,
    )
    assert torch.equal(merged_dual, new_dual)
    assert torch.equal(merged_flow, new_flow)
    assert torch.equal(merged_partial[1], partial[1]) and partial[1].min() > 0
    assert (done_at == kernels.NOT_DONE).all()
    gradient = torch.zeros(batch, 2, channels, height, width)  # the dual step as the PyTorch solver takes it
    gradient[:, 0, ..., :-1] = flow[..., 1:] - flow[..., :-1]
    gradient[:, 1, ..., :-1, :] = flow[..., 1:, :] - flow[..., :-1, :]
    norm = 1 + tau_theta * gradient.square().sum(dim=1, keepdim=True).sqrt()
    torch.testing.assert_close(new_dual, ((dual.float() + gradient) / norm).to(dual_dtype))


# The largest difference from the PyTorch warp with each dual dtype: float32 rounding, or with
# float16 a few values the two solvers' float32 rounding puts on either side of a float16 step
# (1e-3 in the dual, 2.4e-4 px in the flow), carried through the iterations that follow.
WARP_TOLERANCE = {torch.float32: (1e-5, 1e-5), torch.float16: (1e-3, 2e-3)}  # (flow, dual)


@pytest.mark.parametrize("dual_dtype", [torch.float16, torch.float32], ids=["float16", "float32"])
@pytest.mark.parametrize(
    ("schedule", "stops"),
    [
        ({"outer_iterations": 2, "inner_iterations": 10, "epsilon": 0.05}, [19, 19, 18]),
        ({"outer_iterations": 2, "inner_iterations": 10, "epsilon": 0.07}, [10, 16, 16]),
        ({"outer_iterations": 1, "inner_iterations": 3, "epsilon": 0.0}, [3, 3, 3]),
    ],
    ids=["odd-and-even", "end-of-an-outer-iteration", "never"],
)
def test_a_warp_keeps_each_pairs_state_whichever_buffer_it_stopped_in(schedule, stops, dual_dtype):
    """Pairs stop at odd and even iterations, inside or at the end of an outer one, or never, as the PyTorch warp."""
    params = TVL1Params.from_config(schedule)
    clip, _ = synthetic_clip(4, 32, 40)
    frames = torch.from_numpy(clip).float()[:, None]
    fused = _Scale(frames[:-1], frames[1:], torch.zeros(3, 2, 32, 40), params, True, dual_dtype)
    eager = _Scale(frames[:-1], frames[1:], torch.zeros(3, 2, 32, 40), params, False, dual_dtype)
    iterations = kernels.solve_warp(fused.flow, fused.dual, fused._linearise(), params, fused.scaled_epsilon)
    eager._solve_warp()
    assert iterations.tolist() == stops
    assert fused.dual.dtype == eager.dual.dtype == dual_dtype
    flow_difference = (fused.flow - eager.flow).abs()
    dual_difference = (fused.dual.float() - eager.dual[..., 1:, 1:].float()).abs()
    assert flow_difference.max() < WARP_TOLERANCE[dual_dtype][0]
    assert dual_difference.max() < WARP_TOLERANCE[dual_dtype][1]


def test_fused_solver_on_the_cpu_without_the_interpreter_is_a_clear_error():
    code = (
        "import torch\nfrom cprcoach.flow.tvl1 import TVL1Params, tvl1_torch\n"
        "tvl1_torch(torch.zeros(1, 32, 32), torch.zeros(1, 32, 32), TVL1Params.from_config(), fused=True)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={"PATH": ""})
    assert result.returncode != 0
    assert "the fused TV-L1 kernels run on a CUDA device" in result.stderr
    assert "TRITON_INTERPRET=1" in result.stderr
