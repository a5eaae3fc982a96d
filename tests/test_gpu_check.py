"""The GPU node check (scripts/gpu-check, cprcoach gpu-check): its run on the CPU, its projection,
and what it carries to a node without network."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from conftest import REPO
from cprcoach.bench.node import FULL_FRAMES, FULL_VIDEOS, StageResult, hours, projection, stages, table

ENV = {"PYTHONPATH": str(REPO / "tools"), "PATH": f"{sys.exec_prefix}/bin:/usr/bin:/bin"}


def result(stage: str, runs_on: str, wall: float, *, frames: int = 1000, reference: bool = False) -> StageResult:
    return StageResult(stage, runs_on, reference, 5, 10, frames, wall, 3.0, 4.0, 0.5, 0.2, 1.0)


def test_projection_sums_the_preprocessing_stages_and_names_the_bound():
    results = [
        result("resize", "cpu decoder, every core (reference)", 8.0, reference=True),
        result("resize", "nvdec decoder", 2.0),
        result("flow", "torch on cuda", 3.0),
        result("pose", "groundtruth backend", 1.0),
        result("shards", "cpu", 1.5),
        result("model", "skeleton on cuda", 30.0),
    ]
    scale = FULL_FRAMES / 1000
    assert results[1].frames_per_s == 500 and results[1].projected_s == round(2.0 * scale)
    assert results[-1].projected_s == round(30.0 * FULL_VIDEOS / 10)  # the model scales with the videos
    proj = projection(results)
    assert proj["stages"] == ["resize", "flow", "pose", "shards"]  # the reference is not in the sum
    assert proj["preprocessing_s"] == sum(round(w * scale) for w in (2.0, 3.0, 1.0, 1.5))
    assert proj["bound_by"] == "flow"
    assert proj["nvdec_speedup"] == 4.0 and proj["nvdec_target_met"]
    assert proj["target_met"] == (proj["preprocessing_s"] < 1.5 * 3600)

    report = {
        "node": {"gpu": "NVIDIA H200", "cores": 16},
        "commit": "abc1234",
        "check": {"videos": 10, "frames": 1000, "width": 4096, "height": 2160},
        "nvdec": {"available": True, "reason": None},
        "stages": [r.__dict__ for r in results],
        "projection": proj,
    }
    text = table(report)
    assert "| flow | torch on cuda | 333.3 | 3 | 4 | 50% | 20% | 1 | - |" in text
    assert "NVDEC resize: 4x the frames per second of the CPU decoder on all 16 cores (target 3x: met)" in text
    assert proj["nvdec_speedup_projected"] == round(results[0].projected_s / results[1].projected_s, 2)
    assert "bound by flow" in text


def test_a_jobs_start_up_weighs_less_in_the_full_datasets_longer_jobs():
    # 8 jobs of 4 views x 100 frames: 2 s start-up and 1 ms a frame each, 8 at once.
    timed = StageResult("flow", "torch on cuda", False, 8, 32, 3200, 2.4, 3.0, 1.0, None, None, None, 2.0, 0.001)
    full_jobs = FULL_VIDEOS / 4
    full_job = 2.0 + 0.001 * FULL_FRAMES / full_jobs
    assert timed.projected_s == round(2.4 * full_jobs * full_job / (8 * (2.0 + 0.4)))
    assert timed.projected_s < round(2.4 * FULL_FRAMES / 3200)  # what scaling by the frames alone gives


def test_hours_round_to_the_minute():
    assert [hours(s) for s in (0, 3599, 3600, 7170, 5430)] == [
        "0 h 00 min",
        "1 h 00 min",
        "1 h 00 min",
        "2 h 00 min",
        "1 h 30 min",
    ]


def test_stages_must_be_the_first_ones(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "cprcoach", "gpu-check", "--device", "cpu", "--work", str(tmp_path), "--stages", "flow"],
        capture_output=True,
        text=True,
        env=ENV,
    )
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "name the first stages, in order: resize flow pose shards model" in done.stderr


def test_with_the_gpu_decoder_the_resize_runs_with_both_decoders_first():
    names = [(s.name, s.reference) for s in stages(nvdec=True)]
    assert names[:2] == [("resize", True), ("resize", False)]
    assert [s.name for s in stages(nvdec=False)] == ["resize", "flow", "pose", "shards", "model"]
    assert [s.until for s in stages(False, ("resize", "flow"))] == ["resized_clips", "optical_flow"]


@pytest.mark.slow
def test_the_check_runs_the_real_workflow_stage_by_stage_on_the_cpu(tmp_path):
    command = [sys.executable, "-m", "cprcoach", "gpu-check", "--device", "cpu", "--work", str(tmp_path)]
    command += ["--source", "256x136", "--rgb", "96x72", "--pose", "256x136", "--seconds", "1", "--cores", "2"]
    command += ["--stages", "resize", "flow", "pose", "shards"]
    done = subprocess.run(command, capture_output=True, text=True, env=ENV)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "gpu-check.json").read_text())
    assert report["format"] == "cprcoach-gpu-check/1"
    assert report["check"] == {"seconds_per_video": 1.0, "videos": 32, "frames": 800, "width": 256, "height": 136}
    assert [r["stage"] for r in report["stages"]] == ["resize", "flow", "pose", "shards"]
    for row in report["stages"]:
        assert row["frames"] == 800 and row["jobs"] == 8 and row["wall_s"] > 0 and row["cpu_cores"] > 0
        assert row["snakemake_s"] > 0  # its own start and DAG, left out of the jobs' time
        assert row["gpu_busy"] is None  # no NVML here
        timed = row["stage"] in ("resize", "flow")  # each video's own seconds are recorded
        assert (row["startup_s_per_job"] is not None) == timed
        if timed:
            assert row["startup_s_per_job"] > 0 and row["work_s_per_frame"] > 0
            assert row["projected_s"] < row["wall_s"] * FULL_FRAMES / 800  # less start-up in longer jobs
        else:
            assert abs(row["projected_s"] - row["wall_s"] * FULL_FRAMES / 800) <= 1
    assert report["projection"]["nvdec_speedup"] is None and report["projection"]["model_s"] is None
    assert len(list((tmp_path / "results" / "shards").glob("*.h5"))) == 8  # one per participant and view
    assert (tmp_path / "gpu-check.md").read_text().strip() == done.stdout.strip()
    assert "| shards | cpu |" in done.stdout and "bound by" in done.stdout


def pins(path) -> dict[str, str]:
    lines = (REPO / path).read_text().splitlines()
    return dict(line.split("==") for line in lines if re.match(r"^[A-Za-z0-9]", line))


def test_the_node_gets_the_versions_requirements_txt_installs():
    carried, required = pins("scripts/gpu-check.wheels"), pins("requirements.txt")
    assert {"snakemake", "av", "pynvvideocodec", "imageio-ffmpeg", "hdf5plugin"} <= set(carried)
    assert {name: version for name, version in carried.items() if required.get(name, version) != version} == {}


def test_the_script_says_what_is_missing(tmp_path):
    copy = tmp_path / "repo"
    (copy / "scripts").mkdir(parents=True)
    script = copy / "scripts" / "gpu-check"
    script.write_text((REPO / "scripts" / "gpu-check").read_text())
    script.chmod(0o755)
    install = subprocess.run([str(script), "install"], capture_output=True, text=True)
    assert install.returncode == 1 and "run 'scripts/gpu-check wheels' where PyPI is reachable" in install.stderr
    run = subprocess.run([str(script), "run"], capture_output=True, text=True)
    assert run.returncode == 1 and "run 'scripts/gpu-check install' first" in run.stderr
    usage = subprocess.run([str(script)], capture_output=True, text=True)
    assert usage.returncode == 2 and "scripts/gpu-check wheels" in usage.stderr


def test_video_bench_times_a_resize_job_against_a_pure_decode():
    command = [sys.executable, "-m", "cprcoach", "video", "bench", "--size", "256x136", "--seconds", "1"]
    done = subprocess.run([*command, "--repeats", "1", "--clip", "rgb=96x72"], capture_output=True, text=True, env=ENV)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "source   256x136, 25 frames" in done.stdout
    assert re.search(r"resize .* frames/s\)  python -m cprcoach.video resize \(cpu decoder\)", done.stdout)
    assert re.search(r"ratio    [0-9.]+x the pure decode", done.stdout)
