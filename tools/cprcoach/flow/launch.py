"""What every fused TV-L1 kernel shares: a program's tile of pixels, the launch grid, the tensors' checks.

With TRITON_INTERPRET=1 set before the kernels are imported they run on the CPU, which is how the
tests check them against the PyTorch solver on a machine without a GPU.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from triton.runtime.interpreter import InterpretedFunction

FUSED_MAX_BATCH = 65535  # pairs per launch of the fused kernels: a CUDA grid's height


@triton.jit
def tile_pixels(index, height, width, TILE: tl.constexpr):
    """Tile `index` of a frame, TILE consecutive pixels: their offsets, rows, columns, and which are in the frame.

    Consecutive pixels stream through memory best, better than square-ish tiles (README, Optical
    flow, "The solver's constants").
    """
    offsets = index * TILE + tl.arange(0, TILE)
    rows = offsets // width
    return offsets, rows, offsets - rows * width, offsets < height * width


@triton.jit
def clamp(index, size):
    """Replicated border: the index moved into 0..size - 1."""
    return tl.minimum(tl.maximum(index, 0), size - 1)


def launch_grid(tiles: int, pairs: int) -> tuple[int, int]:
    """A launch grid: a frame's programs along x, so the programs that run together share rows, and pairs along y."""
    if pairs > FUSED_MAX_BATCH:
        raise ValueError(
            f"the fused TV-L1 kernels take at most {FUSED_MAX_BATCH} pairs at once (a CUDA grid's height), not"
            f" {pairs}: set flow.batch_size to {FUSED_MAX_BATCH} or fewer"
        )
    return tiles, pairs


def check_tensors(*tensors: torch.Tensor, dtypes: tuple[torch.dtype, ...] = (torch.float32,)) -> None:
    """The kernels index raw memory: contiguous tensors of dtypes on a GPU, or on the CPU under the interpreter."""
    for tensor in tensors:
        if not tensor.is_contiguous() or tensor.dtype not in dtypes:
            names = " or ".join(str(dtype).removeprefix("torch.") for dtype in dtypes)
            raise ValueError(
                f"the fused TV-L1 kernels take contiguous {names} tensors here, not {tensor.dtype} {tensor.stride()}"
            )
        if not tensor.is_cuda and not isinstance(tile_pixels, InterpretedFunction):
            raise ValueError(
                "the fused TV-L1 kernels run on a CUDA device, or on the CPU only with TRITON_INTERPRET=1 set before"
                " the kernels are imported"
            )
