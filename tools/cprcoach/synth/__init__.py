"""The embedded synthetic dataset: a kneeling rescuer compressing a manikin, seen by 4 cameras.

`cprcoach synth --config config.yaml` renders one H.264 video per participant, view, class and
take (video.source size and fps, raw_pattern names) with a ground-truth sidecar beside each.
"""

from cprcoach.synth.camera import Camera, make_rig, project
from cprcoach.synth.dataset import (
    add_arguments,
    build_parser,
    generate_dataset,
    main,
    render_video,
    run,
    select_labels,
    video_specs,
)
from cprcoach.synth.render import render_frames
from cprcoach.synth.sidecar import read_sidecar, sidecar_path, write_sidecar
from cprcoach.synth.take import Take, VideoSpec, simulate

__all__ = [
    "Camera",
    "Take",
    "VideoSpec",
    "add_arguments",
    "build_parser",
    "generate_dataset",
    "main",
    "make_rig",
    "project",
    "read_sidecar",
    "render_frames",
    "render_video",
    "run",
    "select_labels",
    "sidecar_path",
    "simulate",
    "video_specs",
    "write_sidecar",
]
