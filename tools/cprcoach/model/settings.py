"""config.yaml's model section as the model commands read it, one frozen dataclass per sub-section.

Every command takes the whole section (`--settings`, cprcoach.settings) and reads its part; the
schema holds every default. The section's workflow keys (modalities, heads, fusions, primary, threads)
are left out; of the seeds, each job trains with one (`--seed`, default the first).
"""

from __future__ import annotations

from dataclasses import dataclass

from cprcoach.errors import ConfigError
from cprcoach.settings import ConfigSection


@dataclass(frozen=True)
class BackboneTraining:
    """What the backbones' one training loop reads (cprcoach.model.train.fit), and their dropout."""

    channels: list[int]
    dropout: float
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    label_smoothing: float


@dataclass(frozen=True)
class SkeletonSettings(BackboneTraining):
    """model.skeleton: the ST-GCN backbone's input, network and training."""

    frames: int
    strides: list[int]
    crop: float

    def __post_init__(self) -> None:
        if len(self.channels) != len(self.strides):
            raise ConfigError(
                f"{len(self.channels)} block widths but {len(self.strides)} strides",
                fix="give model.skeleton.channels and model.skeleton.strides one entry per block",
            )


@dataclass(frozen=True)
class VideoSettings(BackboneTraining):
    """model.video: the TSN backbone of the rgb and flow modalities, its input, network and training."""

    segments: int
    rgb_length: int
    flow_length: int
    workers: int

    def length(self, modality: str) -> int:
        """Consecutive frames (rgb) or flow pairs (flow) per snippet."""
        return {"rgb": self.rgb_length, "flow": self.flow_length}[modality]


@dataclass(frozen=True)
class HeadSettings:
    """model.imagine: the heads' training and the composites imagined for it."""

    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    step: int
    gamma: float
    draws: int
    triples: bool

    @property
    def orders(self) -> tuple[int, ...]:
        """The numbers of errors of the imagined composites."""
        return (2, 3) if self.triples else (2,)


@dataclass(frozen=True)
class AssessSettings:
    """model.assess, what `cprcoach assess` reads of it (modality and head choose the rule's inputs)."""

    threshold: float


@dataclass(frozen=True)
class ModelSettings(ConfigSection):
    """The model section: the device and seeds every command shares, and each command's part."""

    SECTION = "model"

    device: str
    seeds: list[int]
    skeleton: SkeletonSettings
    video: VideoSettings
    imagine: HeadSettings
    assess: AssessSettings
