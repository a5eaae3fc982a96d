"""TSN (Wang et al., ECCV 2016) backbones for the RGB and flow streams: a compact 2D CNN on each segment.

A video is cut into S equal segments; from each, a snippet of `length` consecutive frames (RGB:
one frame; flow: 5 x/y pairs stacked on the channels, the paper's lengths and model.video's
defaults) goes through the same 2D CNN, and the segment scores are averaged (TSN's average
consensus). cprcoach.model.data samples the snippets and normalises them.

The CNN is trained from scratch (no ImageNet weights here): four blocks of two 3x3 conv-BN-ReLU
layers, the first of each with stride 2, then a global average pool. With the default widths
(32, 64, 128, 128) an epoch of 150 videos of 112x84 at 8 segments takes about 13 s on one CPU
thread (flow, 10 input channels: 17 s), nearly all of it in the forward and backward passes;
ResNet-sized networks would not train on the demo's CPUs and have little to learn from a few
hundred videos.

`tokens` gives one feature per segment, (N, S, d), the temporal token sequence the ImagineNet
attention heads read; its mean over segments is the pooled feature.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from cprcoach.model.registry import modalities_of
from cprcoach.model.settings import VideoSettings

MODALITIES = modalities_of("tsn")


@dataclass(frozen=True)
class TSNConfig:
    """What rebuilds the network from a checkpoint (model.video's settings for one modality)."""

    modality: str
    num_classes: int
    segments: int
    length: int
    channels: list[int]
    dropout: float

    def __post_init__(self) -> None:
        if self.modality not in MODALITIES:
            raise ValueError(f"modality must be one of {', '.join(MODALITIES)}, got {self.modality!r}")

    @classmethod
    def from_settings(cls, video: VideoSettings, modality: str, num_classes: int) -> TSNConfig:
        return cls(
            modality=modality,
            num_classes=num_classes,
            segments=video.segments,
            length=video.length(modality),
            channels=video.channels,
            dropout=video.dropout,
        )

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
    """Snippets (N, S, C, H, W), normalised by cprcoach.model.data -> class logits (N, num_classes)."""

    def __init__(self, config: TSNConfig):
        super().__init__()
        self.config = config
        layers, previous = [], config.in_channels
        for channels in config.channels:
            layers += [conv_bn_relu(previous, channels, stride=2), conv_bn_relu(channels, channels, stride=1)]
            previous = channels
        self.cnn = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.dropout = nn.Dropout(config.dropout)
        self.fc = nn.Linear(previous, config.num_classes)

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
