"""Coach mode: compressions measured from the skeleton against the synthetic ground truth, and the
report a trainee reads, rendered by a real browser (headless Chromium)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import numpy as np
import pytest

from conftest import preprocess_recording, tiny_config
from cprcoach.bench.coach import truth_of
from cprcoach.coach.measure import measure, measure_pose, px_per_cm
from cprcoach.coach.report import write_report
from cprcoach.config import validate_config
from cprcoach.errors import CprCoachError
from cprcoach.pose.format import PoseTrack
from cprcoach.pose.gaps import fill_gaps
from cprcoach.pose.groundtruth import groundtruth_pose
from cprcoach.synth.camera import make_camera
from cprcoach.synth.dataset import generate_dataset, video_specs
from cprcoach.synth.sidecar import build_sidecar
from cprcoach.synth.take import simulate

# The bounds the coach's figures are held to, on takes like the demo's (512x270, 3 s, the pose
# stage's groundtruth backend with the demo's 2 px noise and 2% missed frames).
COUNT_EXACT = 0.95  # share of takes whose compressions are all found, and nothing else
RATE_WITHIN = 3.0  # per minute, on that share of takes
DEPTH_WITHIN_CM = 1.5  # mean error of the median depth over the takes


@pytest.fixture(scope="module")
def takes():
    """Demo-like takes of every class and view, as pose tracks, without rendering a frame."""
    config = validate_config(
        {
            "raw_dir": "unused",
            "raw_pattern": "{participant}/{view}/{label}_{take}.mp4",
            "views": ["V1", "V2", "V3", "V4"],
            "video": {
                "source": {"width": 512, "height": 270, "fps": 25},
                "clips": {"rgb": {"width": 112, "height": 84}, "pose": {"width": 512, "height": 270}},
            },
            "synth": {"seed": 11, "participants": 2, "seconds": 3.0, "singles": "all", "composites": 4},
        }
    )
    out = []
    for spec in video_specs(config):
        take = simulate(spec)
        sidecar = json.loads(json.dumps(build_sidecar(spec, take, make_camera(spec.view_index, spec.view, 512, 270))))
        keypoints, box, found = groundtruth_pose(sidecar, spec.frames, spec.fps, noise_px=2.0, miss_rate=0.02, seed=0)
        keypoints, box, interpolated = fill_gaps(keypoints, box, found, 12)
        out.append((sidecar, PoseTrack(keypoints, box, found, interpolated, {})))
    return out


def test_the_compressions_are_counted_and_timed_as_the_ground_truth_has_them(takes):
    exact, rate_ok, depth_errors = 0, 0, []
    for sidecar, track in takes:
        fps = float(sidecar["fps"])
        measured = measure(track, fps, px_per_cm(sidecar["camera"], sidecar["chest_point"]))
        count, rate, depth_cm = truth_of(sidecar, fps)
        exact += measured.count == count
        rate_ok += rate is not None and measured.rate_per_min is not None and abs(measured.rate_per_min - rate) <= 3
        depth_errors.append(measured.summary()["depth_cm"] - depth_cm)
    assert len(takes) == 2 * 4 * 18
    assert exact / len(takes) >= COUNT_EXACT
    assert rate_ok / len(takes) >= COUNT_EXACT
    assert abs(np.mean(depth_errors)) <= DEPTH_WITHIN_CM


def test_slow_compressions_read_slow_and_deep_ones_deep(takes):
    def summary_of(code: str) -> list[dict]:
        return [
            measure(t, 25.0, px_per_cm(s["camera"], s["chest_point"])).summary() for s, t in takes if s["label"] == code
        ]

    correct, slow = summary_of("E00"), summary_of("E11")
    shallow, deep = summary_of("E10"), summary_of("E12")
    assert all(100 <= s["rate_per_min"] <= 125 for s in correct)
    assert all(s["rate_per_min"] < 100 for s in slow)
    assert np.median([s["depth_cm"] for s in shallow]) < 4.5 < np.median([s["depth_cm"] for s in correct])
    assert np.median([s["depth_cm"] for s in deep]) > 6.0
    assert {s["posture"] for s in summary_of("E08")} <= {"standing", "squatting"}


def test_a_track_without_a_rescuer_is_a_clear_error(takes):
    _, track = takes[0]
    nobody = PoseTrack(track.keypoints, track.box, np.zeros_like(track.found), track.interpolated, {})
    with pytest.raises(CprCoachError, match="holds no rescuer to measure"):
        measure(nobody, 25.0)


# ------------------------------------------------------------------------------ the report


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """One rendered 3 s recording of a composite, through resize and the groundtruth pose."""
    root = tmp_path_factory.mktemp("coach")
    config = tiny_config(root, seed=4, singles=[], composites=["E04+E11"])
    config["views"], config["synth"]["seconds"] = ["V3"], 3.0
    (raw,) = generate_dataset(config)
    clips = root / "clips"
    paths = {
        "rgb": clips / "E04+E11_01.rgb.mp4",
        "pose_clip": clips / "E04+E11_01.pose.mp4",
        "probe": clips / "E04+E11_01.probe.json",
        "flow": root / "flow.npz",
        "pose": root / "pose.npz",
    }
    preprocess_recording(raw, paths)
    return root, paths


def verdict(errors: list[str]) -> dict:
    """What `cprcoach assess` found, as its JSON holds it (the classifier is not what is tested here)."""
    from cprcoach.classes import load_classes

    table = load_classes()
    probabilities = {code: 0.93 if code in errors else 0.02 for code in table.single_codes}
    return {
        "recording": "P01/V3/E04+E11_01.mp4",
        "modality": "skeleton",
        "method": "ImagineNet-FC",
        "threshold": 0.5,
        "errors": errors,
        "correct": not errors,
        "classes": [{"code": c, "name": table.name(c), "probability": p} for c, p in probabilities.items()],
    }


def test_the_report_is_one_self_contained_page(recording):
    root, paths = recording
    track, measured = measure_pose(paths["pose"])
    assert measured.px_per_cm is not None  # the synthetic camera is calibrated
    assert measured.summary()["rate_per_min"] < 100  # E11: slow
    out = root / "report.html"
    write_report(out, verdict(["E04", "E11"]), measured, track, paths["pose_clip"])
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>") and "Bending Arms (E04), Slow Frequency (E11)" in page
    assert len(re.findall(r"<img src='data:image/png;base64,", page)) == 2 + 2  # timeline, hands, two frames
    assert "http://" not in page and "https://" not in page  # nothing to fetch
    assert "100-120 per minute" in page and "5-6 cm" in page and "full (&gt;= 90%)" in page
    assert "E11 Slow Frequency: compression at" in page and "E04 Bending Arms: compression at" in page


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium, installed with apt-get the first time (as the SLURM test installs Slurm)."""
    found = shutil.which("chromium")
    if found is None:
        subprocess.run(["apt-get", "update", "-qq"], check=True, capture_output=True)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"],
            check=True,
            capture_output=True,
            env={"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
        )
        found = shutil.which("chromium")
    assert found, "apt-get installed no chromium"
    return found


def headless(chromium: str, *args: str) -> subprocess.CompletedProcess:
    command = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0"]
    return subprocess.run([*command, "--virtual-time-budget=5000", *args], capture_output=True, text=True, timeout=120)


def test_the_report_renders_in_a_browser_with_every_figure_and_no_console_error(recording, chromium, tmp_path):
    root, paths = recording
    track, measured = measure_pose(paths["pose"])
    out = root / "rendered.html"
    write_report(out, verdict(["E04", "E11"]), measured, track, paths["pose_clip"])
    dom = headless(chromium, "--dump-dom", out.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert 'data-images-shown="4/4"' in dom.stdout  # every embedded figure decoded and drawn
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert console == []
    shot = tmp_path / "report.png"
    headless(chromium, f"--screenshot={shot}", "--window-size=1000,1400", out.as_uri())
    assert shot.read_bytes()[:4] == b"\x89PNG" and shot.stat().st_size > 20_000
