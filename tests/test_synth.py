"""cprcoach synth: file layout, decoded videos, sidecars, determinism and the physics of each error."""

from __future__ import annotations

import copy
import logging
from pathlib import Path

import av
import numpy as np
import pytest
import yaml

from cprcoach.classes import load_classes
from cprcoach.config import validate_config
from cprcoach.errors import ConfigError
from cprcoach.skeleton import COCO17, HALPE26, HALPE26_EDGES, JOINT
from cprcoach.synth import (
    generate_dataset,
    main,
    project,
    read_sidecar,
    render_frames,
    select_labels,
    sidecar_path,
    simulate,
    video_specs,
)
from cprcoach.synth.body import HAND_HEIGHT

FPS = 25


def make_config(raw_dir: Path, **synth) -> dict:
    config = {
        "raw_dir": str(raw_dir),
        "raw_pattern": "{participant}/{view}/{label}_{take}.mp4",
        "views": ["V1", "V2", "V3", "V4"],
        "video": {"source": {"width": 160, "height": 84, "fps": FPS}, "clips": {"rgb": {"width": 64, "height": 48}}},
        "synth": {
            "seed": 0,
            "participants": 1,
            "takes": 1,
            "seconds": 1.0,
            "singles": ["E00", "E05", "E07"],
            "composites": ["E05+E08"],
            "noise": 3.0,
            "workers": 2,
        },
    }
    config["synth"].update(synth)
    return validate_config(config)


def first_frame(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return next(container.decode(video=0)).to_ndarray(format="bgr24")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    raw = tmp_path_factory.mktemp("raw")
    config = make_config(raw)
    return config, generate_dataset(config)


@pytest.fixture(scope="module")
def physics(tmp_path_factory):
    """4-second single-view clips of the errors whose motion the tests measure, for two participants."""
    raw = tmp_path_factory.mktemp("physics")
    labels = ["E00", "E01", "E02", "E03", "E04", "E05", "E06", "E07", "E08", "E09", "E10", "E11", "E12", "E13"]
    config = make_config(raw, participants=2, seconds=4.0, singles=labels, composites=0, noise=0.0)
    config["views"] = ["V1"]
    config["video"]["source"].update(width=96, height=54)
    generate_dataset(config)
    return {
        (p, label): read_sidecar(raw / p / "V1" / f"{label}_01.gt.json") for p in ("P01", "P02") for label in labels
    }


def test_skeleton():
    assert len(HALPE26) == 26 and HALPE26[:17] == COCO17
    assert HALPE26[17:20] == ("head", "neck", "hip")
    assert all(0 <= a < 26 and 0 <= b < 26 for a, b in HALPE26_EDGES)
    reached, frontier = {0}, [0]
    while frontier:  # one connected skeleton
        joint = frontier.pop()
        for a, b in HALPE26_EDGES:
            for x, y in ((a, b), (b, a)):
                if x == joint and y not in reached:
                    reached.add(y)
                    frontier.append(y)
    assert reached == set(range(26))


def test_files_follow_pattern(dataset):
    config, paths = dataset
    raw = Path(config["raw_dir"])
    labels = ["E00", "E05", "E07", "E05+E08"]
    expected = {raw / "P01" / view / f"{label}_01.mp4" for view in config["views"] for label in labels}
    assert len(paths) == 1 * 4 * 4 * 1
    assert set(paths) == expected
    assert set(raw.rglob("*.mp4")) == expected
    assert {sidecar_path(p) for p in expected} == set(raw.rglob("*.gt.json"))
    assert sidecar_path(raw / "P01/V1/E05_01.mp4") == raw / "P01/V1/E05_01.gt.json"
    assert not list(raw.rglob(".*partial*"))


def test_decoded_videos(dataset):
    _, paths = dataset
    for path in paths[:4]:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            assert stream.average_rate == FPS
            assert (stream.codec_context.width, stream.codec_context.height) == (160, 84)
            assert sum(1 for _ in container.decode(video=0)) == FPS


def test_sidecar_contents(dataset):
    _, paths = dataset
    table = load_classes()
    for path in paths:
        gt = read_sidecar(sidecar_path(path))
        assert (gt["participant"], gt["view"], gt["take"]) == ("P01", path.parent.name, "01")
        assert gt["label"] == path.stem.rsplit("_", 1)[0]
        assert gt["multi_hot"] == table.multi_hot(gt["label"]).tolist()
        assert gt["errors"] == table.errors_of(gt["label"])
        assert (gt["fps"], gt["width"], gt["height"], gt["frames"]) == (FPS, 160, 84, FPS)
        assert gt["keypoints_2d"].shape == (FPS, 26, 2)
        assert gt["visible"].shape == (FPS, 26)
        assert gt["keypoints_3d"].shape == (FPS, 26, 3)
        assert gt["chest_depth"].shape == (FPS,)
        assert (
            gt["camera"]["K"].shape == (3, 3) and gt["camera"]["R"].shape == (3, 3) and gt["camera"]["t"].shape == (3,)
        )
        assert gt["visible"].all(), "the rescuer must be inside every view"
        reprojected = project(gt["keypoints_3d"], gt["camera"]["K"], gt["camera"]["R"], gt["camera"]["t"])
        np.testing.assert_allclose(reprojected, gt["keypoints_2d"], atol=0.006)
        for key in ("rate", "shirt", "trousers", "skin", "scale"):
            assert key in gt["participant_params"]


def test_views_are_synchronised(dataset):
    _, paths = dataset
    by_label: dict[str, list[np.ndarray]] = {}
    for path in paths:
        by_label.setdefault(path.stem, []).append(read_sidecar(sidecar_path(path))["keypoints_3d"])
    for takes in by_label.values():
        assert len(takes) == 4
        assert all(np.array_equal(takes[0], other) for other in takes[1:])


def test_person_is_drawn_where_the_sidecar_says(dataset):
    config, paths = dataset
    specs = {spec.path: spec for spec in video_specs(config)}
    torso = [JOINT[name] for name in ("left_shoulder", "right_shoulder", "neck", "hip", "left_hip", "right_hip")]
    for path in paths:
        decoded = first_frame(path).astype(int)
        empty = next(render_frames(specs[path], rescuer=False, noise=False)).astype(int)
        gt = read_sidecar(sidecar_path(path))
        different = 0
        for u, v in np.round(gt["keypoints_2d"][0, torso]).astype(int):
            patch = np.abs(decoded[v - 1 : v + 2, u - 1 : u + 2] - empty[v - 1 : v + 2, u - 1 : u + 2])
            different += patch.sum(axis=-1).mean() > 40
        assert different >= 5, f"{path}: the rescuer is not drawn at the sidecar's torso joints"
        corner = np.abs(decoded[:6, :6] - empty[:6, :6]).sum(axis=-1).mean()
        assert corner < 25, f"{path}: the empty scene does not match the video's background"


def test_deterministic(tmp_path):
    small = dict(singles=["E00", "E12"], composites=0)
    runs = []
    for name, seed in (("a", 0), ("b", 0), ("c", 7)):
        config = make_config(tmp_path / name, seed=seed, workers=1, **small)
        config["views"] = ["V1", "V3"]
        runs.append(generate_dataset(config))
    same, other = zip(runs[0], runs[1], strict=True), zip(runs[0], runs[2], strict=True)
    for a, b in same:
        assert sidecar_path(a).read_bytes() == sidecar_path(b).read_bytes()
        assert np.array_equal(first_frame(a), first_frame(b))
    for a, c in other:
        assert sidecar_path(a).read_bytes() != sidecar_path(c).read_bytes()
        assert not np.array_equal(first_frame(a), first_frame(c))


def _cycles_per_second(gt: dict) -> float:
    z = gt["keypoints_3d"][:, JOINT["right_wrist"], 2]
    level = 0.5 * (z.max() + z.min())
    crossings = np.flatnonzero((z[:-1] >= level) & (z[1:] < level))
    return (len(crossings) - 1) / ((crossings[-1] - crossings[0]) / gt["fps"])


def _elbow_angle(k: np.ndarray, side: str) -> np.ndarray:
    shoulder, elbow, wrist = (k[:, JOINT[f"{side}_{j}"]] for j in ("shoulder", "elbow", "wrist"))
    a, b = shoulder - elbow, wrist - elbow
    return np.degrees(
        np.arccos(np.clip((a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1), -1, 1))
    )


@pytest.mark.parametrize("person", ["P01", "P02"])
def test_error_physics(physics, person):
    gt = {label: physics[(person, label)] for label in [k[1] for k in physics if k[0] == person]}
    k = {label: g["keypoints_3d"] for label, g in gt.items()}
    wrist_z = {label: kp[:, JOINT["right_wrist"], 2] for label, kp in k.items()}
    hands = {label: 0.5 * (kp[:, JOINT["left_wrist"]] + kp[:, JOINT["right_wrist"]]) for label, kp in k.items()}
    chest = gt["E00"]["chest_point"]
    top = chest[2] + HAND_HEIGHT

    # Correct: 100-120/min, 5-6 cm, full recoil, straight arms, shoulders over the hands.
    assert 95 <= 60 * _cycles_per_second(gt["E00"]) <= 125
    assert 0.048 <= np.ptp(wrist_z["E00"]) <= 0.065
    assert abs(wrist_z["E00"].max() - top) < 0.003
    assert _elbow_angle(k["E00"], "right").min() > 170 and _elbow_angle(k["E00"], "left").min() > 170
    shoulders = 0.5 * (k["E00"][:, JOINT["left_shoulder"]] + k["E00"][:, JOINT["right_shoulder"]])
    lean = {"E00": np.linalg.norm((shoulders - hands["E00"])[:, :2], axis=1).mean()}
    assert lean["E00"] < 0.06

    # Hand position: E01 toward the head (+x), E02 toward the feet, E03 far ribs (+y), E04 near ribs.
    assert hands["E01"][:, 0].mean() - hands["E00"][:, 0].mean() > 0.05
    assert hands["E02"][:, 0].mean() - hands["E00"][:, 0].mean() < -0.05
    assert hands["E03"][:, 1].mean() - hands["E00"][:, 1].mean() > 0.04
    assert hands["E04"][:, 1].mean() - hands["E00"][:, 1].mean() < -0.04
    # E05 bent arms; E06 wrists apart and crossed; E07 one hand off the chest.
    assert _elbow_angle(k["E05"], "right").max() < 150
    left, right = k["E06"][:, JOINT["left_wrist"]], k["E06"][:, JOINT["right_wrist"]]
    assert (left[:, 0] > right[:, 0]).all() and np.linalg.norm(left - right, axis=1).min() > 0.06
    off_chest = np.linalg.norm(k["E07"][:, JOINT["left_wrist"], :2] - np.array(chest[:2]), axis=1)
    assert off_chest.min() > 0.2
    assert np.linalg.norm(k["E07"][:, JOINT["right_wrist"], :2] - np.array(chest[:2]), axis=1).max() < 0.05
    # Rate, depth, recoil, bouncing.
    assert _cycles_per_second(gt["E08"]) > 1.2 * _cycles_per_second(gt["E00"])
    assert _cycles_per_second(gt["E09"]) < 0.8 * _cycles_per_second(gt["E00"])
    assert np.ptp(wrist_z["E10"]) < 0.5 * np.ptp(wrist_z["E00"])
    assert wrist_z["E11"].max() < top - 0.01
    assert wrist_z["E12"].max() > top + 0.02
    assert gt["E12"]["hand_lift"].max() > 0.02
    # E13 not vertical: shoulders well off the hands horizontally.
    shoulders = 0.5 * (k["E13"][:, JOINT["left_shoulder"]] + k["E13"][:, JOINT["right_shoulder"]])
    assert np.linalg.norm((shoulders - hands["E13"])[:, :2], axis=1).mean() > lean["E00"] + 0.06


def test_composites_apply_every_error(tmp_path):
    config = make_config(tmp_path, singles=[], composites=["E05+E08", "E07+E11+E13"])
    specs = {spec.label: spec for spec in video_specs(config) if spec.view == "V1"}
    combo = simulate(specs["E07+E11+E13"]).motion
    assert combo.hands == "single" and combo.residual > 0 and combo.lean_back > 0
    fast_bent = simulate(specs["E05+E08"]).motion
    assert fast_bent.rate > 140 and fast_bent.arm_reach < 1


def test_composite_count_spreads_over_sizes():
    table = load_classes()
    labels = select_labels(table, [], 12)
    assert len(labels) == 12 and labels[0] == table.composite_codes[0] and labels[-1] == table.composite_codes[-1]
    assert {len(label.split("+")) for label in labels} == {2, 3, 4}
    assert select_labels(table, "all", 0) == table.single_codes
    assert len(select_labels(table, [], "all")) == 74


def test_unknown_labels_are_config_errors(tmp_path):
    table = load_classes()
    with pytest.raises(ConfigError, match="E99"):
        select_labels(table, ["E00", "E99"], 0)
    with pytest.raises(ConfigError, match=r"E01\+E02"):
        select_labels(table, [], ["E01+E02"])
    with pytest.raises(ConfigError, match="E05"):
        select_labels(table, ["E05+E08"], 0)
    with pytest.raises(ConfigError):
        video_specs(make_config(tmp_path, singles=["E42"]))


def test_skip_existing_and_force(tmp_path, caplog):
    config = make_config(tmp_path, singles=["E00"], composites=0, seconds=0.4)
    config["views"] = ["V1"]
    (video,) = generate_dataset(config)
    stamp = video.stat().st_mtime_ns
    with caplog.at_level(logging.INFO, logger="cprcoach.synth"):
        generate_dataset(config)
    assert video.stat().st_mtime_ns == stamp
    assert "skipping 1 of 1" in caplog.text
    sidecar_path(video).unlink()  # an interrupted video (no sidecar) is made again
    generate_dataset(config)
    assert sidecar_path(video).exists() and video.stat().st_mtime_ns != stamp
    stamp = video.stat().st_mtime_ns
    generate_dataset(config, force=True)
    assert video.stat().st_mtime_ns != stamp


def test_cli(tmp_path):
    config = make_config(tmp_path / "configured", singles=["E00"], composites=0, seconds=0.2)
    config["views"] = ["V2"]
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["--config", str(path), "--raw-dir", str(tmp_path / "raw")]) == 0
    assert (tmp_path / "raw/P01/V2/E00_01.mp4").exists() and (tmp_path / "raw/P01/V2/E00_01.gt.json").exists()
    assert not (tmp_path / "configured").exists()
    bad = copy.deepcopy(config)
    bad["synth"]["singles"] = ["E77"]
    path.write_text(yaml.safe_dump(bad))
    with pytest.raises(SystemExit) as exit_info:
        main(["--config", str(path)])
    assert exit_info.value.code == 2
