"""Flow as images, the mmaction2 / denseflow convention: x and y clipped to +-bound, mapped to 0-255."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

import numpy as np

if TYPE_CHECKING:
    import torch

FlowArray = TypeVar("FlowArray", np.ndarray, "torch.Tensor")


def quantize(flow: FlowArray, bound: float) -> FlowArray:
    """Float flow in pixels -> uint8, 0 = -bound, 255 = +bound (127.5 = no motion).

    A torch tensor is quantized where it lies, so a GPU hands the host a quarter of the bytes;
    both round halves to even, so the two give the same bytes.
    """
    scaled = (flow.clip(-bound, bound) + bound) * (255.0 / (2.0 * bound))
    return scaled.round().astype(np.uint8) if isinstance(scaled, np.ndarray) else scaled.round().byte()


def dequantize(image: np.ndarray, bound: float) -> np.ndarray:
    """uint8 flow image -> float pixels; exact to within bound / 255 inside the bound."""
    return image.astype(np.float32) * (2.0 * bound / 255.0) - bound
