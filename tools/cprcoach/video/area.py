"""The area filter on a GPU: NV12 frames, as NVDEC writes them, scaled to every clip as I420.

Area resampling averages the source pixels each output pixel covers, weighted by how much of
each it covers (OpenCV's INTER_AREA, swscale's `area`, the CPU path's video.encoder.scale_flags).
It is separable, so a plane is scaled by two small matrix products, `rows @ plane @ cols.T`,
batched over frames: on a GPU that costs far less than decoding the 4K frame did. The luma plane
and the two half-size chroma planes are scaled separately, as swscale scales yuv420p, so the
clips carry the source's own colours with no RGB round trip. The same code runs on the CPU, which
is how the tests check its arithmetic against the CPU path.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import torch


@cache
def area_weights(source: int, target: int) -> np.ndarray:
    """(target, source) matrix: row j is the share of output pixel j that each source pixel covers.

    Output pixel j spans source coordinates [j*s, (j+1)*s) with s = source/target; every row sums
    to one, so a flat picture stays flat.
    """
    scale = source / target
    starts = np.arange(target)[:, None] * scale
    pixels = np.arange(source)[None, :]
    overlap = np.minimum(pixels + 1, starts + scale) - np.maximum(pixels, starts)
    return np.clip(overlap, 0, None) / scale


def area_resize(planes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Area-scale (..., H, W) uint8 planes to (..., height, width) uint8, rounding to nearest.

    Of the two orders of the products the cheaper one runs (the smaller intermediate plane).
    """
    source_h, source_w = planes.shape[-2:]
    rows = torch.from_numpy(area_weights(source_h, height)).to(planes.device, torch.float32)
    cols = torch.from_numpy(area_weights(source_w, width)).to(planes.device, torch.float32).T
    values = planes.to(torch.float32)
    if height * source_w <= source_h * width:  # scale the rows first: (h, W) is the smaller plane
        scaled = torch.matmul(torch.matmul(rows, values), cols)
    else:
        scaled = torch.matmul(rows, torch.matmul(values, cols))
    return scaled.add_(0.5).floor_().clamp_(0, 255).to(torch.uint8)


def turn(planes: torch.Tensor, rotation: int) -> torch.Tensor:
    """Turn (..., H, W) planes as players (and ffmpeg's autorotation) turn a picture whose container
    rotates it by `rotation` degrees: counter-clockwise by that angle, as the display matrix says."""
    return torch.rot90(planes, k=rotation // 90, dims=(-2, -1)) if rotation else planes


def nv12_planes(frames: torch.Tensor, width: int, height: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Split (B, H*3/2, W) NV12 frames into luma (B, H, W) and chroma (B, 2, H/2, W/2): U then V."""
    luma = frames[:, :height]
    chroma = frames[:, height:].reshape(-1, height // 2, width // 2, 2).permute(0, 3, 1, 2)
    return luma, chroma


def scale_nv12(
    frames: torch.Tensor, width: int, height: int, sizes: list[tuple[int, int]], rotation: int = 0
) -> list[bytes]:
    """Every clip's I420 bytes (Y, then U, then V, frame after frame) of a batch of NV12 frames.

    `width`, `height` are the coded size of the frames; `rotation` turns them first, as the CPU
    path's autorotation does, so `sizes` (width, height) are sizes as displayed. As on the CPU
    path, the source is scaled once, to the largest clip, and the smaller clips are scaled from that.
    """
    luma, chroma = (turn(plane, rotation) for plane in nv12_planes(frames, width, height))

    def scaled(y: torch.Tensor, uv: torch.Tensor, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        w, h = size
        return area_resize(y, h, w), area_resize(uv, h // 2, w // 2)

    largest = max(sizes, key=lambda size: size[0] * size[1])
    top = scaled(luma, chroma, largest)
    batch = frames.shape[0]
    return [
        torch.cat([plane.reshape(batch, -1) for plane in (top if size == largest else scaled(*top, size))], dim=1)
        .cpu()
        .numpy()
        .tobytes()
        for size in sizes
    ]
