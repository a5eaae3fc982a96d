"""The alphapose backend: AlphaPose (Halpe-26 models) as the user installed it, or its saved results.

Two ways in, chosen by config:
- pose.alphapose.results_dir: read `alphapose-results.json` files made separately with
  AlphaPose's scripts/demo_inference.py, one per raw video, named like the raw videos
  ({participant}/{view}/{label}_{take}.json). They hold raw-video pixels (AlphaPose ran on
  the recordings). Format (AlphaPose's default JSON output): a list of one entry per person
  and frame: {image_id, category_id, keypoints: [x, y, score] * joints, score, box: [x, y, w, h],
  idx: track id (with --pose_track / --pose_flow)}.
- pose.alphapose.repo / config / checkpoint / detector: run AlphaPose's own modules in this
  process over the pose clip, frame by frame, as its scripts/demo_api.py does: human
  detector (get_detector), crop (SimpleTransform.test_transform), the pose network
  (builder.build_sppe + the checkpoint), heatmap -> coordinates, pose NMS.

image_id numbering: AlphaPose names video frames "0.jpg", "1.jpg", ... (0-based); frames
extracted to files are usually zero-padded and 1-based ("00001.jpg", "img_00001.jpg", as
ffmpeg and denseflow write them). The frame number is the last group of digits of the name;
padded names whose smallest number is 1 or more count from 1, everything else from 0.
Integer ids (demo_inference.py --eval) count from 0. Halpe-136 results keep their first 26
joints (the Halpe-26 body and feet); COCO-17 results fill joints 0-16 and score the rest 0.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import json
import logging
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import av
import numpy as np

from cprcoach.errors import CprCoachError
from cprcoach.pose.format import keypoint_box
from cprcoach.pose.rescuer import Person
from cprcoach.skeleton import HALPE26

log = logging.getLogger(__name__)

KEY = "pose.alphapose"
RESULTS_FIX = "produce it with AlphaPose's scripts/demo_inference.py (default --format), or delete it"
# Detector weights AlphaPose expects inside its checkout, by pose.alphapose.detector.
DETECTOR_WEIGHTS = {"yolo": "detector/yolo/data/yolov3-spp.weights"}


def results_path(results_dir: str | Path, clip: str | Path) -> Path:
    """The results file of a clip results/clips/P01/V1/E00_01.pose.mp4: RESULTS_DIR/P01/V1/E00_01.json."""
    clip = Path(clip)
    return Path(results_dir) / clip.parent.parent.name / clip.parent.name / f"{clip.name.split('.')[0]}.json"


def _resolve(value: str, repo: Path | None) -> Path:
    """A configured path: as given if it exists, else relative to the AlphaPose checkout."""
    path = Path(value).expanduser()
    if path.exists() or path.is_absolute() or repo is None:
        return path
    return repo / path


def check_settings(alphapose: dict[str, Any]) -> dict[str, Path]:
    """Validate pose.alphapose; returns the resolved paths, or raises naming the keys to set."""
    if alphapose.get("results_dir"):
        folder = Path(alphapose["results_dir"]).expanduser()
        if not folder.is_dir():
            raise CprCoachError(
                "pose.alphapose.results_dir is not a folder",
                path=folder,
                fix="set pose.alphapose.results_dir in config.yaml to the folder of alphapose-results.json files",
            )
        return {"results_dir": folder}
    missing = [f"{KEY}.{key}" for key in ("repo", "config", "checkpoint") if not alphapose.get(key)]
    if missing:
        raise CprCoachError(
            f"pose.backend is alphapose, but {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set",
            fix=f"set {KEY}.repo, {KEY}.config and {KEY}.checkpoint in config.yaml (an AlphaPose checkout built with "
            f"its setup.py, a Halpe-26 model config and its .pth weights), or {KEY}.results_dir to read "
            "alphapose-results.json files made separately; or choose another pose.backend",
        )
    repo = Path(alphapose["repo"]).expanduser()
    if not (repo / "alphapose").is_dir():
        raise CprCoachError(
            "not an AlphaPose checkout (no alphapose/ package inside)",
            path=repo,
            fix=f"set {KEY}.repo in config.yaml to the folder cloned from AlphaPose's repository",
        )
    paths = {"repo": repo}
    for key in ("config", "checkpoint"):
        paths[key] = _resolve(alphapose[key], repo)
        if not paths[key].is_file():
            raise CprCoachError(
                f"{KEY}.{key} names no file",
                path=paths[key],
                fix=f"set {KEY}.{key} in config.yaml (relative paths are tried in the AlphaPose checkout too)",
            )
    weights = DETECTOR_WEIGHTS.get(alphapose.get("detector", "yolo"))
    if weights and not (repo / weights).is_file():
        raise CprCoachError(
            "AlphaPose's human detector weights are missing",
            path=repo / weights,
            fix=f"download them there as AlphaPose's docs/INSTALL.md says, or set {KEY}.detector",
        )
    return paths


def frame_numbers(image_ids: list[str | int]) -> dict[str | int, int]:
    """Map AlphaPose image ids to 0-based frame indices (rule in the module docstring)."""
    numbers: dict[str | int, int] = {}
    padded = False
    for image_id in set(image_ids):
        if isinstance(image_id, int):
            numbers[image_id] = image_id
            continue
        digits = re.findall(r"\d+", Path(str(image_id)).stem)
        if not digits:
            raise ValueError(f"image_id {image_id!r} has no frame number")
        numbers[image_id] = int(digits[-1])
        padded |= len(digits[-1]) > 1 and digits[-1].startswith("0")
    offset = 1 if padded and numbers and min(numbers.values()) >= 1 else 0
    return {key: value - offset for key, value in numbers.items()}


def _person(entry: dict[str, Any], size: tuple[int, int]) -> Person:
    values = np.asarray(entry["keypoints"], dtype=np.float32).reshape(-1, 3)
    keypoints = np.zeros((len(HALPE26), 3), dtype=np.float32)
    if len(values) >= len(HALPE26):
        keypoints[:] = values[: len(HALPE26)]
    elif len(values) == 17:
        keypoints[:17] = values
    else:
        raise ValueError(f"{len(values)} keypoints per person (expected 26, 136 or 17)")
    box_xywh = entry.get("box", entry.get("bbox"))
    if box_xywh is not None:
        x, y, w, h = (float(v) for v in box_xywh)
        box = np.array([x, y, x + w, y + h], dtype=np.float32)
    else:
        box = keypoint_box(keypoints, *size)
    track = entry.get("idx")
    if isinstance(track, list):  # PoseFlow may give a list of ids; the first is the person's
        track = track[0] if track else None
    return Person(keypoints, box, float(entry.get("score", 1.0)), None if track is None else int(track))


def read_results(path: str | Path, frames: int, *, size: tuple[int, int]) -> list[list[Person]]:
    """Read alphapose-results.json into people per frame (T lists), in the file's pixels.

    `size` (width, height) bounds a box made from keypoints when an entry has none. Entries
    past the clip's last frame are dropped with a warning.
    """
    path = Path(path)
    try:
        entries = json.loads(path.read_text())
        if not isinstance(entries, list):
            raise ValueError("expected a list of detections")
        numbers = frame_numbers([entry["image_id"] for entry in entries])
        people: list[list[Person]] = [[] for _ in range(frames)]
        beyond = 0
        for entry in entries:
            if entry.get("category_id", 1) != 1:
                continue
            t = numbers[entry["image_id"]]
            if 0 <= t < frames:
                people[t].append(_person(entry, size))
            else:
                beyond += 1
    except FileNotFoundError:
        raise CprCoachError("AlphaPose results file not found", path=path, fix=RESULTS_FIX) from None
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise CprCoachError(f"not an AlphaPose results file ({error})", path=path, fix=RESULTS_FIX) from None
    if beyond:
        log.warning("%s: %d detections lie past the clip's %d frames; dropped", path, beyond, frames)
    return people


@contextlib.contextmanager
def _inside(repo: Path) -> Iterator[None]:
    """AlphaPose imports itself and its `detector` package from its checkout, and reads some
    files relative to it: put it first on sys.path and work from there while loading."""
    before = os.getcwd()
    sys.path.insert(0, str(repo))
    os.chdir(repo)
    try:
        yield
    finally:
        os.chdir(before)
        with contextlib.suppress(ValueError):
            sys.path.remove(str(repo))


class AlphaPoseRunner:
    """AlphaPose's detector and pose network loaded once; call it on BGR frames, get people."""

    def __init__(self, repo: Path, config: Path, checkpoint: Path, detector: str, device: str = "cpu"):
        import torch

        config, checkpoint = config.resolve(), checkpoint.resolve()
        try:
            with _inside(repo):
                modules = {
                    name: importlib.import_module(name)
                    for name in (
                        "alphapose.models.builder",
                        "alphapose.utils.config",
                        "alphapose.utils.presets",
                        "alphapose.utils.transforms",
                        "alphapose.utils.pPose_nms",
                        "detector.apis",
                    )
                }
                self.cfg = modules["alphapose.utils.config"].update_config(str(config))
                builder = modules["alphapose.models.builder"]
                self.device = torch.device(device)
                self.opt = SimpleNamespace(
                    detector=detector,
                    gpus=[-1] if self.device.type == "cpu" else [self.device.index or 0],
                    device=self.device,
                    tracking=False,
                    sp=True,
                    min_box_area=0,
                    flip=False,
                )
                self.model = builder.build_sppe(self.cfg.MODEL, preset_cfg=self.cfg.DATA_PRESET)
                self.model.load_state_dict(torch.load(str(checkpoint), map_location=self.device))
                self.model.to(self.device).eval()
                preset = self.cfg.DATA_PRESET
                self.transform = modules["alphapose.utils.presets"].SimpleTransform(
                    builder.retrieve_dataset(self.cfg.DATASET.TRAIN),
                    scale_factor=0,
                    input_size=preset.IMAGE_SIZE,
                    output_size=preset.HEATMAP_SIZE,
                    rot=0,
                    sigma=preset.SIGMA,
                    train=False,
                    add_dpg=False,
                    gpu_device=self.device,
                )
                self.detector = modules["detector.apis"].get_detector(self.opt)
        except (ImportError, AttributeError) as error:
            raise CprCoachError(
                f"AlphaPose cannot be loaded from its checkout ({error})",
                path=repo,
                fix=f"build it there (python setup.py build develop) in this environment, or set {KEY}.results_dir",
            ) from None
        self.repo = repo
        to_coord = modules["alphapose.utils.transforms"].get_func_heatmap_to_coord(self.cfg)
        # Models trained with the combined loss return [heatmap decoder, regression decoder]; the
        # heatmap one decodes the 26 body joints (as AlphaPose's writer does).
        self.to_coord = to_coord[0] if isinstance(to_coord, list) else to_coord
        self.pose_nms = modules["alphapose.utils.pPose_nms"].pose_nms
        self.nms_takes_loss = "use_heatmap_loss" in inspect.signature(self.pose_nms).parameters
        self.hm_size = preset.HEATMAP_SIZE
        self.norm_type = self.cfg.LOSS.get("NORM_TYPE", None)
        self.version = getattr(importlib.import_module("alphapose"), "__version__", "unknown")

    def __call__(self, bgr: np.ndarray) -> list[Person]:
        """Every person AlphaPose finds in one frame (coordinates in that frame's pixels)."""
        import torch

        with torch.no_grad(), _inside(self.repo):
            image = self.detector.image_preprocess(bgr)
            image = torch.from_numpy(image) if isinstance(image, np.ndarray) else image
            image = image.unsqueeze(0) if image.dim() == 3 else image
            dims = torch.FloatTensor([(bgr.shape[1], bgr.shape[0])]).repeat(1, 2)
            dets = self.detector.images_detection(image, dims)
            if isinstance(dets, int) or dets.shape[0] == 0:
                return []
            dets = (torch.from_numpy(dets) if isinstance(dets, np.ndarray) else dets).cpu()
            dets = dets[dets[:, 0] == 0]
            boxes, scores = dets[:, 1:5], dets[:, 5:6]
            ids = torch.zeros(scores.shape)
            rgb = np.ascontiguousarray(bgr[:, :, ::-1])
            inputs = torch.zeros(len(boxes), 3, *self.cfg.DATA_PRESET.IMAGE_SIZE)
            cropped = torch.zeros(len(boxes), 4)
            for i, box in enumerate(boxes):
                inputs[i], crop = self.transform.test_transform(rgb, box)
                cropped[i] = torch.FloatTensor(crop)
            heatmaps = self.model(inputs.to(self.device)).cpu()
            coords, confidences = [], []
            for i in range(len(heatmaps)):
                xy, score = self.to_coord(
                    heatmaps[i][: len(HALPE26)], cropped[i].tolist(), hm_shape=self.hm_size, norm_type=self.norm_type
                )
                coords.append(torch.from_numpy(xy).unsqueeze(0))
                confidences.append(torch.from_numpy(score).unsqueeze(0))
            extra = {"use_heatmap_loss": self.cfg.DATA_PRESET.get("LOSS_TYPE", "MSELoss") == "MSELoss"}
            boxes, scores, _, xy, score, _ = self.pose_nms(
                boxes,
                scores,
                ids,
                torch.cat(coords),
                torch.cat(confidences),
                0,
                **(extra if self.nms_takes_loss else {}),
            )
        people = []
        for k in range(len(scores)):
            keypoints = np.concatenate([np.asarray(xy[k]), np.asarray(score[k]).reshape(-1, 1)], axis=1)
            people.append(
                Person(keypoints.astype(np.float32), np.asarray(boxes[k], dtype=np.float32), float(scores[k]))
            )
        return people


def alphapose_api_people(clip: str | Path, paths: dict[str, Path], detector: str) -> tuple[list[list[Person]], str]:
    """Run AlphaPose over every frame of the clip; people per frame in clip pixels, and its version."""
    import torch

    runner = AlphaPoseRunner(
        paths["repo"], paths["config"], paths["checkpoint"], detector, "cuda:0" if torch.cuda.is_available() else "cpu"
    )
    with av.open(str(clip)) as container:
        people = [runner(frame.to_ndarray(format="bgr24")) for frame in container.decode(video=0)]
    return people, runner.version
