"""One recording through the workflow's own preprocessing, up to what a backbone reads.

`cprcoach assess` scores recordings that are not part of the dataset; they must look exactly like
the videos the backbone was trained on, so the steps are the workflow's own functions with the
settings of the same config.yaml: the resize pass (video section), then the pose backend (pose
section) for the skeleton, or TV-L1 (flow section) for flow. The clip a modality reads is the one
the workflow gives it: pose.clip for the skeleton, flow.clip for rgb and flow (the shards' RGB).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from cprcoach.errors import CprCoachError
from cprcoach.model.data import flow_clip_input, normalise, rgb_clip_input
from cprcoach.model.registry import BACKBONES
from cprcoach.pose.format import read_pose
from cprcoach.video.frames import read_frames

log = logging.getLogger(__name__)


def clip_name(modality: str, config: dict[str, Any]) -> str:
    return config["pose"]["clip"] if modality == "skeleton" else config["flow"]["clip"]


def prepare_recording(raw: Path, modalities: Sequence[str], config: dict[str, Any], workdir: Path) -> dict[str, Path]:
    """Resize `raw` once into the clips `modalities` read and, for skeleton and flow, run the pose or
    flow stage on its clip; returns each modality's prepared file.

    `config` is a validated config (every section complete); each stage takes its own section."""
    from cprcoach.video.resize import VideoSettings, resize_video

    video = VideoSettings.from_config(config["video"])
    probe = workdir / f"{raw.stem}.probe.json"
    names = {clip_name(modality, config) for modality in modalities}
    specs = [spec for spec in video.clips_beside(probe) if spec.name in names]
    resize_video(raw, specs, probe, video, threads=config["video"]["threads"])
    clips = {spec.name: spec.path for spec in specs}
    prepared = {}
    for modality in modalities:
        clip = clips[clip_name(modality, config)]
        if modality == "rgb":
            prepared[modality] = clip
        elif modality == "skeleton":
            from cprcoach.pose.estimate import estimate_pose

            prepared[modality] = workdir / f"{raw.stem}.pose.npz"
            estimate_pose(clip, probe, prepared[modality], config["pose"])
        else:
            from cprcoach.flow.extract import extract_flow
            from cprcoach.flow.params import FlowSettings

            prepared[modality] = workdir / f"{raw.stem}.flow.npz"
            flow = FlowSettings.from_config(config["flow"])
            extract_flow(clip, prepared[modality], flow, threads=config["flow"]["threads"])
    return prepared


def model_input(prepared: Path, checkpoint: dict[str, Any]) -> torch.Tensor:
    """The backbone's input (a batch of one) from a prepared file, as the training data was made."""
    modality, settings = checkpoint["modality"], checkpoint["input"]
    backbone = BACKBONES[modality]
    if prepared.suffix != backbone.prepared_suffix:
        raise CprCoachError(
            f"the {modality} backbone reads a {backbone.prepared}, not a {prepared.suffix or 'suffix-less'} file",
            path=prepared,
            fix="pass the raw recording without --prepared, or the file the workflow made for this modality",
        )
    if modality == "skeleton":
        x = normalise(read_pose(prepared).keypoints, settings["frames"])
        return torch.from_numpy(x[None])
    if modality == "rgb":
        frames = read_frames(prepared, "rgb24")
        return rgb_clip_input(frames, settings["segments"], settings["length"])[None]
    from cprcoach.flow.format import read_flow

    x, y, meta = read_flow(prepared)
    return flow_clip_input(x, y, settings["segments"], settings["length"], bound=meta["bound"])[None]
