"""The median filter TV-L1 applies to the flow between outer iterations, as PyTorch operations.

cv::medianBlur with replicated borders, for any odd window; the 5x5 window OpenCV's TV-L1 uses by
default runs as sorting networks of minimum/maximum passes, several times faster than
Tensor.median over unfolded windows. The Triton kernels' median (cprcoach.flow.median_kernel)
runs the same networks.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

import torch
import torch.nn.functional as F

SORT5 = ((0, 1), (3, 4), (2, 4), (2, 3), (0, 3), (0, 2), (1, 4), (1, 3), (1, 2))  # an optimal 5-sorter


def _odd_even_merge(lo: int, hi: int, step: int) -> Iterator[tuple[int, int]]:
    """Batcher's odd-even merge of the sorted halves of wires lo..hi (a power of two of them)."""
    double = step * 2
    if double < hi - lo:
        yield from _odd_even_merge(lo, hi, double)
        yield from _odd_even_merge(lo + step, hi, double)
        yield from ((i, i + step) for i in range(lo + step, hi - step, double))
    else:
        yield lo, lo + step


@functools.cache
def _merge_plan(length: int, ranks: tuple[int, ...]) -> tuple[tuple[int, int, bool, bool], ...]:
    """The compare-exchanges that give `ranks` of the union of two sorted lists of `length`.

    Both lists are padded to a power of two with +inf wires, which turns compare-exchanges with a
    pad into no-ops or swaps; a backward pass then keeps only the minima and maxima that reach an
    output rank. Each step is (i, j, want_min, want_max), and a step with i > j swaps two wires.
    """
    half = 1 << (length - 1).bit_length()
    real = [k < length for k in range(half)] * 2
    steps: list[tuple[int, int]] = []
    for i, j in _odd_even_merge(0, 2 * half - 1, 1):
        if not real[j]:
            continue
        if not real[i]:
            real[i], real[j] = True, False
            steps.append((j, i))  # a swap, written with the larger index first
            continue
        steps.append((i, j))
    live, plan = set(ranks), []
    for i, j in reversed(steps):
        if i > j:  # swap
            live = {j if k == i else i if k == j else k for k in live}
            plan.append((i, j, False, False))
        elif i in live or j in live:
            plan.append((i, j, i in live, j in live))
            live |= {i, j}
    return tuple(reversed(plan))


def _run_plan(wires: list[torch.Tensor | None], plan: tuple[tuple[int, int, bool, bool], ...]) -> None:
    """Apply a compare-exchange plan to the list of wires; the tensors themselves are not modified."""
    for i, j, want_min, want_max in plan:
        if i > j:
            wires[i], wires[j] = wires[j], wires[i]
            continue
        low = torch.minimum(wires[i], wires[j]) if want_min else None
        high = torch.maximum(wires[i], wires[j]) if want_max else None
        wires[i], wires[j] = low, high


def median_filter(flow: torch.Tensor, size: int) -> torch.Tensor:
    """Median over a size x size window with replicated borders, as cv::medianBlur filters the flow."""
    radius = size // 2
    padded = F.pad(flow, (radius,) * 4, mode="replicate")
    if size == 5:
        return _median5(padded)
    windows = padded.unfold(-2, size, 1).unfold(-2, size, 1)
    return windows.reshape(*flow.shape, size * size).median(dim=-1).values


def _median5(padded: torch.Tensor) -> torch.Tensor:
    """Exact 5x5 median in 90 minimum/maximum passes, sharing work between neighbouring windows.

    Each column of five is sorted once (9 compare-exchanges) and shared by the five windows that
    contain it; neighbouring sorted columns are merged once into sorted tens, two of which give
    the window's first four columns (only ranks 8 to 13 of these 20 are needed); with its fifth
    column, the 13th of 25 from a sorted 20 (A) and a sorted 5 (B) is
    min(A13, max(A12, B1), max(A11, B2), ..., max(A8, B5)).
    """
    height, width = padded.shape[-2] - 4, padded.shape[-1] - 4
    ones: list[torch.Tensor | None] = [padded[..., r : r + height, :] for r in range(5)]
    for i, j in SORT5:
        ones[i], ones[j] = torch.minimum(ones[i], ones[j]), torch.maximum(ones[i], ones[j])
    last = [c[..., 4 : width + 4] for c in ones]
    twos: list[torch.Tensor | None] = [c[..., : width + 2] for c in ones] + [None] * 3
    twos += [c[..., 1 : width + 3] for c in ones] + [None] * 3
    del ones  # from here on each intermediate is freed as soon as the plans stop using it
    _run_plan(twos, _merge_plan(5, tuple(range(10))))
    fours: list[torch.Tensor | None] = [c[..., :width] for c in twos[:10]] + [None] * 6
    fours += [c[..., 2 : width + 2] for c in twos[:10]] + [None] * 6
    del twos
    _run_plan(fours, _merge_plan(10, tuple(range(7, 13))))
    median = fours[12]
    for k in range(5):
        median = torch.minimum(median, torch.maximum(fours[11 - k], last[k]))
    return median
