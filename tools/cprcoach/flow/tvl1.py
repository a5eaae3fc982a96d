"""TV-L1 optical flow as whole-tensor PyTorch operations over a batch of frame pairs.

The algorithm is Zach, Pock & Bischof (2007) in the form of Sanchez, Meinhardt-Llopis & Facciolo
(IPOL 2013), step for step as OpenCV's ``cv::optflow::DualTVL1OpticalFlow`` computes it on the CPU
(pyramid, warps, median filter between outer iterations, per-pair stopping test), so the two
backends agree to about 0.01 px. What differs is the shape of the work: every step runs on all
pairs of a batch at once, so one GPU call solves hundreds of pairs, and the same code runs on the
CPU. On a GPU the warp and the inner iterations run as fused Triton kernels (cprcoach.flow.kernels),
4-5x faster than as PyTorch operations; the pyramid and the flow between levels stay here.
Deliberate differences: the warp samples exactly, where OpenCV's remap rounds positions to 1/32 px;
the kernels store the dual variable in float16 (FUSED_DUAL_DTYPE), a quarter less traffic; and
with the PyTorch operations on a GPU the stopping test runs every GPU_CHECK_INTERVAL iterations,
so a pair may take up to that many iterations more than OpenCV's (the kernels test every
iteration, as OpenCV does).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from cprcoach.flow.median import median_filter
from cprcoach.flow.params import TVL1Params, check_clip_length
from cprcoach.flow.quantize import quantize

FLT_EPSILON = float(np.finfo(np.float32).eps)
MIN_LEVEL_SIZE = 16  # OpenCV stops the pyramid before a level narrower or lower than this
# The figures behind these constants are in the README (Optical flow, "The solver's constants").
# Inner iterations between stopping tests: every one on the CPU, as OpenCV's CPU code tests; every
# other one on a GPU, where each test is a host sync, as OpenCV's OpenCL code tests.
CPU_CHECK_INTERVAL = 1
GPU_CHECK_INTERVAL = 2
CPU_BATCH_PIXELS = 2 * 340 * 256  # pairs per call on the CPU, as pixels: more spill the caches
# The fused kernels store the dual variable in half precision (all arithmetic stays float32): it
# lies in a disc of radius theta / tau, where float16 keeps 11 significant bits, and so stored it
# takes the inner iteration from 60 bytes per pixel to 44. The PyTorch operations keep float32.
FUSED_DUAL_DTYPE = torch.float16
# Peak live bytes per pixel of a pair, with a margin for the CUDA allocator's block sizes: of the
# PyTorch operations (solver state and the median filter's scratch), and of the fused kernels.
BYTES_PER_PIXEL = 288
FUSED_BYTES_PER_PIXEL = 112
CUDA_MEMORY_FRACTION = 0.8  # of the free GPU memory, the rest left to fragmentation and other users


def _centred_gradient(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Central differences with replicated borders (OpenCV's one-sided halves at the edges)."""
    padded = F.pad(images, (1, 1, 1, 1), mode="replicate")
    dx = 0.5 * (padded[..., 1:-1, 2:] - padded[..., 1:-1, :-2])
    dy = 0.5 * (padded[..., 2:, 1:-1] - padded[..., :-2, 1:-1])
    return dx, dy


def _pyramid(images: torch.Tensor, params: TVL1Params) -> list[torch.Tensor]:
    """Levels from fine to coarse, each the previous one resized by scale_step, as cv::resize does.

    OpenCV rounds the size but maps coordinates with the exact factor (x_src = (x + 0.5) / step
    - 0.5); F.interpolate cannot have both, the ATen op given the size and the scales can.
    """
    levels = [images]
    step = params.scale_step
    for _ in range(1, params.nscales):
        height, width = levels[-1].shape[-2:]
        size = [round(height * step), round(width * step)]
        if min(size) < MIN_LEVEL_SIZE:
            break
        levels.append(torch.ops.aten.upsample_bilinear2d(levels[-1], size, False, step, step))
    return levels


def _remap(images: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Sample images at p + flow(p) bicubically; outside the frame is 0, as in OpenCV's remap.

    The sampling runs in float64: grid_sample's normalised coordinates lose ~1e-5 px in float32,
    enough for identical frames to grow spurious flow in flat regions (up to 0.8 px in a corner),
    where OpenCV's remap is exact at whole pixels. Replicating the border instead of zeros was
    as accurate against true flow but further from OpenCV.
    """
    batch, _, height, width = images.shape
    xs = torch.arange(width, device=images.device, dtype=torch.float64)
    ys = torch.arange(height, device=images.device, dtype=torch.float64)
    grid = torch.empty(batch, height, width, 2, device=images.device, dtype=torch.float64)
    grid[..., 0] = (flow[:, 0] + xs) * (2.0 / max(width - 1, 1)) - 1.0
    grid[..., 1] = (flow[:, 1] + ys[:, None]) * (2.0 / max(height - 1, 1)) - 1.0
    warped = F.grid_sample(images.double(), grid, mode="bicubic", padding_mode="zeros", align_corners=True)
    return warped.float()


class _Pairs:
    """The pairs of one warp that are still iterating, with their state and scratch buffers.

    The dual variable is kept as q = p / (tau / theta) in one buffer (x and y parts,
    each with a zero first row and column), so its backward-difference divergence is four strided
    passes without padding, and the dual step needs no multiplication by tau / theta.
    """

    def __init__(self, index: torch.Tensor, flow: torch.Tensor, dual: torch.Tensor, data: tuple[torch.Tensor, ...]):
        self.index, self.flow, self.dual, self.data = index, flow, dual, data
        batch, channels, height, width = flow.shape
        self.new = torch.empty_like(flow)
        self.rho = flow.new_empty(batch, 1, height, width)
        self.norm = flow.new_empty(batch, channels, height, width)
        self.du = flow.new_zeros(batch, 2, channels, height, width)  # last column / row stay 0
        self.one = flow.new_ones(())

    def select(self, keep: torch.Tensor) -> _Pairs:
        """The pairs flagged in keep, for the compaction that drops converged pairs."""
        return _Pairs(self.index[keep], self.flow[keep], self.dual[keep], tuple(t[keep] for t in self.data))

    def iterate(self, params: TVL1Params, check: bool) -> torch.Tensor | None:
        """One inner iteration (TH step, primal step, dual step); the squared change of u if check."""
        gradient, rho_c, neg_inv_grad = self.data
        flow, new, rho, du, norm = self.flow, self.new, self.rho, self.du, self.norm
        # TH: v = u + clamp(-rho / |grad I1w|^2, -lambda theta, lambda theta) * grad I1w
        torch.addcmul(rho_c, gradient[:, 0:1], flow[:, 0:1], out=rho)
        for c in range(1, flow.shape[1]):
            rho.addcmul_(gradient[:, c : c + 1], flow[:, c : c + 1])
        l_t = params.lambda_ * params.theta
        rho.mul_(neg_inv_grad).clamp_(-l_t, l_t)
        torch.addcmul(flow, rho, gradient, out=new)
        # u = v + theta div p = v + tau div q, backward differences
        qx, qy, tau = self.dual[:, 0], self.dual[:, 1], params.tau
        new.add_(qx[..., 1:, 1:], alpha=tau).sub_(qx[..., 1:, :-1], alpha=tau)
        new.add_(qy[..., 1:, 1:], alpha=tau).sub_(qy[..., :-1, 1:], alpha=tau)
        error = None
        if check:
            torch.sub(new, flow, out=norm)
            error = torch.linalg.vector_norm(norm, dim=(1, 2, 3)).square_()
        self.flow, self.new = new, flow
        # q = (q + grad u) / (1 + tau/theta |grad u|), forward differences
        torch.sub(new[..., 1:], new[..., :-1], out=du[:, 0, :, :, :-1])
        torch.sub(new[..., 1:, :], new[..., :-1, :], out=du[:, 1, :, :-1, :])
        torch.mul(du[:, 0], du[:, 0], out=norm).addcmul_(du[:, 1], du[:, 1]).sqrt_()
        torch.add(self.one, norm, alpha=params.tau / params.theta, out=norm)
        # in float32 in du, then rounded once into q's dtype, as the kernels round it; du's last
        # column (row) stays 0, as q's x (y) part does there, where its forward difference is 0
        q = self.dual[..., 1:, 1:]
        torch.div(du.add_(q), norm.unsqueeze(1), out=q)
        return error


class _Scale:
    """One pyramid level: warps of the linearised problem, each iterated until it converges."""

    def __init__(
        self,
        i0: torch.Tensor,
        i1: torch.Tensor,
        flow: torch.Tensor,
        params: TVL1Params,
        fused: bool,
        dual_dtype: torch.dtype,
    ):
        self.params, self.fused = params, fused
        self.i0 = i0.contiguous() if fused else i0
        i1x, i1y = _centred_gradient(i1)
        self.i1_stack = torch.cat([i1, i1x, i1y], dim=1)
        self.flow = flow.contiguous()
        batch, channels, height, width = flow.shape
        # the fused kernels mask the border; the eager steps read a zero first row and column
        padding = 0 if fused else 1
        self.dual = flow.new_zeros(batch, 2, channels, height + padding, width + padding, dtype=dual_dtype)
        self.scaled_epsilon = params.epsilon**2 * height * width

    def solve(self) -> torch.Tensor:
        """The flow of this level (the dual variable starts from 0 at each level, as in OpenCV)."""
        for _ in range(self.params.warps):
            self._solve_warp()
        return self.flow

    def _linearise(self) -> torch.Tensor:
        """I1 warped by the current flow, as (B, 3, H, W): its gradient I1wx, I1wy and rho's constant part."""
        if self.fused:
            from cprcoach.flow import kernels

            return kernels.warp_data(self.i0, self.i1_stack, self.flow)
        warped = _remap(self.i1_stack, self.flow)
        i1w, i1wx, i1wy = warped[:, 0:1], warped[:, 1:2], warped[:, 2:3]
        warped[:, 0:1] = i1w - i1wx * self.flow[:, 0:1] - i1wy * self.flow[:, 1:2] - self.i0
        return warped.roll(-1, dims=1)

    def _eager_data(self, data: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The gradient (with gamma's constant channel), rho's constant part and -1/|grad|^2."""
        gradient, rho_c = data[:, :2], data[:, 2:3]
        # OpenCV's three-way test (rho < -l_t grad, rho > l_t grad, grad > FLT_EPSILON) is this clamp
        neg_inv_grad = gradient.square().sum(dim=1, keepdim=True).clamp_(min=FLT_EPSILON).reciprocal_().neg_()
        if self.flow.shape[1] == 3:
            gradient = torch.cat([gradient, torch.full_like(rho_c, self.params.gamma)], dim=1)
        return gradient.contiguous(), rho_c.contiguous(), neg_inv_grad

    def _solve_warp(self) -> None:
        """One warp; a pair leaves the batch once its change drops to epsilon, as OpenCV stops it."""
        params = self.params
        if self.fused:
            from cprcoach.flow import kernels

            kernels.solve_warp(self.flow, self.dual, self._linearise(), params, self.scaled_epsilon)
            return
        check_interval = CPU_CHECK_INTERVAL if self.flow.device.type == "cpu" else GPU_CHECK_INTERVAL
        index = torch.arange(self.flow.shape[0], device=self.flow.device)
        pairs = _Pairs(index, self.flow, self.dual, self._eager_data(self._linearise()))
        iteration = 0
        for _ in range(params.outer_iterations):
            if params.median_filtering > 1:
                pairs.flow[:, :2] = median_filter(pairs.flow[:, :2], params.median_filtering)
            for _ in range(params.inner_iterations):
                iteration += 1
                error = pairs.iterate(params, iteration % check_interval == 0)
                if error is None:
                    continue
                done = error <= self.scaled_epsilon
                if bool(done.any()):
                    self._store(pairs, done)
                    if bool(done.all()):
                        return
                    pairs = pairs.select(~done)
        self._store(pairs, None)

    def _store(self, pairs: _Pairs, which: torch.Tensor | None) -> None:
        """Write the flow and dual of the given (or all) pairs back into the level's batch."""
        if which is None and pairs.index.numel() == self.flow.shape[0]:
            self.flow = pairs.flow  # nobody left the batch: the dual was updated in place
            return
        flow, dual, index = pairs.flow, pairs.dual, pairs.index
        if which is not None:
            flow, dual, index = flow[which], dual[which], index[which]
        self.flow[index] = flow
        self.dual[index] = dual


@torch.inference_mode()
def tvl1_torch(
    frames0: torch.Tensor,
    frames1: torch.Tensor,
    params: TVL1Params,
    fused: bool | None = None,
    dual_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Flow (B, 2, H, W) from frames0 to frames1, grey (B, H, W) in [0, 255]: frame0(p) ~ frame1(p + flow(p)).

    fused runs the inner iterations as Triton kernels (cprcoach.flow.kernels), by default on a GPU
    only; elsewhere they are PyTorch operations. dual_dtype stores the dual variable: by default
    FUSED_DUAL_DTYPE with the kernels and float32 without; either solver takes either.
    """
    if frames0.shape != frames1.shape or frames0.dim() != 3:
        raise ValueError(f"expected two (B, H, W) stacks of the same shape, got {frames0.shape} and {frames1.shape}")
    if fused is None:
        fused = frames0.is_cuda
    if dual_dtype is None:
        dual_dtype = FUSED_DUAL_DTYPE if fused else torch.float32
    images = torch.stack([frames0, frames1], dim=1).float()
    levels = _pyramid(images, params)
    channels = 3 if params.gamma != 0 else 2
    coarsest = levels[-1]
    flow = coarsest.new_zeros(coarsest.shape[0], channels, *coarsest.shape[-2:])
    for index in range(len(levels) - 1, -1, -1):
        level = levels[index]
        flow = _Scale(level[:, 0:1], level[:, 1:2], flow, params, fused, dual_dtype).solve()
        if index > 0:
            flow = F.interpolate(flow, size=levels[index - 1].shape[-2:], mode="bilinear", align_corners=False)
            flow[:, :2] *= 1.0 / params.scale_step
    return flow[:, :2].contiguous()


def auto_batch_size(
    height: int, width: int, device: str | torch.device, params: TVL1Params, fused: bool | None = None
) -> int:
    """Pairs per call: as many as fit in free GPU memory, or a cache-sized batch on the CPU.

    On a GPU the biggest batch keeps the device busiest, at about FUSED_BYTES_PER_PIXEL (or, with
    the inner iterations as PyTorch operations, BYTES_PER_PIXEL) per pixel of a pair, half as much
    again with gamma's third flow channel. On the CPU a bigger batch only spills the working set
    out of the caches, while a single pair pays the per-operation overhead on the coarse levels;
    CPU_BATCH_PIXELS is the measured best (``cprcoach flow bench`` prints the GPU's peak memory
    per pixel, to check the GPU's figures against).
    """
    device = torch.device(device)
    pixels = height * width
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        fused = fused is None or fused
        per_pixel = FUSED_BYTES_PER_PIXEL if fused else BYTES_PER_PIXEL
        per_pair = per_pixel * pixels * (1.5 if params.gamma != 0 else 1.0)
        fitting = max(1, int(free * CUDA_MEMORY_FRACTION / per_pair))
        if not fused:
            return fitting
        from cprcoach.flow.launch import FUSED_MAX_BATCH

        return min(fitting, FUSED_MAX_BATCH)
    return max(1, CPU_BATCH_PIXELS // pixels)


def flow_torch(
    frames: np.ndarray,
    params: TVL1Params,
    device: str | torch.device = "cpu",
    batch_size: int | None = None,
    fused: bool | None = None,
    bound: float | None = None,
) -> np.ndarray:
    """Flow between consecutive frames of a grey uint8 clip (T, H, W), as (T - 1, H, W, 2) float32.

    fused: the inner iterations as Triton kernels (the default on a GPU), see tvl1_torch.
    bound: quantize to uint8 on the device (cprcoach.flow.quantize), a quarter of the bytes to copy.
    On a GPU the result is copied into page-locked memory, which the copy engine writes directly.
    """
    if frames.ndim != 3:
        raise ValueError(f"expected a grey clip (T, H, W), got shape {frames.shape}")
    check_clip_length(len(frames))
    pairs, height, width = len(frames) - 1, frames.shape[1], frames.shape[2]
    batch_size = batch_size or auto_batch_size(height, width, device, params, fused)
    dtype = torch.float32 if bound is None else torch.uint8
    pinned = torch.device(device).type == "cuda"
    flows = torch.empty((pairs, height, width, 2), dtype=dtype, pin_memory=pinned)
    for start in range(0, pairs, batch_size):  # range() keeps the last, partial batch
        stop = min(start + batch_size, pairs)
        clip = torch.from_numpy(np.ascontiguousarray(frames[start : stop + 1])).to(device).float()
        flow = tvl1_torch(clip[:-1], clip[1:], params, fused).permute(0, 2, 3, 1)
        flows[start:stop] = flow if bound is None else quantize(flow, bound)
    return flows.numpy()
