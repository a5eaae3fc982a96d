"""The model zoo by name: the backbone of every modality and every head, and where their classes live.

The names feed the argument parsers' choices, the Snakefile's wildcard constraints and (checked by
a test) the schema's enums. The Snakefile reads them at parse time, so this module imports no
PyTorch: a network class is imported only when asked for (`Architecture.network`, `Head.network`).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Architecture:
    """A backbone network, as its checkpoint names it: the module holding its network and config classes."""

    module: str
    network_name: str
    config_name: str

    @property
    def network(self) -> type:
        return getattr(importlib.import_module(self.module), self.network_name)

    @property
    def config(self) -> type:
        """The dataclass that rebuilds the network from a checkpoint."""
        return getattr(importlib.import_module(self.module), self.config_name)


ARCHITECTURES = {
    "stgcn": Architecture("cprcoach.model.networks.stgcn", "STGCN", "STGCNConfig"),
    "tsn": Architecture("cprcoach.model.networks.tsn", "TSN", "TSNConfig"),
}


@dataclass(frozen=True)
class Backbone:
    """One modality's backbone: its architecture, the model section it trains with (model.skeleton or
    model.video) and the file it reads once the workflow has preprocessed a recording."""

    architecture: str
    section: str
    prepared: str
    prepared_suffix: str


BACKBONES = {
    "skeleton": Backbone("stgcn", "skeleton", "pose track (.npz)", ".npz"),
    "rgb": Backbone("tsn", "video", "RGB clip (.mp4)", ".mp4"),
    "flow": Backbone("tsn", "video", "flow (.npz)", ".npz"),
}
MODALITIES = tuple(BACKBONES)


# A fusion of modalities is named by its members joined with this (rgb+flow): its folder and summary rows.
FUSION_SEPARATOR = "+"


def fusion_name(members: list[str] | tuple[str, ...]) -> str:
    return FUSION_SEPARATOR.join(members)


# A fusion's name as a regular expression (the Snakefile's wildcard constraint).
FUSION_REGEX = rf"({'|'.join(MODALITIES)})(\{FUSION_SEPARATOR}({'|'.join(MODALITIES)}))+"

# How a summary row's scores were made: one modality's, or a fusion's, late (of the modalities'
# probabilities) or on features (a head trained on the modalities' joined features).
FUSION_KINDS = ("none", "features", "late")


def modalities_of(architecture: str) -> tuple[str, ...]:
    """The modalities one architecture serves (tsn: rgb and flow)."""
    return tuple(name for name, backbone in BACKBONES.items() if backbone.architecture == architecture)


@dataclass(frozen=True)
class Head:
    """A head network of cprcoach.model.heads: whether it reads the token sequences (else the pooled
    features) and whether it learns from imagined composites (ImagineNet) or from single samples
    alone (the sigmoid baseline)."""

    class_name: str
    title: str
    tokens: bool
    imagined: bool

    @property
    def network(self) -> type:
        return getattr(importlib.import_module("cprcoach.model.heads"), self.class_name)

    @property
    def copies(self) -> int:
        """Copies of a test video the head is given: its training inputs' k (pairs, or single samples)."""
        return 2 if self.imagined else 1


HEADS = {
    "fc": Head("FCHead", "ImagineNet-FC", tokens=False, imagined=True),
    "sa": Head("SAHead", "ImagineNet-SA", tokens=True, imagined=True),
    "ca": Head("CAHead", "ImagineNet-CA", tokens=True, imagined=True),
    "sigmoid": Head("FCHead", "sigmoid baseline", tokens=False, imagined=False),
}
# The ImagineNet heads, which the workflow trains one job each (model.heads); every job also scores the baselines.
HEAD_NAMES = tuple(name for name, head in HEADS.items() if head.imagined)
# The backbone's own softmax, scored like a head but without one.
BACKBONE_SOFTMAX = "backbone"
# What `cprcoach model imagine --head` trains and scores, and what an assessment can score with (model.assess.head).
METHODS = (*HEADS, BACKBONE_SOFTMAX)
ASSESS_METHODS = (*HEAD_NAMES, BACKBONE_SOFTMAX)
# What every ImagineNet run also scores, on the same features: the methods without imagination.
BASELINES = (*(name for name, head in HEADS.items() if not head.imagined), BACKBONE_SOFTMAX)
