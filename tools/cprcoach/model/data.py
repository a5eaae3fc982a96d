"""What the backbones read: skeleton bundles in memory, RGB and flow snippets from the shards, and the
batches of training and of feature extraction made of them.

Skeletons: every video's pose as one normalised (3, T, 26) array, in memory. The demo holds a few
hundred videos of a few seconds (a few MB at T = 64), and even the full CPR-Coach skeleton set
(4,544 videos) is about 100 MB: one in-memory bundle, read once, keeps training free of per-epoch
file reads on CPU and GPU alike.

Normalisation, per video (see `normalise`):
- time: resampled to a fixed T frames by linear interpolation over the whole clip (pyskl's
  uniform sampling, without dropping frames); rate errors stay visible as long as videos are
  of similar length, which holds for CPR-Coach's fixed-protocol recordings;
- position: the median position of the hip centre over the clip is the origin, one number per
  video and not per frame, so the body's up-and-down compression movement stays in the data;
- scale: divided by the person's size, the median over frames of the longer side of the seen
  joints' box (the size PCK uses, cf. cprcoach.pose.groundtruth.person_size), so near and far
  cameras and tall and short rescuers look alike. Not the torso length: seen from the front
  (the demo's V1) the torso is foreshortened to a third of its side-view length, and a
  per-view scale that differs 3x would hide the small differences the errors make;
- the keypoint score is the third channel (0 where the joint was not seen).
In training, each video is a random window of model.skeleton.crop of its frames (SkeletonBatches).

RGB and flow (the TSN backbone): a video is cut into S equal segments and a snippet of `length`
consecutive frames or flow fields taken from each, as the shard Datasets sample them
(segment_starts): a random snippet within each segment in training, the centre one otherwise.
RGB is standardised with ImageNet's statistics, flow scaled to its quantisation bound (rgb_input,
flow_input); the *_clip_input functions give a whole clip the eval-mode input, for assessment.
No augmentation beyond the random snippets: the cameras are fixed, so test videos have the
training framing; the errors are small differences of posture (hands a few pixels higher, elbows
bent) that a scale jitter would blur; and a flip would have to negate the flow's x.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from cprcoach.errors import CprCoachError
from cprcoach.model.networks.tsn import TSNConfig
from cprcoach.pose.format import read_pose
from cprcoach.pose.groundtruth import person_size
from cprcoach.shards.datasets import FlowDataset, RGBDataset, ShardDataset, frame_indices, segment_starts
from cprcoach.skeleton import HALPE26, JOINT

log = logging.getLogger(__name__)

CENTRE_JOINT = JOINT["hip"]
# Fallback centre when the hip centre is never seen: the two hips.
HIP_JOINTS = [JOINT["left_hip"], JOINT["right_hip"]]
TEXT_FIELDS = ("video_id", "participant", "view", "label", "take", "split")
# ImageNet statistics: a fixed convention, so training, extraction and assessment agree without a data pass.
RGB_MEAN = torch.tensor([0.485, 0.456, 0.406])
RGB_STD = torch.tensor([0.229, 0.224, 0.225])


@dataclass
class SkeletonBundle:
    """N videos: inputs x (N, 3, T, 26) float32, labels multi_hot (N, 14) uint8 and their sheet fields."""

    x: np.ndarray
    multi_hot: np.ndarray
    video_id: np.ndarray
    participant: np.ndarray
    view: np.ndarray
    label: np.ndarray
    take: np.ndarray
    split: np.ndarray

    def __post_init__(self) -> None:
        self.x = np.asarray(self.x, dtype=np.float32)
        self.multi_hot = np.asarray(self.multi_hot, dtype=np.uint8)
        for name in TEXT_FIELDS:
            setattr(self, name, np.asarray(getattr(self, name), dtype=str))
        if self.x.ndim != 4 or self.x.shape[1] != 3 or self.x.shape[3] != len(HALPE26):
            raise ValueError(f"x must be (N, 3, T, {len(HALPE26)}), got {self.x.shape}")
        wrong = [name for name in ("multi_hot", *TEXT_FIELDS) if len(getattr(self, name)) != len(self.x)]
        if wrong:
            raise ValueError(f"{', '.join(wrong)} must have one entry per video ({len(self.x)})")

    def __len__(self) -> int:
        return len(self.x)

    @property
    def frames(self) -> int:
        return self.x.shape[2]

    @property
    def is_single(self) -> np.ndarray:
        """Videos with exactly one class (a single class; composites have two or more)."""
        return self.multi_hot.sum(axis=1) == 1

    @property
    def class_index(self) -> np.ndarray:
        """The class of each single-class video (for a composite: its first error, not to be used)."""
        return self.multi_hot.argmax(axis=1)

    def subset(self, mask: np.ndarray) -> SkeletonBundle:
        return SkeletonBundle(**{f.name: getattr(self, f.name)[mask] for f in fields(self)})


def resample(keypoints: np.ndarray, frames: int) -> np.ndarray:
    """(T, J, C) -> (frames, J, C) by linear interpolation over the whole clip."""
    keypoints = np.asarray(keypoints, dtype=np.float32)
    count = len(keypoints)
    if count == 0:
        raise ValueError("a pose track without frames cannot be resampled")
    position = np.linspace(0.0, count - 1, frames)
    low = np.floor(position).astype(int)
    high = np.minimum(low + 1, count - 1)
    weight = (position - low)[:, None, None].astype(np.float32)
    return keypoints[low] * (1.0 - weight) + keypoints[high] * weight


def _median_point(xy: np.ndarray, seen: np.ndarray) -> np.ndarray | None:
    """Median of the seen positions (..., 2), None if none was seen."""
    points = xy[seen]
    return np.median(points, axis=0) if len(points) else None


def normalise(keypoints: np.ndarray, frames: int) -> np.ndarray:
    """(T, 26, 3) raw-pixel keypoints -> (3, frames, 26): x, y centred and scaled (module docstring), score.

    A track where no joint was ever seen gives zeros: nothing to centre, and score 0 says so.
    """
    track = resample(keypoints, frames)
    xy, score = track[..., :2], track[..., 2]
    seen = score > 0
    if not seen.any():
        return np.zeros((3, frames, len(HALPE26)), dtype=np.float32)
    centre = _median_point(xy[:, CENTRE_JOINT], seen[:, CENTRE_JOINT])
    if centre is None:
        centre = _median_point(xy[:, HIP_JOINTS].reshape(-1, 2), seen[:, HIP_JOINTS].reshape(-1))
    if centre is None:
        centre = _median_point(xy, seen)
    size = person_size(xy, seen)
    size = size[size > 0]
    scale = float(np.median(size)) if len(size) else 0.0
    if scale <= 1e-6:  # a single seen joint: nothing to measure, keep pixels
        scale = 1.0
    out = np.empty((3, frames, len(HALPE26)), dtype=np.float32)
    out[:2] = ((xy - centre) / scale).transpose(2, 0, 1)
    out[2] = score
    return out


def multi_hot(text: str) -> np.ndarray:
    """The label string of the sheet and index ("0100...") as a (C,) uint8 vector."""
    return np.frombuffer(text.encode(), dtype=np.uint8) - ord("0")


def _bundle(rows: pd.DataFrame, load: Callable[[dict], np.ndarray], frames: int, desc: str) -> SkeletonBundle:
    records = rows.to_dict("records")
    x = np.stack([normalise(load(row), frames) for row in tqdm(records, desc=desc, unit="video", leave=False)])
    return SkeletonBundle(
        x=x,
        multi_hot=np.stack([multi_hot(str(row["multi_hot"])) for row in records]),
        **{name: rows[name].astype(str).to_numpy() for name in TEXT_FIELDS},
    )


def pose_paths(sheet: pd.DataFrame, pattern: str) -> list[Path]:
    """Each sheet row's pose file: `pattern` with {participant} {view} {label} {take} {video_id} filled in."""
    try:
        rows = sheet[["video_id", "participant", "view", "label", "take"]].to_dict("records")
        return [Path(pattern.format(**row)) for row in rows]
    except (KeyError, IndexError, ValueError) as error:
        raise CprCoachError(
            f"the pose pattern {pattern!r} cannot be filled in ({error!r})",
            fix="use only {participant}, {view}, {label}, {take} and {video_id}, "
            "e.g. results/pose/{participant}/{view}/{label}_{take}.npz",
        ) from None


def bundle_from_poses(sheet: pd.DataFrame, pattern: str, frames: int) -> SkeletonBundle:
    """Every video of the sample sheet, read from its pose .npz (cprcoach.pose.format)."""
    paths = pose_paths(sheet, pattern)
    missing = [str(path) for path in paths if not path.is_file()]
    if missing:
        shown = "\n    ".join(missing[:10]) + (f"\n    ... and {len(missing) - 10} more" if len(missing) > 10 else "")
        raise CprCoachError(
            f"{len(missing)} of {len(paths)} pose files are missing:\n    {shown}",
            fix="run the pose stage first (`cprcoach pose estimate`), or check --poses",
        )
    rows = sheet.assign(_pose=[str(p) for p in paths])
    log.info("reading %d pose files (T = %d)", len(rows), frames)
    return _bundle(rows, lambda row: read_pose(row["_pose"]).keypoints, frames, "poses")


def bundle_from_index(index_path: str | Path, frames: int) -> SkeletonBundle:
    """Every video of a shard index (cprcoach.shards), its skeleton read from its shard."""
    from cprcoach.shards.index import read_index
    from cprcoach.shards.store import open_shard, read_array

    table = read_index(index_path)
    cache: dict[str, object] = {}

    def load(row: dict) -> np.ndarray:
        if row["shard"] not in cache:
            cache[row["shard"]] = open_shard(row["shard"])
        return read_array(cache[row["shard"]][row["group"]], "keypoints")

    log.info("reading %d skeletons from %d shards (T = %d)", len(table), table["shard"].nunique(), frames)
    try:
        return _bundle(table, load, frames, "shards")
    finally:
        for shard in cache.values():
            shard.close()


class SkeletonBatches:
    """Each epoch's training batches (x, class index) of skeleton videos, already on `device`: a random
    order, and each video a random window of `crop` of its frames; every draw from `seed`."""

    def __init__(
        self, x: np.ndarray, y: np.ndarray, batch_size: int, crop: float, seed: int, device: torch.device
    ) -> None:
        self.generator = torch.Generator().manual_seed(seed)
        self.inputs = torch.from_numpy(np.ascontiguousarray(x)).to(device)
        self.targets = torch.from_numpy(np.asarray(y, dtype=np.int64)).to(device)
        self.batch_size = batch_size
        self.crop = crop

    def __len__(self) -> int:
        return math.ceil(len(self.inputs) / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = torch.randperm(len(self.inputs), generator=self.generator).to(self.inputs.device)
        for batch in order.split(self.batch_size):
            yield random_window(self.inputs[batch], self.crop, self.generator), self.targets[batch]


def random_window(x: torch.Tensor, crop: float, generator: torch.Generator) -> torch.Tensor:
    """(N, 3, T, V) -> (N, 3, T', V): a random window of round(crop * T) frames per video."""
    n, _, t, _ = x.shape
    window = max(1, round(t * crop))
    starts = torch.randint(0, t - window + 1, (n,), generator=generator)
    index = (starts[:, None] + torch.arange(window)[None, :]).to(x.device)
    return torch.gather(x, 2, index[:, None, :, None].expand(-1, x.shape[1], -1, x.shape[3]))


def skeleton_inputs(x: np.ndarray, batch_size: int) -> Iterator[torch.Tensor]:
    """Every video of x (N, 3, T, V) in order, in near-equal batches of at most `batch_size`."""
    for chunk in np.array_split(x, max(1, math.ceil(len(x) / batch_size))):
        yield torch.from_numpy(chunk)


# --- RGB and flow: the one normalisation of training, extraction and assessment ---------------------------


def rgb_input(frames: torch.Tensor, length: int) -> torch.Tensor:
    """RGBDataset's (S * length, 3, H, W) uint8 -> (S, 3 * length, H, W) float32: each frame scaled to
    [0, 1] and standardised per colour channel, the frames of a snippet stacked in time order."""
    x = frames.float().div_(255.0)
    x = (x - RGB_MEAN[:, None, None]) / RGB_STD[:, None, None]
    return x.reshape(-1, 3 * length, *x.shape[-2:])


def flow_input(stack: torch.Tensor, bound: float | None = None) -> torch.Tensor:
    """FlowDataset's (S, 2 * length, H, W) as stored -> float32 flow in units of the quantisation bound,
    in [-1, 1] (0 = still): uint8 images map 0..255 to -1..1, which needs no bound; float16 pixels
    are divided by `bound` and clipped to it, as quantising them would have."""
    if stack.dtype == torch.uint8:
        return stack.float().mul_(2.0 / 255.0).sub_(1.0)
    if bound is None:
        raise ValueError("float flow needs the bound it is measured against")
    return (stack.float() / bound).clamp_(-1.0, 1.0)


def rgb_clip_input(frames: np.ndarray, segments: int, length: int) -> torch.Tensor:
    """A whole RGB clip (T, H, W, 3) uint8 -> the test-mode input (S, 3 * length, H, W): the centre
    snippet of each segment, as RGBDataset gives it with train=False."""
    total = len(frames)
    index = frame_indices(segment_starts(total, segments, length, train=False), length, total).reshape(-1)
    return rgb_input(torch.from_numpy(np.ascontiguousarray(frames[index])).permute(0, 3, 1, 2), length)


def flow_clip_input(
    flow_x: np.ndarray, flow_y: np.ndarray, segments: int, length: int, bound: float | None = None
) -> torch.Tensor:
    """A whole flow file's x, y (T-1, H, W) -> the test-mode input (S, 2 * length, H, W), as FlowDataset
    gives it with train=False; `bound` is needed only for float16 flow."""
    total = len(flow_x)
    index = frame_indices(segment_starts(total, segments, length, train=False), length, total).reshape(-1)
    stack = np.stack([flow_x[index], flow_y[index]], axis=1).reshape(segments, 2 * length, *flow_x.shape[1:])
    return flow_input(torch.from_numpy(stack), bound)


def _shared_value(index: pd.DataFrame, columns: list[str], what: str) -> tuple:
    """The one value the rows share in `columns`; videos that differ cannot go in one batch."""
    values = index[columns].drop_duplicates()
    if len(values) != 1:
        raise CprCoachError(
            f"the videos differ in {what}: " + ", ".join(map(str, values.itertuples(index=False, name=None))),
            fix="rebuild the clips, flow and shards of every video with the same configuration",
        )
    return tuple(values.iloc[0])


def tsn_dataset(config: TSNConfig, index: pd.DataFrame, *, train: bool) -> ShardDataset:
    """The shard Dataset that feeds the network: items (S, C, H, W) float32 and the class index."""
    if index.empty:
        raise CprCoachError("no videos for the TSN backbone", fix="check the split and classes of the index")
    options = {"num_segments": config.segments, "length": config.length, "train": train}
    if config.modality == "rgb":
        _shared_value(index, ["height", "width"], "frame size")
        return RGBDataset(index, transform=partial(rgb_input, length=config.length), **options)
    _shared_value(index, ["flow_height", "flow_width"], "flow size")
    (bound,) = _shared_value(index, ["flow_bound"], "flow bound")
    return FlowDataset(index, transform=partial(flow_input, bound=float(bound)), **options)


def tsn_batches(
    config: TSNConfig, index: pd.DataFrame, batch_size: int, workers: int, seed: int, device: torch.device
) -> DataLoader:
    """Each epoch's training batches of the rows (single-class videos, their label_index): a random
    order and random snippets, every draw from `seed`.

    The loader's generator seeds its `workers`; without workers the snippets are drawn in this process
    from torch's global generator, seeded here too (and with it the network's dropout), so on CPU a
    run repeats bit for bit.
    """
    composite = index.loc[index["multi_hot"].str.count("1") != 1, "video_id"].tolist()
    if composite:
        raise CprCoachError(
            f"the backbone trains on single-class videos, got {len(composite)} others: {', '.join(composite[:5])}",
            fix="pass the single-class rows of the training split",
        )
    torch.manual_seed(seed)
    return DataLoader(
        tsn_dataset(config, index, train=True),
        batch_size=batch_size,
        shuffle=True,
        num_workers=workers,
        persistent_workers=workers > 0,
        pin_memory=device.type == "cuda",  # so that the training loop's non-blocking copies overlap the compute
        generator=torch.Generator().manual_seed(seed),
    )


def tsn_inputs(config: TSNConfig, index: pd.DataFrame, batch_size: int, workers: int) -> Iterator[torch.Tensor]:
    """Every row's test-mode input (the centre snippet of each segment), in index order."""
    loader = DataLoader(tsn_dataset(config, index, train=False), batch_size=batch_size, num_workers=workers)
    return (x for x, _ in loader)
