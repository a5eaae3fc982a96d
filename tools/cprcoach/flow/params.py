"""TV-L1 parameters (OpenCV's names and defaults) and the checks both backends share.

Kept apart from the solvers so that reading a config or running the OpenCV backend does not
import torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from cprcoach.errors import ConfigError, CprCoachError


@dataclass(frozen=True)
class TVL1Params:
    """TV-L1 parameters with OpenCV's names and defaults (config ``flow.tvl1``)."""

    tau: float = 0.25
    lambda_: float = 0.15
    theta: float = 0.3
    nscales: int = 5
    warps: int = 5
    epsilon: float = 0.01
    inner_iterations: int = 30
    outer_iterations: int = 10
    scale_step: float = 0.8
    gamma: float = 0.0
    median_filtering: int = 5

    def __post_init__(self) -> None:
        if self.median_filtering < 1 or (self.median_filtering > 1 and self.median_filtering % 2 == 0):
            raise ConfigError(
                f"flow.tvl1.median_filtering must be 1 (off) or an odd window, not {self.median_filtering}",
                fix="use 5, OpenCV's default, or 3",
            )

    @classmethod
    def from_config(cls, tvl1: Mapping[str, Any] | None) -> TVL1Params:
        """Build from the config's ``flow.tvl1`` mapping, whose ``lambda`` is a Python keyword."""
        known = {f.name.rstrip("_"): f.name for f in fields(cls)}
        unknown = sorted(set(tvl1 or {}) - set(known))
        if unknown:
            raise ConfigError(
                f"unknown flow.tvl1 parameters: {', '.join(unknown)}",
                fix=f"use only {', '.join(sorted(known))}",
            )
        types = {f.name: {"int": int, "float": float}[f.type] for f in fields(cls)}
        return cls(**{known[key]: types[known[key]](value) for key, value in (tvl1 or {}).items()})


def check_clip_length(frames: int) -> None:
    """Both backends refuse a clip too short to have a pair of frames."""
    if frames < 2:
        raise CprCoachError(
            f"a clip of {frames} frame{'s' if frames != 1 else ''} has no flow: TV-L1 needs two frames or more",
            fix="check the clip: it was cut too short or failed to decode",
        )
