"""PyTorch Datasets over the shards: skeleton sequences, RGB segments and flow stacks (TSN).

A Dataset holds only index rows. Each process opens the shards it reads on its first item
and keeps them, one handle per file, so DataLoader workers never use an HDF5 handle opened
before the fork (a forked worker drops what it inherited; pickling for spawn drops it too).
Random choices use torch's generator, which the DataLoader seeds differently in each worker.
Every item is (data, target): target is the class index (a composite's first error, see
store.label_index) or, with target="multi_hot", the float32 vector of 14 error flags.
"""

from __future__ import annotations

import abc
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from cprcoach.errors import CprCoachError
from cprcoach.flow.quantize import dequantize
from cprcoach.shards.index import read_index
from cprcoach.shards.store import open_shard, read_array, read_rgb, take
from cprcoach.skeleton import JOINT

TARGETS = ("index", "multi_hot")
NORMALIZE = ("none", "image", "body")
SAMPLING = ("uniform", "crop")


def segment_starts(total: int, num_segments: int, length: int, train: bool) -> np.ndarray:
    """TSN sampling: the first of `length` consecutive frames in each of `num_segments` equal parts
    of a video of `total` frames; random within its part in training, the part's centre otherwise.
    Parts shorter than a frame repeat frames; a video shorter than `length` starts at 0."""
    valid = max(total - length + 1, 1)
    tick = valid / num_segments
    offsets = torch.rand(num_segments).numpy() if train else np.full(num_segments, 0.5)
    return np.minimum(((np.arange(num_segments) + offsets) * tick).astype(np.int64), valid - 1)


def frame_indices(starts: np.ndarray, length: int, total: int) -> np.ndarray:
    """(segments, length) frame indices from segment starts, the last frame repeated past the end."""
    return np.minimum(starts[:, None] + np.arange(length), total - 1)


class ShardDataset(Dataset, abc.ABC):
    """The videos of an index (optionally one split), read lazily from their shards.

    train: random sampling (default: when split is "train"); otherwise the centred, repeatable one.
    transform: applied to the data tensor of every item (crops, flips, normalisation).
    """

    def __init__(
        self,
        index: str | Path | pd.DataFrame,
        split: str | None = None,
        *,
        train: bool | None = None,
        target: str = "index",
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ):
        table = index if isinstance(index, pd.DataFrame) else read_index(index)
        if split is not None:
            table = table[table["split"] == split]
            if table.empty:
                raise CprCoachError(f"the index has no {split} videos", fix="use a split the index lists (train, test)")
        if target not in TARGETS:
            raise CprCoachError(f"target must be one of {', '.join(TARGETS)}, got {target!r}")
        self.records: list[dict[str, Any]] = table.to_dict("records")
        self.train = split == "train" if train is None else train
        self.target = target
        self.transform = transform
        self._files: dict[str, h5py.File] = {}
        self._pid = os.getpid()

    def __len__(self) -> int:
        return len(self.records)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_files": {}}

    def _group(self, record: dict[str, Any]) -> h5py.Group:
        if self._pid != os.getpid():
            self._files, self._pid = {}, os.getpid()
        shard = self._files.get(record["shard"])
        if shard is None:
            shard = self._files[record["shard"]] = open_shard(record["shard"])
        return shard[record["group"]]

    def label(self, record: dict[str, Any]) -> int | torch.Tensor:
        if self.target == "index":
            return int(record["label_index"])
        return torch.tensor([float(c) for c in record["multi_hot"]], dtype=torch.float32)

    @abc.abstractmethod
    def load(self, group: h5py.Group, record: dict[str, Any]) -> torch.Tensor:
        """The modality's tensor for one video's group."""

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int | torch.Tensor]:
        record = self.records[i]
        data = self.load(self._group(record), record)
        if self.transform is not None:
            data = self.transform(data)
        return data, self.label(record)


class SkeletonDataset(ShardDataset):
    """Keypoint sequences as (C=3: x, y, score; T=clip_len; V=26) float32.

    sampling: `uniform` takes one frame from each of clip_len equal parts of the video (the
    whole action, resampled); `crop` takes clip_len consecutive frames (looped when shorter).
    normalize: `none` keeps raw-video pixels; `image` maps the frame to [-1, 1] (pyskl's
    PreNormalize2D); `body` centres on the mean hip joint and divides by the mean neck-hip length.
    """

    def __init__(
        self,
        index: str | Path | pd.DataFrame,
        split: str | None = None,
        *,
        clip_len: int = 100,
        sampling: str = "uniform",
        normalize: str = "none",
        **kwargs,
    ):
        super().__init__(index, split, **kwargs)
        if sampling not in SAMPLING or normalize not in NORMALIZE:
            raise CprCoachError(
                f"sampling must be one of {', '.join(SAMPLING)} and normalize one of {', '.join(NORMALIZE)}, "
                f"got {sampling!r} and {normalize!r}"
            )
        self.clip_len, self.sampling, self.normalize = clip_len, sampling, normalize

    def indices(self, total: int) -> np.ndarray:
        if self.sampling == "uniform":
            return segment_starts(total, self.clip_len, 1, self.train)
        room = max(total - self.clip_len, 0)
        start = int(torch.randint(room + 1, ()).item()) if self.train else room // 2
        return (start + np.arange(self.clip_len)) % total

    def load(self, group: h5py.Group, record: dict[str, Any]) -> torch.Tensor:
        keypoints = read_array(group, "keypoints")
        keypoints = keypoints[self.indices(len(keypoints))]
        keypoints[..., :2] = self._normalized(keypoints, record)
        return torch.from_numpy(np.ascontiguousarray(keypoints.transpose(2, 0, 1)))

    def _normalized(self, keypoints: np.ndarray, record: dict[str, Any]) -> np.ndarray:
        xy = keypoints[..., :2]
        if self.normalize == "image":
            half = np.array([record["source_width"], record["source_height"]], dtype=np.float32) / 2
            return (xy - half) / half
        if self.normalize == "body":
            seen = keypoints[..., 2] > 0
            hip, neck = JOINT["hip"], JOINT["neck"]
            both = seen[:, hip] & seen[:, neck]
            if not both.any():
                return xy
            centre = xy[both, hip].mean(axis=0)
            scale = float(np.linalg.norm(xy[both, neck] - xy[both, hip], axis=-1).mean()) or 1.0
            return (xy - centre) / scale
        return xy


class RGBDataset(ShardDataset):
    """TSN RGB input: `length` consecutive frames from each of `num_segments` segments,
    (num_segments * length, 3, H, W) uint8, or float32 in [0, 1] with as_float."""

    def __init__(
        self,
        index: str | Path | pd.DataFrame,
        split: str | None = None,
        *,
        num_segments: int = 8,
        length: int = 1,
        as_float: bool = False,
        **kwargs,
    ):
        super().__init__(index, split, **kwargs)
        self.num_segments, self.length, self.as_float = num_segments, length, as_float

    def load(self, group: h5py.Group, record: dict[str, Any]) -> torch.Tensor:
        total = int(record["frames"])
        starts = segment_starts(total, self.num_segments, self.length, self.train)
        frames = read_rgb(group, frame_indices(starts, self.length, total).reshape(-1))
        clip = torch.from_numpy(frames).permute(0, 3, 1, 2).contiguous()
        return clip.float().div_(255.0) if self.as_float else clip


class FlowDataset(ShardDataset):
    """TSN flow input: `length` consecutive flow pairs from each of `num_segments` segments, x and y
    interleaved (x1, y1, x2, y2, ...): (num_segments, 2 * length, H, W) as stored (uint8 images
    0-255 with 128 still, or float16), or float32 pixels of motion with as_float."""

    def __init__(
        self,
        index: str | Path | pd.DataFrame,
        split: str | None = None,
        *,
        num_segments: int = 8,
        length: int = 5,
        as_float: bool = False,
        **kwargs,
    ):
        super().__init__(index, split, **kwargs)
        self.num_segments, self.length, self.as_float = num_segments, length, as_float

    def load(self, group: h5py.Group, record: dict[str, Any]) -> torch.Tensor:
        total = int(record["flow_frames"])
        starts = segment_starts(total, self.num_segments, self.length, self.train)
        flat = frame_indices(starts, self.length, total).reshape(-1)
        x, y = take(group["flow_x"], flat), take(group["flow_y"], flat)
        stack = np.stack([x, y], axis=1).reshape(self.num_segments, 2 * self.length, *x.shape[1:])
        if self.as_float:
            stack = dequantize(stack, record["flow_bound"]) if stack.dtype == np.uint8 else stack.astype(np.float32)
        return torch.from_numpy(stack)
