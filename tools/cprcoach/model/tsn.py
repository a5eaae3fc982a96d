"""TSN (Wang et al., ECCV 2016) backbones for the RGB and flow streams: a compact 2D CNN on each segment.

A video is cut into S equal segments; from each, a snippet of `length` consecutive frames (RGB:
one frame; flow: 5 x/y pairs stacked on the channels) goes through the same 2D CNN, and the
segment scores are averaged (TSN's average consensus). Sampling is the shard Datasets'
(segment_starts): a random snippet within each segment in training, the centre one otherwise.

The CNN is trained from scratch (no ImageNet weights here): four blocks of two 3x3 conv-BN-ReLU
layers, the first of each with stride 2, then a global average pool. With the default widths
(32, 64, 128, 128) an epoch of 150 videos of 112x84 at 8 segments takes about 13 s on one CPU
thread (flow, 10 input channels: 17 s), nearly all of it in the forward and backward passes;
ResNet-sized networks would not train on the demo's CPUs and have little to learn from a few
hundred videos.

No augmentation beyond the random snippets. The cameras are fixed, so test videos have the
training framing; the errors are small differences of posture (hands a few pixels higher,
elbows bent) that a scale jitter would blur; and a flip would have to negate the flow's x.

`tokens` gives one feature per segment, (N, S, d), the temporal token sequence the ImagineNet
attention heads read; its mean over segments is the pooled feature.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader
from tqdm import tqdm

from cprcoach.errors import CprCoachError
from cprcoach.shards.datasets import FlowDataset, RGBDataset, ShardDataset, frame_indices, segment_starts

log = logging.getLogger(__name__)

MODALITIES = ("rgb", "flow")
# ImageNet statistics: a fixed convention, so training, extraction and assessment agree without a data pass.
RGB_MEAN = torch.tensor([0.485, 0.456, 0.406])
RGB_STD = torch.tensor([0.229, 0.224, 0.225])


def default_length(modality: str) -> int:
    """Frames per snippet in the TSN paper: one RGB frame, five flow fields."""
    return {"rgb": 1, "flow": 5}[modality]


@dataclass
class TSNConfig:
    """What rebuilds the network from a checkpoint; length None takes the modality's default."""

    modality: str = "rgb"
    num_classes: int = 14
    segments: int = 8
    length: int | None = None
    channels: list[int] = field(default_factory=lambda: [32, 64, 128, 128])
    dropout: float = 0.5

    def __post_init__(self) -> None:
        if self.modality not in MODALITIES:
            raise ValueError(f"modality must be one of {', '.join(MODALITIES)}, got {self.modality!r}")
        if self.length is None:
            self.length = default_length(self.modality)

    @property
    def in_channels(self) -> int:
        """The snippet's frames stacked on the channels: 3 per RGB frame, x and y per flow field."""
        return (3 if self.modality == "rgb" else 2) * self.length


def conv_bn_relu(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class TSN(nn.Module):
    """Snippets (N, S, C, H, W), normalised by rgb_input / flow_input -> class logits (N, num_classes)."""

    def __init__(self, config: TSNConfig | None = None):
        super().__init__()
        self.config = config or TSNConfig()
        layers, previous = [], self.config.in_channels
        for channels in self.config.channels:
            layers += [conv_bn_relu(previous, channels, stride=2), conv_bn_relu(channels, channels, stride=1)]
            previous = channels
        self.cnn = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.dropout = nn.Dropout(self.config.dropout)
        self.fc = nn.Linear(previous, self.config.num_classes)

    @property
    def feature_dim(self) -> int:
        return self.config.channels[-1]

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """(N, S, C, H, W) -> (N, S, d): every segment through the shared CNN."""
        n, s = x.shape[:2]
        return self.cnn(x.flatten(0, 1)).view(n, s, -1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The fc of the segments' mean feature. The fc is linear, so this is the mean of the segment
        scores (TSN's average consensus, up to where dropout falls), and the pooled feature the heads
        read is exactly what the classifier was trained on."""
        return self.fc(self.dropout(self.tokens(x).mean(dim=1)))

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(pooled (N, d), tokens (N, S, d), logits (N, classes)) in one pass."""
        tokens = self.tokens(x)
        pooled = tokens.mean(dim=1)
        return pooled, tokens, self.fc(pooled)


# --- input: the one normalisation of training, extraction and assessment ---------------------------------


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


@dataclass
class TSNSettings:
    epochs: int = 30
    batch_size: int = 16
    lr: float = 3e-3
    weight_decay: float = 1e-4
    label_smoothing: float = 0.1
    seed: int = 0
    workers: int = 0  # DataLoader processes decoding JPEGs and flow; 0 reads in the training process


def fit_tsn(model: TSN, index: pd.DataFrame, settings: TSNSettings, device: torch.device) -> list[dict]:
    """Train with cross-entropy on the rows' label_index (single-class videos); one record per epoch.

    Batch order, snippet offsets and dropout all come from settings.seed (the DataLoader's
    generator also seeds its workers), so on CPU a run repeats bit for bit.
    """
    composite = index.loc[index["multi_hot"].str.count("1") != 1, "video_id"].tolist()
    if composite:
        raise CprCoachError(
            f"the backbone trains on single-class videos, got {len(composite)} others: {', '.join(composite[:5])}",
            fix="pass the single-class rows of the training split",
        )
    torch.manual_seed(settings.seed)
    loader = DataLoader(
        tsn_dataset(model.config, index, train=True),
        batch_size=settings.batch_size,
        shuffle=True,
        num_workers=settings.workers,
        persistent_workers=settings.workers > 0,
        pin_memory=device.type == "cuda",  # so the non-blocking copies below overlap the compute
        generator=torch.Generator().manual_seed(settings.seed),
    )
    model.to(device).train()
    optimiser = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    steps = settings.epochs * len(loader)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=settings.lr, total_steps=max(steps, 1))
    history = []
    progress = tqdm(range(settings.epochs), desc=f"tsn {model.config.modality}", unit="epoch", leave=False)
    for epoch in progress:
        started = time.perf_counter()
        total, correct = 0.0, 0
        for x, y in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            logits = model(x)
            loss = F.cross_entropy(logits, y, label_smoothing=settings.label_smoothing)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            total += loss.item() * len(y)
            correct += int((logits.argmax(dim=1) == y).sum())
        record = {
            "epoch": epoch + 1,
            "loss": total / len(index),
            "accuracy": correct / len(index),
            "seconds": time.perf_counter() - started,
        }
        history.append(record)
        progress.set_postfix(loss=f"{record['loss']:.3f}", acc=f"{record['accuracy']:.2f}")
        log.debug("tsn epoch %(epoch)d: loss %(loss).4f, accuracy %(accuracy).3f, %(seconds).1f s", record)
    model.eval()
    return history


@torch.no_grad()
def extract_tsn(
    model: TSN, index: pd.DataFrame, device: torch.device, batch_size: int = 32, workers: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pooled (N, d), tokens (N, S, d), logits (N, classes)) of every row, in index order: eval mode,
    the centre snippet of each segment."""
    model.to(device).eval()
    loader = DataLoader(tsn_dataset(model.config, index, train=False), batch_size=batch_size, num_workers=workers)
    parts = [model.features(x.to(device)) for x, _ in loader]
    pooled, tokens, logits = (torch.cat([p[i] for p in parts]).cpu().numpy() for i in range(3))
    return pooled, tokens, logits
