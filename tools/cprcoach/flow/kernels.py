"""TV-L1 as Triton kernels: the warp's linearisation, the inner iteration and the median filter.

Written as whole-tensor PyTorch, one inner iteration is some twenty passes over the batch and
moves about 440 bytes per pixel of a pair. Here the dual step of one inner iteration and the
primal step of the next (TH step, divergence, change) are one kernel, which reads the solver
state once and writes it once, to a second buffer: 44 bytes per pixel with the dual variable in
float16 (tvl1.FUSED_DUAL_DTYPE; every sum and product is float32). The divergence at a
pixel needs its left and upper neighbours' new dual variable, which other programs write, so the
kernel computes those again from the old one. An outer iteration's first primal step (which reads
the median-filtered flow) and last dual step are kernels of their own.

The kernels keep the per-pair stopping test on the GPU: the primal step of iteration k sums the
previous iteration's per-tile squared changes in a fixed order (so every program of a pair takes
the same decision), and a pair that converged records the iteration in `done_at` and is skipped
from then on. No iteration waits for the host. The warp (a bicubic remap of I1 and its gradient
and rho's constant part) and the median filter are one kernel each, where PyTorch takes tens of
passes.

Layouts, per pair: the flow (C, H, W); the dual variable q = p / (tau / theta) as (2, C, H, W) in
float16 or float32, its x parts first; the linearised data (I1wx, I1wy, rho_c) as (3, H, W). A
program takes consecutive pixels of one pair, TILE of them at a time. Grids are (programs along the
frame, active pairs), the active pairs listed by index into the batch, so the programs that run
together share rows in the L2 cache.

With TRITON_INTERPRET=1 set before this module is imported, the kernels run on the CPU, which is
how the tests check them against the PyTorch solver on a machine without a GPU.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from triton.runtime.interpreter import InterpretedFunction

from cprcoach.flow.params import TVL1Params
from cprcoach.flow.tvl1 import FUSED_MAX_BATCH, median_filter

TILE = 512  # pixels a program handles at once in the linearisation and the primal and dual steps
# Every program of a primal step sums its pair's per-program changes for the stopping test, so in
# a frame of more than MAX_TILES tiles (above 131k pixels) the primal steps' programs take
# LARGE_FRAME_TILES tiles each, one after another: the sums stay few and the registers one tile's.
MAX_TILES = 256
LARGE_FRAME_TILES = 8
# The dual and primal step in one holds its neighbours' dual step too: 103-105 registers a thread
# at 4 warps per tile of 512 (on sm_90: 4 blocks, 16 warps an SM), 55-64 at 8 (4 blocks, 32 warps).
# Measured on an H100 in one run (2048 pairs at 340x256, uint8 out): 1377 pairs/s at 8 warps, 1280 at
# 4, 1232 at 16.
DUAL_PRIMAL_WARPS = 8
MEDIAN_TILE = 256  # the median filter holds a window per pixel: smaller tiles
PARTIAL_CHUNK = 128  # per-program squared changes summed at a time by the stopping test
NOT_DONE = 2**30  # done_at of a pair still iterating
FLT_EPSILON = tl.constexpr(1.1920928955078125e-07)  # float32 machine epsilon
CUBIC_A = tl.constexpr(-0.75)  # the bicubic kernel of OpenCV's remap and PyTorch's grid_sample


@triton.jit
def _tile(index, height, width, TILE: tl.constexpr):
    """Tile `index` of a frame, TILE consecutive pixels: their offsets, rows, columns, and which are in the frame.

    Consecutive pixels stream through memory best: measured on an H200, the primal and dual steps
    move 3.9 TB/s in tiles of 512 pixels, 2.2-2.8 TB/s in square-ish tiles of 32x32 to 4x128.
    """
    offsets = index * TILE + tl.arange(0, TILE)
    rows = offsets // width
    return offsets, rows, offsets - rows * width, offsets < height * width


@triton.jit
def _cubic_weight(t, TAP: tl.constexpr):
    """Weight of tap TAP (0-3, at floor(x) - 1 + TAP) for the fraction t of x: Keys' cubic with a = -0.75."""
    if TAP == 0:
        d = t + 1.0
    elif TAP == 1:
        d = t
    elif TAP == 2:
        d = 1.0 - t
    else:
        d = 2.0 - t
    if TAP == 1 or TAP == 2:
        weight = ((CUBIC_A + 2.0) * d - (CUBIC_A + 3.0)) * d * d + 1.0
    else:
        weight = ((CUBIC_A * d - 5.0 * CUBIC_A) * d + 8.0 * CUBIC_A) * d - 4.0 * CUBIC_A
    return weight


@triton.jit
def linearise(
    i0_ptr,
    i1_ptr,
    flow_ptr,
    data_ptr,
    height,
    width,
    CHANNELS: tl.constexpr,
    TILE: tl.constexpr,
):
    """(I1wx, I1wy, rho_c) of every pair: I1 and its gradient (3, H, W) sampled bicubically at p + u(p).

    Taps outside the frame count as 0, as grid_sample's zeros padding and OpenCV's remap have it.
    Positions are pixel coordinates in float32, so a whole-pixel flow samples exactly.
    """
    pair = tl.program_id(1).to(tl.int64)
    offsets, rows, cols, inside = _tile(tl.program_id(0), height, width, TILE)
    pixels = height * width
    flow = flow_ptr + pair * CHANNELS * pixels + offsets
    u1 = tl.load(flow, mask=inside, other=0.0)
    u2 = tl.load(flow + pixels, mask=inside, other=0.0)
    x = cols.to(tl.float32) + u1
    y = rows.to(tl.float32) + u2
    x_floor = tl.floor(x)
    y_floor = tl.floor(y)
    tx = x - x_floor
    ty = y - y_floor
    left = x_floor.to(tl.int32) - 1
    top = y_floor.to(tl.int32) - 1
    image = i1_ptr + pair * 3 * pixels
    i1w = tl.zeros((TILE,), dtype=tl.float32)
    i1wx = tl.zeros((TILE,), dtype=tl.float32)
    i1wy = tl.zeros((TILE,), dtype=tl.float32)
    for tap_y in tl.static_range(4):
        row = top + tap_y
        row_inside = inside & (row >= 0) & (row < height)
        row_weight = _cubic_weight(ty, tap_y)
        for tap_x in tl.static_range(4):
            col = left + tap_x
            valid = row_inside & (col >= 0) & (col < width)
            source = image + row * width + col
            weight = row_weight * _cubic_weight(tx, tap_x)
            i1w += weight * tl.load(source, mask=valid, other=0.0)
            i1wx += weight * tl.load(source + pixels, mask=valid, other=0.0)
            i1wy += weight * tl.load(source + 2 * pixels, mask=valid, other=0.0)
    i0 = tl.load(i0_ptr + pair * pixels + offsets, mask=inside, other=0.0)
    data = data_ptr + pair * 3 * pixels + offsets
    tl.store(data, i1wx, mask=inside)
    tl.store(data + pixels, i1wy, mask=inside)
    tl.store(data + 2 * pixels, i1w - i1wx * u1 - i1wy * u2 - i0, mask=inside)


@triton.jit
def _previous_change_is_small(partial_ptr, pair, iteration, n_pairs, programs, scaled_epsilon, CHUNK: tl.constexpr):
    """Whether the pair's squared change in iteration - 1 was at most epsilon (never before iteration 2)."""
    row = partial_ptr + ((iteration - 1) % 2 * n_pairs + pair) * programs
    total = 0.0
    for start in range(0, programs, CHUNK):
        offsets = start + tl.arange(0, CHUNK)
        total += tl.sum(tl.load(row + offsets, mask=offsets < programs, other=0.0))
    return (iteration > 1) & (total <= scaled_epsilon)


@triton.jit
def _threshold_step(data, pixels, inside, u1, u2, u3, lambda_theta, gamma, CHANNELS: tl.constexpr):
    """The TH step's (I1wx, I1wy, t), where v = u + t (I1wx, I1wy, gamma)."""
    i1wx = tl.load(data, mask=inside, other=0.0)
    i1wy = tl.load(data + pixels, mask=inside, other=0.0)
    rho = tl.load(data + 2 * pixels, mask=inside, other=0.0) + i1wx * u1 + i1wy * u2
    if CHANNELS == 3:
        rho += gamma * u3
    # OpenCV's three-way test (rho < -l_t grad, rho > l_t grad, grad > FLT_EPSILON) as a clamp
    neg_inv_grad = -1.0 / tl.maximum(i1wx * i1wx + i1wy * i1wy, FLT_EPSILON)
    return i1wx, i1wy, tl.minimum(tl.maximum(rho * neg_inv_grad, -lambda_theta), lambda_theta)


@triton.jit
def _component(channel: tl.constexpr, first, second, third):
    """first, second or third, for flow channel 0, 1 or 2 of a static loop over the channels."""
    if channel == 0:
        value = first
    elif channel == 1:
        value = second
    else:
        value = third
    return value


@triton.jit
def _dual_norm(dx, dy, tau_theta):
    """The dual step's denominator: q = (q + grad u) / (1 + tau / theta |grad u|)."""
    return 1.0 + tau_theta * tl.sqrt(dx * dx + dy * dy)


@triton.jit
def _forward_differences(u, here, width, right, down):
    """grad u at the tile by forward differences, 0 at the last column and row."""
    dx = tl.where(right, tl.load(u + 1, mask=right, other=0.0) - here, 0.0)
    dy = tl.where(down, tl.load(u + width, mask=down, other=0.0) - here, 0.0)
    return dx, dy


@triton.jit
def _load_dual(q, mask):
    """q where mask (0 elsewhere), from the dual buffer's storage type into float32."""
    return tl.load(q, mask=mask, other=0.0).to(tl.float32)


@triton.jit
def _as_stored(value, q):
    """value rounded as the dual buffer at q stores it, so every program computes with the stored q."""
    return value.to(q.dtype.element_ty).to(tl.float32)


@triton.jit
def _dual_step_of_channel(u, here, q, q_out, qy_offset, width, inside, right, down, tau_theta):
    """One channel's dual step at the tile (where u is `here`), from q into q_out; returns the new (qx, qy)."""
    dx, dy = _forward_differences(u, here, width, right, down)
    norm = _dual_norm(dx, dy, tau_theta)
    qx = _as_stored((_load_dual(q, inside) + dx) / norm, q_out)
    qy = _as_stored((_load_dual(q + qy_offset, inside) + dy) / norm, q_out)
    tl.store(q_out, qx, mask=inside)
    tl.store(q_out + qy_offset, qy, mask=inside)
    return qx, qy


@triton.jit
def _dual_step_of_tile(
    index, pair, flow_ptr, dual_ptr, dual_out_ptr, height, width, tau_theta, CHANNELS: tl.constexpr, TILE: tl.constexpr
):
    """The dual step of every channel at tile `index` of the pair, from dual_ptr into dual_out_ptr."""
    offsets, rows, cols, inside = _tile(index, height, width, TILE)
    pixels = height * width
    right = inside & (cols < width - 1)
    down = inside & (rows < height - 1)
    flow = flow_ptr + pair * CHANNELS * pixels + offsets
    dual_offsets = pair * 2 * CHANNELS * pixels + offsets
    for channel in tl.static_range(CHANNELS):
        u = flow + channel * pixels
        q = dual_offsets + channel * pixels
        here = tl.load(u, mask=inside, other=0.0)
        _dual_step_of_channel(
            u, here, dual_ptr + q, dual_out_ptr + q, CHANNELS * pixels, width, inside, right, down, tau_theta
        )


@triton.jit
def _divergence(qx, qy_offset, width, inside, left, up):
    """Backward-difference divergence of one channel's q at the tile; q is 0 left of and above the frame."""
    qy = qx + qy_offset
    div = _load_dual(qx, inside) - _load_dual(qx - 1, left)
    return div + _load_dual(qy, inside) - _load_dual(qy - width, up)


@triton.jit
def _divergence_after_dual_step(u, here, q, q_out, qy_offset, width, inside, left, up, right, down, tau_theta):
    """One channel's dual step at the tile, then the backward-difference divergence of the new q.

    The divergence needs the new q of the left and upper neighbours too, which other programs
    write: each is computed again here from the old q and u, so no program waits for another.
    """
    qx, qy = _dual_step_of_channel(u, here, q, q_out, qy_offset, width, inside, right, down, tau_theta)
    # the left neighbour's x part: its right neighbour is this pixel, and it has a lower one where this one does
    left_u = tl.load(u - 1, mask=left, other=0.0)
    left_down = left & down
    left_dx = here - left_u
    left_dy = tl.where(left_down, tl.load(u - 1 + width, mask=left_down, other=0.0) - left_u, 0.0)
    left_qx = _as_stored((_load_dual(q - 1, left) + left_dx) / _dual_norm(left_dx, left_dy, tau_theta), q_out)
    # the upper neighbour's y part: its lower neighbour is this pixel, and it has a right one where this one does
    up_u = tl.load(u - width, mask=up, other=0.0)
    up_right = up & right
    up_dx = tl.where(up_right, tl.load(u - width + 1, mask=up_right, other=0.0) - up_u, 0.0)
    up_dy = here - up_u
    up_qy = _as_stored((_load_dual(q + qy_offset - width, up) + up_dy) / _dual_norm(up_dx, up_dy, tau_theta), q_out)
    return qx - tl.where(left, left_qx, 0.0) + qy - tl.where(up, up_qy, 0.0)


@triton.jit
def _primal_step_of_tile(
    index,
    pair,
    flow_ptr,
    start_ptr,
    start_stride,
    dual_ptr,
    dual_out_ptr,
    data_ptr,
    flow_out_ptr,
    height,
    width,
    tau,
    tau_theta,
    lambda_theta,
    gamma,
    CHANNELS: tl.constexpr,
    TILE: tl.constexpr,
    DUAL_FIRST: tl.constexpr,
):
    """The primal step at tile `index` of the pair, into flow_out_ptr; returns the tile's squared change.

    The flow's first two channels come from start_ptr, the third from flow_ptr. With DUAL_FIRST
    the dual step comes first, from dual_ptr into dual_out_ptr with tau_theta, and the divergence
    takes its q; without, the divergence takes dual_ptr's q, and dual_out_ptr and tau_theta are unused.
    """
    offsets, rows, cols, inside = _tile(index, height, width, TILE)
    pixels = height * width
    start = start_ptr + pair * start_stride + offsets
    u1 = tl.load(start, mask=inside, other=0.0)
    u2 = tl.load(start + pixels, mask=inside, other=0.0)
    u3 = 0.0
    if CHANNELS == 3:
        u3 = tl.load(flow_ptr + (pair * CHANNELS + 2) * pixels + offsets, mask=inside, other=0.0)
    data = data_ptr + pair * 3 * pixels + offsets
    i1wx, i1wy, step = _threshold_step(data, pixels, inside, u1, u2, u3, lambda_theta, gamma, CHANNELS)
    left = inside & (cols > 0)
    up = inside & (rows > 0)
    right = inside & (cols < width - 1)
    down = inside & (rows < height - 1)
    flow = flow_ptr + pair * CHANNELS * pixels + offsets
    dual = dual_ptr + pair * 2 * CHANNELS * pixels + offsets
    dual_out = dual_out_ptr + pair * 2 * CHANNELS * pixels + offsets
    flow_out = flow_out_ptr + pair * CHANNELS * pixels + offsets
    change = tl.zeros((TILE,), dtype=tl.float32)
    for channel in tl.static_range(CHANNELS):
        u = _component(channel, u1, u2, u3)
        v = u + step * _component(channel, i1wx, i1wy, gamma)
        shift = channel * pixels
        if DUAL_FIRST:
            divergence = _divergence_after_dual_step(
                flow + shift,
                u,
                dual + shift,
                dual_out + shift,
                CHANNELS * pixels,
                width,
                inside,
                left,
                up,
                right,
                down,
                tau_theta,
            )
        else:
            divergence = _divergence(dual + shift, CHANNELS * pixels, width, inside, left, up)
        new = v + tau * divergence
        tl.store(flow_out + shift, new, mask=inside)
        change += (new - u) * (new - u)
    return tl.sum(tl.where(inside, change, 0.0))


@triton.jit(do_not_specialize=["n_pairs", "programs", "tiles_per_program", "start_stride", "iteration"])
def primal_step(
    flow_ptr,
    start_ptr,
    dual_ptr,
    data_ptr,
    flow_out_ptr,
    partial_ptr,
    done_ptr,
    active_ptr,
    n_pairs,
    height,
    width,
    programs,
    tiles_per_program,
    start_stride,
    iteration,
    scaled_epsilon,
    tau,
    lambda_theta,
    gamma,
    CHANNELS: tl.constexpr,
    TILE: tl.constexpr,
    CHUNK: tl.constexpr,
):
    """An outer iteration's first inner one: u = v + tau div q into flow_out, and each program's squared change.

    First the stopping test: a pair whose previous iteration changed it by at most epsilon is
    marked done (by its first program) and left as it is. The flow's first two channels are read
    from start_ptr (the median-filtered flow, or the flow itself), the third from flow_ptr. Each
    program takes tiles_per_program consecutive tiles of the frame.
    """
    pair = tl.load(active_ptr + tl.program_id(1)).to(tl.int64)
    if tl.load(done_ptr + pair) >= iteration:
        if _previous_change_is_small(partial_ptr, pair, iteration, n_pairs, programs, scaled_epsilon, CHUNK):
            if tl.program_id(0) == 0:
                tl.store(done_ptr + pair, iteration - 1)
        else:
            change = 0.0
            for tile in range(tiles_per_program):
                change += _primal_step_of_tile(
                    tl.program_id(0) * tiles_per_program + tile,
                    pair,
                    flow_ptr,
                    start_ptr,
                    start_stride,
                    dual_ptr,
                    dual_ptr,
                    data_ptr,
                    flow_out_ptr,
                    height,
                    width,
                    tau,
                    0.0,
                    lambda_theta,
                    gamma,
                    CHANNELS,
                    TILE,
                    DUAL_FIRST=False,
                )
            tl.store(partial_ptr + (iteration % 2 * n_pairs + pair) * programs + tl.program_id(0), change)


@triton.jit(do_not_specialize=["n_pairs", "programs", "tiles_per_program", "iteration"])
def dual_primal_step(
    flow_ptr,
    dual_ptr,
    data_ptr,
    flow_out_ptr,
    dual_out_ptr,
    partial_ptr,
    done_ptr,
    active_ptr,
    n_pairs,
    height,
    width,
    programs,
    tiles_per_program,
    iteration,
    scaled_epsilon,
    tau,
    tau_theta,
    lambda_theta,
    gamma,
    CHANNELS: tl.constexpr,
    TILE: tl.constexpr,
    CHUNK: tl.constexpr,
):
    """The dual step of `iteration` and the primal step of the next, in one pass over the state.

    u and q are read from flow_ptr and dual_ptr and the new ones written to flow_out_ptr and
    dual_out_ptr: 44 bytes per pixel, where the two steps as kernels of their own move 60.
    A pair that `iteration` changed by at most epsilon takes the dual step only, and is marked
    done at `iteration`. Each program takes tiles_per_program consecutive tiles of the frame.
    """
    pair = tl.load(active_ptr + tl.program_id(1)).to(tl.int64)
    if tl.load(done_ptr + pair) >= iteration:
        # the test of the primal step of iteration + 1, which is this kernel's
        if _previous_change_is_small(partial_ptr, pair, iteration + 1, n_pairs, programs, scaled_epsilon, CHUNK):
            if tl.program_id(0) == 0:
                tl.store(done_ptr + pair, iteration)
            for tile in range(tiles_per_program):
                _dual_step_of_tile(
                    tl.program_id(0) * tiles_per_program + tile,
                    pair,
                    flow_ptr,
                    dual_ptr,
                    dual_out_ptr,
                    height,
                    width,
                    tau_theta,
                    CHANNELS,
                    TILE,
                )
        else:
            change = 0.0
            for tile in range(tiles_per_program):
                change += _primal_step_of_tile(
                    tl.program_id(0) * tiles_per_program + tile,
                    pair,
                    flow_ptr,
                    flow_ptr,
                    CHANNELS * height * width,
                    dual_ptr,
                    dual_out_ptr,
                    data_ptr,
                    flow_out_ptr,
                    height,
                    width,
                    tau,
                    tau_theta,
                    lambda_theta,
                    gamma,
                    CHANNELS,
                    TILE,
                    DUAL_FIRST=True,
                )
            tl.store(partial_ptr + ((iteration + 1) % 2 * n_pairs + pair) * programs + tl.program_id(0), change)


@triton.jit(do_not_specialize=["iteration"])
def dual_step(
    flow_ptr,
    dual_ptr,
    dual_out_ptr,
    done_ptr,
    active_ptr,
    height,
    width,
    iteration,
    tau_theta,
    CHANNELS: tl.constexpr,
    TILE: tl.constexpr,
):
    """An outer iteration's last dual step, from dual_ptr into dual_out_ptr."""
    pair = tl.load(active_ptr + tl.program_id(1)).to(tl.int64)
    if tl.load(done_ptr + pair) >= iteration:
        _dual_step_of_tile(
            tl.program_id(0), pair, flow_ptr, dual_ptr, dual_out_ptr, height, width, tau_theta, CHANNELS, TILE
        )


@triton.jit
def _exchange(a, b):
    return tl.minimum(a, b), tl.maximum(a, b)


@triton.jit
def _sort5(a, b, c, d, e):
    """An optimal sorting network of five (tvl1.SORT5)."""
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
    """Two sorted fives merged into a sorted ten (Batcher's odd-even merge, as tvl1._merge_plan(5) gives it)."""
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
    """Ranks 7 to 12 of two sorted tens together, the compare-exchanges of tvl1._merge_plan(10, 7..12)."""
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
    a0, a1, a2, a3, a4 = _column5(source, row0, row1, row2, row3, row4, _clamp(col - 2, width))
    b0, b1, b2, b3, b4 = _column5(source, row0, row1, row2, row3, row4, _clamp(col - 1, width))
    c0, c1, c2, c3, c4 = _column5(source, row0, row1, row2, row3, row4, col)
    d0, d1, d2, d3, d4 = _column5(source, row0, row1, row2, row3, row4, _clamp(col + 1, width))
    f0, f1, f2, f3, f4 = _column5(source, row0, row1, row2, row3, row4, _clamp(col + 2, width))
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
    a0, a1, a2 = _column3(source, row0, row1, row2, _clamp(col - 1, width))
    b0, b1, b2 = _column3(source, row0, row1, row2, col)
    c0, c1, c2 = _column3(source, row0, row1, row2, _clamp(col + 1, width))
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


@triton.jit
def _clamp(index, size):
    """Replicated border: the index moved into 0..size - 1."""
    return tl.minimum(tl.maximum(index, 0), size - 1)


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
    offsets, rows, cols, inside = _tile(tl.program_id(0), height, width, TILE)
    pixels = height * width
    row = tl.minimum(rows, height - 1)
    col = tl.minimum(cols, width - 1)
    for channel in tl.static_range(2):
        source = flow_ptr + pair * flow_stride + channel * pixels
        if SIZE == 5:
            median = _median25(
                source,
                _clamp(row - 2, height) * width,
                _clamp(row - 1, height) * width,
                row * width,
                _clamp(row + 1, height) * width,
                _clamp(row + 2, height) * width,
                col,
                width,
            )
        else:
            median = _median9(
                source, _clamp(row - 1, height) * width, row * width, _clamp(row + 1, height) * width, col, width
            )
        tl.store(out_ptr + (pair * 2 + channel) * pixels + offsets, median, mask=inside)


def solve_warp(
    flow: torch.Tensor, dual: torch.Tensor, data: torch.Tensor, params: TVL1Params, scaled_epsilon: float
) -> torch.Tensor:
    """Every outer and inner iteration of one warp, on flow (B, C, H, W) and dual (B, 2, C, H, W) in place.

    The dual is float16 or float32, the rest float32. data is (B, 3, H, W): I1wx, I1wy and rho_c.
    Within an outer iteration, the dual step of one inner iteration and the primal step of the next
    are one kernel, which reads the state from one buffer and writes it to another: u of iteration k
    lives in flows[k % 2], q of iteration k in duals[k % 2], and at the end each pair's last
    iteration says where its state is. The host waits for the GPU once per outer iteration, to drop
    the pairs that have converged from the grids; within one, a pair that converges is skipped by
    the kernels themselves.

    Returns the inner iterations each pair ran, (B,) int32.
    """
    _check_tensors(flow, data)
    _check_tensors(dual, dtypes=(torch.float16, torch.float32))
    batch, channels, height, width = flow.shape
    pixels = height * width
    tiles = triton.cdiv(pixels, TILE)
    tiles_per_program = 1 if tiles <= MAX_TILES else LARGE_FRAME_TILES
    programs = triton.cdiv(tiles, tiles_per_program)  # of a primal step, each with a squared change
    flows, duals = (flow, torch.empty_like(flow)), (dual, torch.empty_like(dual))
    partial = flow.new_zeros(2, batch, programs)
    done_at = torch.full((batch,), NOT_DONE, dtype=torch.int32, device=flow.device)
    active = torch.arange(batch, dtype=torch.int32, device=flow.device)
    median = flow.new_empty(batch, 2, height, width) if params.median_filtering > 1 else None
    lambda_theta, tau_theta = params.lambda_ * params.theta, params.tau / params.theta
    layout = {"CHANNELS": channels, "TILE": TILE}
    iteration = 0
    for outer in range(params.outer_iterations):
        if outer:
            active = torch.nonzero(done_at == NOT_DONE).flatten().to(torch.int32)
            if not len(active):
                break
        primal_grid, dual_grid = _grid(programs, len(active)), _grid(tiles, len(active))
        start, start_stride = flows[iteration % 2], channels * pixels
        if median is not None:
            median_of_active_pairs(start, median, active, params.median_filtering)
            start, start_stride = median, 2 * pixels
        iteration += 1
        primal_step[primal_grid](
            flows[(iteration - 1) % 2],
            start,
            duals[(iteration - 1) % 2],
            data,
            flows[iteration % 2],
            partial,
            done_at,
            active,
            batch,
            height,
            width,
            programs,
            tiles_per_program,
            start_stride,
            iteration,
            scaled_epsilon,
            params.tau,
            lambda_theta,
            params.gamma,
            CHUNK=PARTIAL_CHUNK,
            **layout,
        )
        for _ in range(params.inner_iterations - 1):
            dual_primal_step[primal_grid](
                flows[iteration % 2],
                duals[(iteration - 1) % 2],
                data,
                flows[(iteration + 1) % 2],
                duals[iteration % 2],
                partial,
                done_at,
                active,
                batch,
                height,
                width,
                programs,
                tiles_per_program,
                iteration,
                scaled_epsilon,
                params.tau,
                tau_theta,
                lambda_theta,
                params.gamma,
                num_warps=DUAL_PRIMAL_WARPS,
                CHUNK=PARTIAL_CHUNK,
                **layout,
            )
            iteration += 1
        dual_step[dual_grid](
            flows[iteration % 2],
            duals[(iteration - 1) % 2],
            duals[iteration % 2],
            done_at,
            active,
            height,
            width,
            iteration,
            tau_theta,
            **layout,
        )
    iterations = done_at.clamp_(max=iteration)
    odd = (iterations % 2 == 1).view(batch, 1, 1, 1)
    torch.where(odd, flows[1], flow, out=flow)
    torch.where(odd.unsqueeze(1), duals[1], dual, out=dual)
    return iterations


def median_of_active_pairs(flow: torch.Tensor, out: torch.Tensor, active: torch.Tensor, size: int) -> None:
    """The median-filtered flow of the active pairs into out: by the kernel for 3 and 5 (OpenCV's sizes).

    Pairs that converged on the last iteration are still listed, and filtered for nothing: the
    next primal step finds them done and leaves their flow as it was.
    """
    _check_tensors(flow, out)
    batch, channels, height, width = flow.shape
    if size in (3, 5):
        grid = _grid(triton.cdiv(height * width, MEDIAN_TILE), len(active))
        median_kernel[grid](flow, out, active, height, width, channels * height * width, SIZE=size, TILE=MEDIAN_TILE)
        return
    index = active.long()
    out[index] = median_filter(flow[index, :2], size)


def warp_data(i0: torch.Tensor, i1_stack: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W): I1wx, I1wy and rho_c, from I0 (B, 1, H, W), I1 with its gradient (B, 3, H, W) and the flow."""
    _check_tensors(i0, i1_stack, flow)
    batch, channels, height, width = flow.shape
    data = flow.new_empty(batch, 3, height, width)
    linearise[_grid(triton.cdiv(height * width, TILE), batch)](
        i0, i1_stack, flow, data, height, width, CHANNELS=channels, TILE=TILE
    )
    return data


def _grid(tiles: int, pairs: int) -> tuple[int, int]:
    """A launch grid: a frame's programs along x, so the programs that run together share rows, and pairs along y."""
    if pairs > FUSED_MAX_BATCH:
        raise ValueError(
            f"the fused TV-L1 kernels take at most {FUSED_MAX_BATCH} pairs at once (a CUDA grid's height), not"
            f" {pairs}: set flow.batch_size to {FUSED_MAX_BATCH} or fewer"
        )
    return tiles, pairs


def _check_tensors(*tensors: torch.Tensor, dtypes: tuple[torch.dtype, ...] = (torch.float32,)) -> None:
    """The kernels index raw memory: contiguous tensors of dtypes on a GPU, or on the CPU under the interpreter."""
    for tensor in tensors:
        if not tensor.is_contiguous() or tensor.dtype not in dtypes:
            names = " or ".join(str(dtype).removeprefix("torch.") for dtype in dtypes)
            raise ValueError(
                f"the fused TV-L1 kernels take contiguous {names} tensors here, not {tensor.dtype} {tensor.stride()}"
            )
        if not tensor.is_cuda and not isinstance(primal_step, InterpretedFunction):
            raise ValueError(
                "the fused TV-L1 kernels run on a CUDA device, or on the CPU only with TRITON_INTERPRET=1 set before"
                " cprcoach.flow.kernels is imported"
            )
