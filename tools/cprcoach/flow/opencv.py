"""TV-L1 optical flow with OpenCV's cv2.optflow.DualTVL1OpticalFlow, one pair at a time on the CPU."""

from __future__ import annotations

import cv2
import numpy as np

from cprcoach.errors import ConfigError
from cprcoach.flow.params import TVL1Params, check_clip_length

OPENCV_MEDIAN_SIZES = (1, 3, 5)  # cv::medianBlur filters float flow only with 3x3 and 5x5 windows


def create_tvl1(params: TVL1Params) -> cv2.optflow.DualTVL1OpticalFlow:
    """OpenCV's solver with our parameters (its keyword innnerIterations has three n's)."""
    if params.median_filtering not in OPENCV_MEDIAN_SIZES:
        raise ConfigError(
            f"flow.tvl1.median_filtering {params.median_filtering} is not supported by OpenCV's TV-L1",
            fix="use 5 or 3, or the torch backend, which filters with any odd window",
        )
    return cv2.optflow.DualTVL1OpticalFlow_create(
        tau=params.tau,
        lambda_=params.lambda_,
        theta=params.theta,
        nscales=params.nscales,
        warps=params.warps,
        epsilon=params.epsilon,
        innnerIterations=params.inner_iterations,
        outerIterations=params.outer_iterations,
        scaleStep=params.scale_step,
        gamma=params.gamma,
        medianFiltering=params.median_filtering,
        useInitialFlow=False,
    )


def flow_opencv(frames: np.ndarray, params: TVL1Params) -> np.ndarray:
    """Flow between consecutive frames of a grey uint8 clip (T, H, W), as (T - 1, H, W, 2) float32.

    The frames go in as uint8, which OpenCV converts to float without scaling (0-255), the same
    range the torch backend works in.
    """
    if frames.ndim != 3 or frames.dtype != np.uint8:
        raise ValueError(f"expected a grey uint8 clip (T, H, W), got {frames.dtype} {frames.shape}")
    check_clip_length(len(frames))
    solver = create_tvl1(params)
    flows = np.empty((len(frames) - 1, *frames.shape[1:], 2), dtype=np.float32)
    for index in range(len(frames) - 1):
        flows[index] = solver.calc(frames[index], frames[index + 1], None)
    return flows
