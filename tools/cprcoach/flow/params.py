"""The flow stage's settings, TV-L1's parameters (OpenCV's names) and the checks both backends share.

Kept apart from the solvers so that reading a config or running the OpenCV backend does not
import torch.
"""

from __future__ import annotations

from dataclasses import dataclass

from cprcoach.errors import ConfigError, CprCoachError
from cprcoach.settings import ConfigSection


@dataclass(frozen=True)
class TVL1Params(ConfigSection):
    """TV-L1 parameters with OpenCV's names (config ``flow.tvl1``; the schema holds OpenCV's defaults)."""

    SECTION = "flow.tvl1"

    tau: float
    lambda_: float
    theta: float
    nscales: int
    warps: int
    epsilon: float
    inner_iterations: int
    outer_iterations: int
    scale_step: float
    gamma: float
    median_filtering: int

    def __post_init__(self) -> None:
        if self.median_filtering < 1 or (self.median_filtering > 1 and self.median_filtering % 2 == 0):
            raise ConfigError(
                f"flow.tvl1.median_filtering must be 1 (off) or an odd window, not {self.median_filtering}",
                fix="use 5, OpenCV's default, or 3",
            )


@dataclass(frozen=True)
class FlowSettings(ConfigSection):
    """What one flow job computes (config ``flow``; ``clip`` and ``threads`` are the workflow's)."""

    SECTION = "flow"

    backend: str
    device: str
    batch_size: int | str  # pairs per torch call, or "auto"
    bound: float
    output: str
    tvl1: TVL1Params

    @property
    def pairs_per_call(self) -> int | None:
        """The torch backend's batch, None for as many as fit."""
        return None if self.batch_size == "auto" else int(self.batch_size)


def check_clip_length(frames: int) -> None:
    """Both backends refuse a clip too short to have a pair of frames."""
    if frames < 2:
        raise CprCoachError(
            f"a clip of {frames} frame{'s' if frames != 1 else ''} has no flow: TV-L1 needs two frames or more",
            fix="check the clip: it was cut too short or failed to decode",
        )
