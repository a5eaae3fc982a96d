"""ST-GCN (Yan et al., AAAI 2018) on the Halpe-26 graph, in plain PyTorch.

Two changes to the paper's network. The joints' motion (x, y differences between consecutive
frames, as pyskl's joint-motion stream) joins the input channels: the compressions move the
joints by a few hundredths of the person's size while views and rescuers place them tenths
apart, so after the input normalisation the rate, depth and jump errors all but vanish from
positions alone. And the input goes through a per-joint embedding (a 1x1 convolution with its
own weights for each joint, as SGN's joint-type embedding does) before the first graph
convolution. ST-GCN shares every weight across joints and pools over them at the end, so it can
tell which joint moved only slowly, through the graph; the CPR errors are mostly that kind of
difference (the hands on another spot, bent elbows, the knees off the floor). On the demo data of
the previous class table the plain network did not get past 35 % training accuracy in 40 epochs;
with the embedding it fits them.

The graph is the spatial partition of the paper: for each joint, its neighbours split into the
joint itself, those nearer the centre (the neck) and those farther from it, three adjacency
matrices normalised by degree, each with a learned edge importance. The default stack (32, 32,
64, 64, 128 channels, time stride 2 twice) is a compact version of the paper's ten blocks
(64 to 256 channels), sized so the demo trains on two CPU cores in a few minutes; on the demo
the paper's widths (64, 64, 128, 128, 256 here) took twice as long and scored no better.

`tokens` gives the temporal token sequence (N, T', d) after the last block, pooled over joints:
what the attention heads of ImagineNet read; its mean over time is the pooled feature.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from cprcoach.model.settings import SkeletonSettings
from cprcoach.skeleton import HALPE26, HALPE26_EDGES, JOINT

CENTRE = JOINT["neck"]
INPUT_CHANNELS = 3  # x, y and the keypoint score (cprcoach.model.data.normalise)
MOTION_CHANNELS = 2
EMBEDDING_CHANNELS = 16  # per joint, of the input embedding
TEMPORAL_KERNEL = 9  # frames of each block's temporal convolution, as in the paper


def with_motion(x: torch.Tensor) -> torch.Tensor:
    """(N, C, T, V) with x, y first -> (N, C + 2, T, V): the x, y change from the previous frame appended
    (0 at the first frame)."""
    motion = torch.zeros_like(x[:, :MOTION_CHANNELS])
    motion[:, :, 1:] = x[:, :MOTION_CHANNELS, 1:] - x[:, :MOTION_CHANNELS, :-1]
    return torch.cat([x, motion], dim=1)


def hop_distance(num_nodes: int, edges: Sequence[tuple[int, int]]) -> np.ndarray:
    """Shortest path length in edges between every two joints (inf if unconnected)."""
    distance = np.full((num_nodes, num_nodes), np.inf)
    np.fill_diagonal(distance, 0)
    for a, b in edges:
        distance[a, b] = distance[b, a] = 1
    for k in range(num_nodes):  # Floyd-Warshall: 26 joints, run once per model
        distance = np.minimum(distance, distance[:, k : k + 1] + distance[k : k + 1, :])
    return distance


def spatial_partition(num_nodes: int, edges: Sequence[tuple[int, int]], centre: int) -> np.ndarray:
    """(3, V, V): root, centripetal and centrifugal adjacency, each column-normalised by degree."""
    hops = hop_distance(num_nodes, edges)
    if np.isinf(hops).any():
        raise ValueError("the skeleton graph must be connected")
    adjacency = (hops <= 1).astype(np.float64)
    normalised = adjacency / adjacency.sum(axis=0, keepdims=True)
    to_centre = hops[:, centre]
    partition = np.zeros((3, num_nodes, num_nodes))
    for i, j in zip(*np.nonzero(adjacency), strict=True):
        # Entry [i, j]: joint i feeds joint j. Root if equally far from the centre as j,
        # centripetal if nearer, centrifugal if farther.
        if to_centre[i] == to_centre[j]:
            partition[0, i, j] = normalised[i, j]
        elif to_centre[i] < to_centre[j]:
            partition[1, i, j] = normalised[i, j]
        else:
            partition[2, i, j] = normalised[i, j]
    return partition.astype(np.float32)


class GraphConv(nn.Module):
    """One 1x1 convolution per partition, mixed over joints by that partition's adjacency."""

    def __init__(self, in_channels: int, out_channels: int, adjacency: torch.Tensor):
        super().__init__()
        self.register_buffer("adjacency", adjacency)
        self.importance = nn.Parameter(torch.ones_like(adjacency))
        self.out_channels = out_channels
        self.conv = nn.Conv2d(in_channels, out_channels * len(adjacency), kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, t, v = x.shape
        x = self.conv(x).view(n, len(self.adjacency), self.out_channels, t, v)
        return torch.einsum("nkctv,kvw->nctw", x, self.adjacency * self.importance)


class STGCNBlock(nn.Module):
    """Graph convolution, then a temporal convolution over TEMPORAL_KERNEL frames, with a residual connection."""

    def __init__(
        self, in_channels: int, out_channels: int, adjacency: torch.Tensor, stride: int, dropout: float, residual: bool
    ):
        super().__init__()
        self.gcn = GraphConv(in_channels, out_channels, adjacency)
        kernel = TEMPORAL_KERNEL
        self.tcn = nn.Sequential(
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, (kernel, 1), (stride, 1), ((kernel - 1) // 2, 0)),
            nn.BatchNorm2d(out_channels),
            nn.Dropout(dropout),
        )
        if not residual:
            self.residual: nn.Module | None = None
        elif in_channels == out_channels and stride == 1:
            self.residual = nn.Identity()
        else:
            self.residual = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=(stride, 1)), nn.BatchNorm2d(out_channels)
            )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.tcn(self.gcn(x))
        if self.residual is not None:
            out = out + self.residual(x)
        return self.relu(out)


@dataclass(frozen=True)
class STGCNConfig:
    """What rebuilds the network from a checkpoint: channels, strides and dropout from model.skeleton;
    the input, graph centre and embedding are the architecture's, recorded so a checkpoint names them."""

    num_classes: int
    channels: list[int]
    strides: list[int]
    dropout: float
    in_channels: int = INPUT_CHANNELS
    centre: int = CENTRE
    embedding: int = EMBEDDING_CHANNELS

    @classmethod
    def from_settings(cls, skeleton: SkeletonSettings, num_classes: int) -> STGCNConfig:
        return cls(
            num_classes=num_classes, channels=skeleton.channels, strides=skeleton.strides, dropout=skeleton.dropout
        )


class STGCN(nn.Module):
    """Skeleton sequences (N, 3, T, 26) -> class logits (N, num_classes), features on request."""

    def __init__(self, config: STGCNConfig):
        super().__init__()
        self.config = config
        cfg = config
        if len(cfg.channels) != len(cfg.strides):
            raise ValueError("channels and strides must have one entry per block")
        joints = len(HALPE26)
        adjacency = torch.from_numpy(spatial_partition(joints, HALPE26_EDGES, cfg.centre))
        channels = cfg.in_channels + MOTION_CHANNELS
        self.data_bn = nn.BatchNorm1d(channels * joints)
        self.embed = nn.Conv1d(channels * joints, cfg.embedding * joints, kernel_size=1, groups=joints)
        blocks, previous = [], cfg.embedding
        for i, (channels, stride) in enumerate(zip(cfg.channels, cfg.strides, strict=True)):
            blocks.append(STGCNBlock(previous, channels, adjacency, stride, cfg.dropout if i else 0.0, residual=i > 0))
            previous = channels
        self.blocks = nn.ModuleList(blocks)
        self.dropout = nn.Dropout(cfg.dropout)
        self.fc = nn.Linear(previous, cfg.num_classes)

    @property
    def feature_dim(self) -> int:
        return self.config.channels[-1]

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, T, V) -> (N, T', d): the last block's output averaged over joints."""
        x = with_motion(x)
        n, c, t, v = x.shape
        x = self.embed(self.data_bn(x.permute(0, 3, 1, 2).reshape(n, v * c, t)))
        x = x.view(n, v, -1, t).permute(0, 2, 3, 1)
        for block in self.blocks:
            x = block(x)
        return x.mean(dim=3).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(self.tokens(x).mean(dim=1)))

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(pooled (N, d), tokens (N, T', d), logits (N, classes)) in one pass."""
        tokens = self.tokens(x)
        pooled = tokens.mean(dim=1)
        return pooled, tokens, self.fc(pooled)
