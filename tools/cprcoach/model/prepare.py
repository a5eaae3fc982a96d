"""One recording through the workflow's own preprocessing, up to what a backbone reads.

`cprcoach assess` scores recordings that are not part of the dataset; they must look exactly like
the videos the backbone was trained on, so the steps are the workflow's own functions with the
settings of the same config.yaml: the resize pass (video section), then the pose backend (pose
section) for the skeleton, or TV-L1 (flow section) for flow. The clip a modality reads is the one
the workflow gives it: pose.clip for the skeleton, flow.clip for rgb and flow (the shards' RGB).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from cprcoach.errors import CprCoachError
from cprcoach.model.data import normalise
from cprcoach.pose.format import read_pose
from cprcoach.video.frames import read_frames

log = logging.getLogger(__name__)

# What each modality reads once preprocessed, as the workflow stores it.
PREPARED = {"skeleton": "pose track (.npz)", "rgb": "RGB clip (.mp4)", "flow": "flow (.npz)"}


def clip_name(modality: str, config: dict[str, Any]) -> str:
    return config["pose"]["clip"] if modality == "skeleton" else config["flow"]["clip"]


def prepare_recording(raw: Path, modality: str, config: dict[str, Any], workdir: Path) -> Path:
    """Resize `raw` and, for skeleton and flow, run the pose or flow stage; returns the prepared file."""
    from cprcoach.video.resize import ClipSpec, EncoderSettings, resize_video

    video = config["video"]
    name = clip_name(modality, config)
    if name not in video["clips"]:
        raise CprCoachError(
            f"the {modality} modality reads clip {name!r}, which video.clips does not define",
            fix="pass the config.yaml the model was trained with (--config)",
        )
    size = video["clips"][name]
    clip = workdir / f"{raw.stem}.{name}.mp4"
    probe = workdir / f"{raw.stem}.probe.json"
    encoder = {key: video["encoder"][key] for key in ("preset", "crf", "scale_flags")}
    resize_video(
        raw,
        [ClipSpec(name, size["width"], size["height"], clip)],
        probe,
        source_width=video["source"]["width"],
        source_height=video["source"]["height"],
        fps=video["source"]["fps"],
        settings=EncoderSettings(**encoder, threads=video["threads"]),
    )
    if modality == "rgb":
        return clip
    if modality == "skeleton":
        from cprcoach.pose.estimate import estimate_pose

        out = workdir / f"{raw.stem}.pose.npz"
        estimate_pose(clip, probe, out, config["pose"])
        return out
    from cprcoach.flow.extract import extract_flow
    from cprcoach.flow.params import TVL1Params

    flow = config["flow"]
    out = workdir / f"{raw.stem}.flow.npz"
    extract_flow(
        clip,
        out,
        params=TVL1Params.from_config(flow["tvl1"]),
        backend=flow["backend"],
        device=flow["device"],
        batch_size=None if flow["batch_size"] == "auto" else int(flow["batch_size"]),
        bound=flow["bound"],
        output=flow["output"],
        threads=flow["threads"],
    )
    return out


def model_input(prepared: Path, checkpoint: dict[str, Any]) -> torch.Tensor:
    """The backbone's input (a batch of one) from a prepared file, as the training data was made."""
    from cprcoach.model import tsn

    modality, settings = checkpoint["modality"], checkpoint["input"]
    expected = ".mp4" if modality == "rgb" else ".npz"
    if prepared.suffix != expected:
        raise CprCoachError(
            f"the {modality} backbone reads a {PREPARED[modality]}, not a {prepared.suffix or 'suffix-less'} file",
            path=prepared,
            fix="pass the raw recording without --prepared, or the file the workflow made for this modality",
        )
    if modality == "skeleton":
        x = normalise(read_pose(prepared).keypoints, settings["frames"])
        return torch.from_numpy(x[None])
    if modality == "rgb":
        frames = read_frames(prepared, "rgb24")
        return tsn.rgb_clip_input(frames, settings["segments"], settings["length"])[None]
    from cprcoach.flow.format import read_flow

    x, y, meta = read_flow(prepared)
    return tsn.flow_clip_input(x, y, settings["segments"], settings["length"], bound=meta["bound"])[None]
