"""cv::medianBlur of the flow as one Triton kernel: each pixel's window reduced by sorting networks.

The networks are those of the PyTorch median (cprcoach.flow.median), written out as
compare-exchanges; between outer iterations the solver filters only the pairs still iterating.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from cprcoach.flow.launch import check_tensors, clamp, launch_grid, tile_pixels
from cprcoach.flow.median import median_filter

MEDIAN_TILE = 256  # the median filter holds a window per pixel: smaller tiles than the other kernels


@triton.jit
def _exchange(a, b):
    return tl.minimum(a, b), tl.maximum(a, b)


@triton.jit
def _sort5(a, b, c, d, e):
    """An optimal sorting network of five (cprcoach.flow.median.SORT5)."""
    a, b = _exchange(a, b)
    d, e = _exchange(d, e)
    c, e = _exchange(c, e)
    c, d = _exchange(c, d)
    a, d = _exchange(a, d)
    a, c = _exchange(a, c)
    b, e = _exchange(b, e)
    b, d = _exchange(b, d)
    b, c = _exchange(b, c)
    return a, b, c, d, e


@triton.jit
def _merge5(a0, a1, a2, a3, a4, b0, b1, b2, b3, b4):
    """Two sorted fives merged into a sorted ten (Batcher's odd-even merge, as median._merge_plan(5) gives it)."""
    lo0, hi0 = _exchange(a0, b0)
    lo4, hi4 = _exchange(a4, b4)
    lo4, hi0 = _exchange(lo4, hi0)
    lo2, hi2 = _exchange(a2, b2)
    lo2, lo4 = _exchange(lo2, lo4)
    hi2, hi0 = _exchange(hi2, hi0)
    lo1, hi1 = _exchange(a1, b1)
    lo3, hi3 = _exchange(a3, b3)
    lo3, hi1 = _exchange(lo3, hi1)
    lo1, lo2 = _exchange(lo1, lo2)
    lo3, lo4 = _exchange(lo3, lo4)
    hi1, hi2 = _exchange(hi1, hi2)
    hi3, hi0 = _exchange(hi3, hi0)
    return lo0, lo1, lo2, lo3, lo4, hi1, hi2, hi3, hi0, hi4


@triton.jit
def _middle_of_twenty(a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, b0, b1, b2, b3, b4, b5, b6, b7, b8, b9):
    """Ranks 7 to 12 of two sorted tens together, the compare-exchanges of median._merge_plan(10, 7..12)."""
    e0, e1 = _exchange(tl.minimum(a8, b8), tl.maximum(a0, b0))
    e2, e3 = _exchange(a4, b4)
    e4 = tl.maximum(e2, e0)
    e5 = tl.minimum(e3, e1)
    e6, e7 = _exchange(tl.minimum(a6, b6), tl.maximum(a2, b2))
    e8 = tl.maximum(e6, e4)
    e9, e10 = _exchange(e7, e5)
    o0, o1 = _exchange(tl.minimum(a9, b9), tl.maximum(a1, b1))
    o2, o3 = _exchange(a5, b5)
    o4 = tl.maximum(o2, o0)
    o5 = tl.minimum(o3, o1)
    o6, o7 = _exchange(tl.minimum(a7, b7), tl.maximum(a3, b3))
    o8, o9 = _exchange(o6, o4)
    o10 = tl.minimum(o7, o5)
    r7, r8 = _exchange(o8, e8)
    r9, r10 = _exchange(o9, e9)
    r11, r12 = _exchange(o10, e10)
    return r7, r8, r9, r10, r11, r12


@triton.jit
def _median25(source, row0, row1, row2, row3, row4, col, width):
    """Median of the 5x5 window: five sorted columns, the first four merged, then the fifth column.

    The 13th of 25 from a sorted 20 (A) and a sorted 5 (B) is
    min(A12, max(A11, B0), max(A10, B1), max(A9, B2), max(A8, B3), max(A7, B4)).
    """
    a0, a1, a2, a3, a4 = _column5(source, row0, row1, row2, row3, row4, clamp(col - 2, width))
    b0, b1, b2, b3, b4 = _column5(source, row0, row1, row2, row3, row4, clamp(col - 1, width))
    c0, c1, c2, c3, c4 = _column5(source, row0, row1, row2, row3, row4, col)
    d0, d1, d2, d3, d4 = _column5(source, row0, row1, row2, row3, row4, clamp(col + 1, width))
    f0, f1, f2, f3, f4 = _column5(source, row0, row1, row2, row3, row4, clamp(col + 2, width))
    p0, p1, p2, p3, p4, p5, p6, p7, p8, p9 = _merge5(a0, a1, a2, a3, a4, b0, b1, b2, b3, b4)
    q0, q1, q2, q3, q4, q5, q6, q7, q8, q9 = _merge5(c0, c1, c2, c3, c4, d0, d1, d2, d3, d4)
    r7, r8, r9, r10, r11, r12 = _middle_of_twenty(
        p0, p1, p2, p3, p4, p5, p6, p7, p8, p9, q0, q1, q2, q3, q4, q5, q6, q7, q8, q9
    )
    median = tl.minimum(r12, tl.maximum(r11, f0))
    median = tl.minimum(median, tl.maximum(r10, f1))
    median = tl.minimum(median, tl.maximum(r9, f2))
    median = tl.minimum(median, tl.maximum(r8, f3))
    return tl.minimum(median, tl.maximum(r7, f4))


@triton.jit
def _column5(source, row0, row1, row2, row3, row4, col):
    return _sort5(
        tl.load(source + row0 + col),
        tl.load(source + row1 + col),
        tl.load(source + row2 + col),
        tl.load(source + row3 + col),
        tl.load(source + row4 + col),
    )


@triton.jit
def _median9(source, row0, row1, row2, col, width):
    """Median of the 3x3 window: med3(max of the column minima, med3 of the middles, min of the maxima)."""
    a0, a1, a2 = _column3(source, row0, row1, row2, clamp(col - 1, width))
    b0, b1, b2 = _column3(source, row0, row1, row2, col)
    c0, c1, c2 = _column3(source, row0, row1, row2, clamp(col + 1, width))
    low = tl.maximum(tl.maximum(a0, b0), c0)
    high = tl.minimum(tl.minimum(a2, b2), c2)
    return _median3(low, _median3(a1, b1, c1), high)


@triton.jit
def _column3(source, row0, row1, row2, col):
    a = tl.load(source + row0 + col)
    b = tl.load(source + row1 + col)
    c = tl.load(source + row2 + col)
    a, b = _exchange(a, b)
    b, c = _exchange(b, c)
    a, b = _exchange(a, b)
    return a, b, c


@triton.jit
def _median3(a, b, c):
    return tl.maximum(tl.minimum(a, b), tl.minimum(tl.maximum(a, b), c))


@triton.jit(do_not_specialize=["flow_stride"])
def median_kernel(
    flow_ptr,
    out_ptr,
    active_ptr,
    height,
    width,
    flow_stride,
    SIZE: tl.constexpr,
    TILE: tl.constexpr,
):
    """cv::medianBlur of flow channels 0 and 1 (SIZE 3 or 5, replicated borders) into out (pairs, 2, H, W).

    Each pixel's window is loaded whole (clamped, so no load is masked: pixels past the frame read
    its edge) and reduced by sorting networks.
    """
    pair = tl.load(active_ptr + tl.program_id(1)).to(tl.int64)
    offsets, rows, cols, inside = tile_pixels(tl.program_id(0), height, width, TILE)
    pixels = height * width
    row = tl.minimum(rows, height - 1)
    col = tl.minimum(cols, width - 1)
    for channel in tl.static_range(2):
        source = flow_ptr + pair * flow_stride + channel * pixels
        if SIZE == 5:
            median = _median25(
                source,
                clamp(row - 2, height) * width,
                clamp(row - 1, height) * width,
                row * width,
                clamp(row + 1, height) * width,
                clamp(row + 2, height) * width,
                col,
                width,
            )
        else:
            median = _median9(
                source, clamp(row - 1, height) * width, row * width, clamp(row + 1, height) * width, col, width
            )
        tl.store(out_ptr + (pair * 2 + channel) * pixels + offsets, median, mask=inside)


def median_of_active_pairs(flow: torch.Tensor, out: torch.Tensor, active: torch.Tensor, size: int) -> None:
    """The median-filtered flow of the active pairs into out: by the kernel for 3 and 5 (OpenCV's sizes).

    Pairs that converged on the last iteration are still listed, and filtered for nothing: the
    next primal step finds them done and leaves their flow as it was.
    """
    check_tensors(flow, out)
    batch, channels, height, width = flow.shape
    if size in (3, 5):
        median_grid = launch_grid(triton.cdiv(height * width, MEDIAN_TILE), len(active))
        median_kernel[median_grid](
            flow, out, active, height, width, channels * height * width, SIZE=size, TILE=MEDIAN_TILE
        )
        return
    index = active.long()
    out[index] = median_filter(flow[index, :2], size)
