"""TV-L1 as Triton kernels: the warp's linearisation and the inner iteration, and the loop that launches them.

Written as whole-tensor PyTorch, one inner iteration is some twenty passes over the batch and
moves about 440 bytes per pixel of a pair. Here the dual step of one inner iteration and the
primal step of the next (TH step, divergence, change) are one kernel, which reads the solver
state once and writes it once, to a second buffer: 44 bytes per pixel with the dual variable in
float16 (cprcoach.flow.tvl1.FUSED_DUAL_DTYPE; every sum and product is float32). The divergence at a
pixel needs its left and upper neighbours' new dual variable, which other programs write, so the
kernel computes those again from the old one. An outer iteration's first primal step (which reads
the median-filtered flow) and last dual step are kernels of their own.

The kernels keep the per-pair stopping test on the GPU: the primal step of iteration k sums the
previous iteration's per-tile squared changes in a fixed order (so every program of a pair takes
the same decision), and a pair that converged records the iteration in `done_at` and is skipped
from then on. No iteration waits for the host. The warp (a bicubic remap of I1 and its gradient
and rho's constant part) is one kernel, and so is the median filter (cprcoach.flow.median_kernel), where PyTorch takes tens of
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

from cprcoach.flow.launch import check_tensors, launch_grid, tile_pixels
from cprcoach.flow.median_kernel import median_of_active_pairs
from cprcoach.flow.params import TVL1Params

TILE = 512  # pixels a program handles at once in the linearisation and the primal and dual steps
# Every program of a primal step sums its pair's per-program changes for the stopping test, so in
# a frame of more than MAX_TILES tiles (above 131k pixels) the primal steps' programs take
# LARGE_FRAME_TILES tiles each, one after another: the sums stay few and the registers one tile's.
MAX_TILES = 256
LARGE_FRAME_TILES = 8
# The dual and primal step in one holds its neighbours' dual step too, so it runs with more warps
# than Triton's default: the fastest on an H100 (README, Optical flow, "The solver's constants").
DUAL_PRIMAL_WARPS = 8
PARTIAL_CHUNK = 128  # per-program squared changes summed at a time by the stopping test
NOT_DONE = 2**30  # done_at of a pair still iterating
FLT_EPSILON = tl.constexpr(1.1920928955078125e-07)  # float32 machine epsilon
CUBIC_A = tl.constexpr(-0.75)  # the bicubic kernel of OpenCV's remap and PyTorch's grid_sample


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
    offsets, rows, cols, inside = tile_pixels(tl.program_id(0), height, width, TILE)
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
    offsets, rows, cols, inside = tile_pixels(index, height, width, TILE)
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
    offsets, rows, cols, inside = tile_pixels(index, height, width, TILE)
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
    check_tensors(flow, data)
    check_tensors(dual, dtypes=(torch.float16, torch.float32))
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
        primal_grid, dual_grid = launch_grid(programs, len(active)), launch_grid(tiles, len(active))
        start, start_stride = flows[iteration % 2], channels * pixels
        if median is not None:
            median_of_active_pairs(start, median, active, params.median_filtering)
            start, start_stride = median, 2 * pixels
        stopping = {  # what the primal steps of this outer iteration share
            "partial_ptr": partial,
            "done_ptr": done_at,
            "active_ptr": active,
            "n_pairs": batch,
            "height": height,
            "width": width,
            "programs": programs,
            "tiles_per_program": tiles_per_program,
            "scaled_epsilon": scaled_epsilon,
            "tau": params.tau,
            "lambda_theta": lambda_theta,
            "gamma": params.gamma,
            "CHUNK": PARTIAL_CHUNK,
            **layout,
        }
        iteration += 1
        primal_step[primal_grid](
            flow_ptr=flows[(iteration - 1) % 2],
            start_ptr=start,
            dual_ptr=duals[(iteration - 1) % 2],
            data_ptr=data,
            flow_out_ptr=flows[iteration % 2],
            start_stride=start_stride,
            iteration=iteration,
            **stopping,
        )
        for _ in range(params.inner_iterations - 1):
            dual_primal_step[primal_grid](
                flow_ptr=flows[iteration % 2],
                dual_ptr=duals[(iteration - 1) % 2],
                data_ptr=data,
                flow_out_ptr=flows[(iteration + 1) % 2],
                dual_out_ptr=duals[iteration % 2],
                iteration=iteration,
                tau_theta=tau_theta,
                num_warps=DUAL_PRIMAL_WARPS,
                **stopping,
            )
            iteration += 1
        dual_step[dual_grid](
            flow_ptr=flows[iteration % 2],
            dual_ptr=duals[(iteration - 1) % 2],
            dual_out_ptr=duals[iteration % 2],
            done_ptr=done_at,
            active_ptr=active,
            height=height,
            width=width,
            iteration=iteration,
            tau_theta=tau_theta,
            **layout,
        )
    iterations = done_at.clamp_(max=iteration)
    odd = (iterations % 2 == 1).view(batch, 1, 1, 1)
    torch.where(odd, flows[1], flow, out=flow)
    torch.where(odd.unsqueeze(1), duals[1], dual, out=dual)
    return iterations


def warp_data(i0: torch.Tensor, i1_stack: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W): I1wx, I1wy and rho_c, from I0 (B, 1, H, W), I1 with its gradient (B, 3, H, W) and the flow."""
    check_tensors(i0, i1_stack, flow)
    batch, channels, height, width = flow.shape
    data = flow.new_empty(batch, 3, height, width)
    linearise[launch_grid(triton.cdiv(height * width, TILE), batch)](
        i0, i1_stack, flow, data, height, width, CHANNELS=channels, TILE=TILE
    )
    return data
