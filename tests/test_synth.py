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
from cprcoach.pose.groundtruth import read_sidecar, sidecar_path
from cprcoach.skeleton import COCO17, HALPE26, HALPE26_EDGES, JOINT
from cprcoach.synth.body import HAND_HEIGHT
from cprcoach.synth.camera import project
from cprcoach.synth.dataset import generate_dataset, main, select_labels, video_specs
from cprcoach.synth.motion import ERROR_EFFECTS, ERROR_RANGES, MotionParams, apply_errors
from cprcoach.synth.render import render_frames
from cprcoach.synth.take import simulate

FPS = 25
LABELS = [f"E{i:02d}" for i in range(14)]


def make_config(raw_dir: Path, **synth) -> dict:
    config = {
        "raw_dir": str(raw_dir),
        "raw_pattern": "{participant}/{view}/{label}_{take}.mp4",
        "views": ["V1", "V2", "V3", "V4"],
        "video": {
            "source": {"width": 160, "height": 84, "fps": FPS},
            "clips": {"rgb": {"width": 64, "height": 48}, "pose": {"width": 160, "height": 84}},
        },
        "synth": {
            "seed": 0,
            "participants": 1,
            "takes": 1,
            "seconds": 1.0,
            "singles": ["E00", "E04", "E07"],
            "composites": ["E04+E07"],
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
    """4-second single-view clips of every single class at the errors' strongest, for two participants."""
    raw = tmp_path_factory.mktemp("physics")
    config = make_config(raw, participants=2, seconds=4.0, singles=LABELS, composites=0, noise=0.0, severity=[1, 1])
    config["views"] = ["V1"]
    config["video"]["source"].update(width=96, height=54)
    generate_dataset(config)
    return {
        (p, label): read_sidecar(raw / p / "V1" / f"{label}_01.gt.json") for p in ("P01", "P02") for label in LABELS
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
    labels = ["E00", "E04", "E07", "E04+E07"]
    expected = {raw / "P01" / view / f"{label}_01.mp4" for view in config["views"] for label in labels}
    assert len(paths) == 1 * 4 * 4 * 1
    assert set(paths) == expected
    assert set(raw.rglob("*.mp4")) == expected
    assert {sidecar_path(p) for p in expected} == set(raw.rglob("*.gt.json"))
    assert sidecar_path(raw / "P01/V1/E04_01.mp4") == raw / "P01/V1/E04_01.gt.json"
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
    return len(gt["compression_starts"]) / (gt["frames"] / gt["fps"])


def _angle(k: np.ndarray, a: str, b: str, c: str) -> np.ndarray:
    """The angle at joint b between b->a and b->c, in degrees, per frame."""
    u, v = k[:, JOINT[a]] - k[:, JOINT[b]], k[:, JOINT[c]] - k[:, JOINT[b]]
    cos = (u * v).sum(-1) / np.linalg.norm(u, axis=-1) / np.linalg.norm(v, axis=-1)
    return np.degrees(np.arccos(np.clip(cos, -1, 1)))


def _elbow_angle(k: np.ndarray, side: str) -> np.ndarray:
    return _angle(k, f"{side}_shoulder", f"{side}_elbow", f"{side}_wrist")


def _arm_tilt(k: np.ndarray) -> np.ndarray:
    """How far the arms (the wrists' midpoint to the shoulders') slant from vertical, in degrees, per frame."""
    shoulders = 0.5 * (k[:, JOINT["left_shoulder"]] + k[:, JOINT["right_shoulder"]])
    arms = shoulders - 0.5 * (k[:, JOINT["left_wrist"]] + k[:, JOINT["right_wrist"]])
    return np.degrees(np.arccos(arms[:, 2] / np.linalg.norm(arms, axis=-1)))


def _at_bottom(gt: dict) -> np.ndarray:
    """The frames at the bottom of each compression (the deepest frame of each cycle)."""
    depth = gt["chest_depth"]
    return (
        np.flatnonzero((depth[1:-1] >= depth[:-2]) & (depth[1:-1] > depth[2:]) & (depth[1:-1] > 0.5 * depth.max())) + 1
    )


@pytest.mark.parametrize("person", ["P01", "P02"])
def test_error_physics(physics, person):
    """Each official error is the physical change classes.md describes (at its strongest)."""
    gt = {label: physics[(person, label)] for label in LABELS}
    k = {label: g["keypoints_3d"] for label, g in gt.items()}
    j = JOINT
    wrist_z = {label: kp[:, j["right_wrist"], 2] for label, kp in k.items()}
    hands = {label: 0.5 * (kp[:, j["left_wrist"]] + kp[:, j["right_wrist"]]) for label, kp in k.items()}
    chest = gt["E00"]["chest_point"]
    top = chest[2] + HAND_HEIGHT

    # Correct: kneeling, 100-120/min, 5-6 cm, full recoil, straight vertical arms, shoulders over the hands.
    assert 95 <= 60 * _cycles_per_second(gt["E00"]) <= 125
    assert 0.048 <= np.ptp(wrist_z["E00"]) <= 0.066
    assert abs(wrist_z["E00"].max() - top) < 0.006
    assert _elbow_angle(k["E00"], "right").min() > 165 and _elbow_angle(k["E00"], "left").min() > 165
    assert _arm_tilt(k["E00"]).mean() < 12
    assert k["E00"][:, j["left_knee"], 2].max() < 0.08 and k["E00"][:, j["right_knee"], 2].max() < 0.08

    # E01 overlap: the wrists crossed and apart; E02 clenching: close together, raised by the fist.
    left, right = k["E01"][:, j["left_wrist"]], k["E01"][:, j["right_wrist"]]
    assert (left[:, 0] > right[:, 0]).all() and np.linalg.norm(left - right, axis=1).min() > 0.12
    left, right = k["E02"][:, j["left_wrist"]], k["E02"][:, j["right_wrist"]]
    assert np.linalg.norm(left - right, axis=1).max() < 0.03
    assert wrist_z["E02"].max() > wrist_z["E00"].max() + 0.025
    # E03 one hand off the chest, the other on it.
    off_chest = np.linalg.norm(k["E03"][:, j["left_wrist"], :2] - np.array(chest[:2]), axis=1)
    assert off_chest.min() > 0.15
    assert np.linalg.norm(k["E03"][:, j["right_wrist"], :2] - np.array(chest[:2]), axis=1).max() < 0.06
    # E04 bent arms; E05 straight but slanted arms.
    assert _elbow_angle(k["E04"], "right").max() < 150
    assert _elbow_angle(k["E05"], "right").min() > 160 and _arm_tilt(k["E05"]).mean() > 15
    # E06 jump: the hips bounce, the knees lift off the floor, the hands leave the chest.
    assert np.ptp(k["E06"][:, j["hip"], 2]) > 0.05 and k["E06"][:, j["left_knee"], 2].max() > 0.08
    assert wrist_z["E06"].max() > top + 0.03 and gt["E06"]["hand_lift"].max() > 0.03
    # E07 squatting: feet flat, knees up, hips low; E08 standing: legs nearly straight, bent at the waist.
    squat = k["E07"]
    assert squat[:, j["hip"], 2].max() < 0.42 and squat[:, j["left_knee"], 2].min() > 0.25
    assert squat[:, j["left_heel"], 2].max() < 0.05 and squat[:, j["left_big_toe"], 2].max() < 0.05
    stand = k["E08"]
    assert stand[:, j["hip"], 2].min() > 0.75 and _angle(stand, "left_hip", "left_knee", "left_ankle").min() > 165
    assert stand[:, j["neck"], 2].max() < stand[:, j["hip"], 2].min() + 0.1  # torso about horizontal
    # E09 the hands on one wrong spot; E13 a different spot at every compression.
    assert np.linalg.norm((hands["E09"] - hands["E00"]).mean(axis=0)[:2]) > 0.08
    spots = hands["E13"][_at_bottom(gt["E13"]), :2]
    assert len(spots) >= 5 and spots.std(axis=0).max() > 0.03
    assert hands["E00"][_at_bottom(gt["E00"]), :2].std(axis=0).max() < 0.012
    # Depth and rate.
    assert np.ptp(wrist_z["E10"]) < 0.025
    assert _cycles_per_second(gt["E11"]) < 0.75 * _cycles_per_second(gt["E00"])
    assert np.ptp(wrist_z["E12"]) > 0.08


def test_severity_grades_each_error_from_mild_to_strong():
    correct = MotionParams(rate=110.0, jitter=0.0, phase=0.0, depth=0.055)
    rng = np.random.default_rng(0)
    for name, ranges in ERROR_RANGES.items():
        mild, strong = apply_errors(correct, {name: 0.0}, rng), apply_errors(correct, {name: 1.0}, rng)
        for key, span in ranges.items():
            if key == "offset":
                assert np.linalg.norm(mild.hand_offset) == pytest.approx(span.mild)
                assert np.linalg.norm(strong.hand_offset) == pytest.approx(span.strong)
            elif key in ("lean_back", "lean_side"):
                continue  # tilting picks back, side or both
            else:
                assert getattr(mild, key) == pytest.approx(span.mild) and getattr(strong, key) == pytest.approx(
                    span.strong
                )
    table = load_classes()
    assert list(ERROR_EFFECTS) == [table.single(code).short for code in table.error_codes]


def test_takes_draw_their_severity_from_the_configured_range(tmp_path):
    config = make_config(tmp_path, participants=2, singles=["E04", "E10"], composites=0, severity=[0.2, 0.4])
    takes = [simulate(spec) for spec in video_specs(config) if spec.view == "V1"]
    severities = [s for take in takes for s in take.severity.values()]
    assert len(severities) == 4 and all(0.2 <= s <= 0.4 for s in severities) and len(set(severities)) == 4
    (spec,) = [s for s in video_specs(config) if s.view == "V2" and s.label == "E04" and s.participant == 1]
    assert simulate(spec).severity == takes[0].severity  # the views of a take share it


def test_composites_apply_every_error(tmp_path):
    config = make_config(tmp_path, singles=[], composites=["E03+E04+E05+E12", "E06+E08+E10+E13"])
    specs = {spec.label: spec for spec in video_specs(config) if spec.view == "V1"}
    combo = simulate(specs["E03+E04+E05+E12"]).motion
    assert combo.hands == "single" and combo.arm_reach < 0.95 and combo.depth > 0.065
    assert combo.lean_back > 0.05 or abs(combo.lean_side) > 0.05
    jumping = simulate(specs["E06+E08+E10+E13"]).motion
    assert jumping.posture == "standing" and jumping.body_lift > 0 and jumping.depth < 0.045 and jumping.wander > 0.02


def test_composite_count_gives_each_participant_its_own_and_covers_the_table():
    table = load_classes()
    per_participant = [select_labels(table, [], 25, participant=p, seed=0) for p in (1, 2, 3)]
    assert all(len(labels) == 25 for labels in per_participant)
    assert set().union(*per_participant) == set(table.composite_codes)
    for labels in per_participant:
        assert {table.n_errors(code) for code in labels} == {2, 3, 4}
    assert select_labels(table, [], 25, participant=1, seed=1) != per_participant[0]
    assert select_labels(table, "all", 0) == table.single_codes
    assert len(select_labels(table, [], "all")) == 74
    assert select_labels(table, ["bending arms", "0"], ["squatting+E04"]) == ["E04", "E00", "E04+E07"]


def test_unknown_labels_are_config_errors(tmp_path):
    table = load_classes()
    with pytest.raises(ConfigError, match="E99"):
        select_labels(table, ["E00", "E99"], 0)
    with pytest.raises(ConfigError, match="the hand form group"):
        select_labels(table, [], ["E01+E02"])
    with pytest.raises(ConfigError, match="not one of the 74 composites"):
        select_labels(table, [], ["E04+E05"])
    with pytest.raises(ConfigError, match="is not a single class"):
        select_labels(table, ["E04+E07"], 0)
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
