"""A run killed mid-way finishes with one command, from paths with spaces and accented letters.

The checkout itself is copied to such a path, as are the scenario's raw and results folders
(.test/resume/config.yaml), so every path of every shell command holds them."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import REPO, assert_same_results
from cprcoach.config import load_config
from cprcoach.synth.dataset import generate_dataset
from cprcoach.video.ffmpeg import ffmpeg_exe

pytestmark = pytest.mark.slow

SCENARIO = Path(".test/resume/config.yaml")
ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
ENV.pop("PYTHONPATH", None)  # the jobs find the package of the checkout they run from
RESUME = [sys.executable, "-m", "cprcoach", "workflow", "--cores", "2", "--configfile", str(SCENARIO)]


def checkout(target: Path) -> Path:
    """A copy of this checkout's files (what git tracks, and new files it does not ignore)."""
    files = (
        subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, files):
        if (REPO / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, target / name)
    return target


def results_of(root: Path) -> Path:
    return root / yaml.safe_load((root / SCENARIO).read_text())["results_dir"]


@pytest.fixture(scope="module")
def checkouts(tmp_path_factory):
    """Two copies of the checkout under 'chèckout à espaces/', each with the scenario's raw videos."""
    base = tmp_path_factory.mktemp("resume") / "chèckout à espaces"
    roots = [checkout(base / name) for name in ("run one", "run two")]
    config = load_config(roots[0] / SCENARIO)
    generate_dataset(config, raw_dir=roots[0] / config["raw_dir"])
    shutil.copytree(roots[0] / config["raw_dir"], roots[1] / config["raw_dir"])
    return roots


def test_the_workflow_runs_from_paths_with_spaces_and_accents(checkouts):
    root = checkouts[0]
    assert " " in str(root) and "è" in str(root) and " " in str(results_of(root)) and "é" in str(results_of(root))
    result = subprocess.run(RESUME, cwd=root, capture_output=True, text=True, env=ENV)
    assert result.returncode == 0, result.stderr[-5000:]
    assert (results_of(root) / "tables" / "model_summary.tsv").is_file()


def test_a_killed_run_finishes_with_the_same_command(checkouts):
    root = checkouts[1]
    run = subprocess.Popen(RESUME, cwd=root, env=ENV, start_new_session=True, stderr=subprocess.DEVNULL)
    flows = results_of(root) / "flow"
    deadline = time.monotonic() + 300
    while not (flows.is_dir() and any(flows.rglob("*.npz"))) and time.monotonic() < deadline:
        assert run.poll() is None, "the run ended before it could be killed"
        time.sleep(0.2)
    os.killpg(run.pid, signal.SIGKILL)  # the wrapper, snakemake and every job, mid-way
    run.wait()
    assert list((root / ".snakemake" / "locks").glob("*.lock")), "a killed snakemake leaves its lock"
    assert not (results_of(root) / "tables" / "model_summary.tsv").exists()
    plain = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", str(SCENARIO)],
        cwd=root,
        capture_output=True,
        text=True,
        env=ENV,
    )
    # What a user met before: a plain rerun stops at the lock or at the jobs that were running.
    assert plain.returncode != 0 and any(stop in plain.stderr for stop in ("LockException", "Incomplete files"))
    resumed = subprocess.run(RESUME, cwd=root, capture_output=True, text=True, env=ENV)
    assert resumed.returncode == 0, resumed.stderr[-5000:]
    assert "removed the lock a stopped snakemake left behind" in resumed.stderr
    assert_same_results(results_of(checkouts[0]), results_of(root))


def test_a_failing_job_prints_its_own_message_where_snakemake_reports_it(checkouts):
    root = checkouts[1]  # finished by the test above
    results = results_of(root)
    clip = next((results / "clips").rglob("E00_01.rgb.mp4"))
    shorter = clip.with_name("shorter.mp4")
    command = [ffmpeg_exe(), "-y", "-loglevel", "error", "-i", str(clip), "-frames:v", "20", "-c:v", "libx264"]
    subprocess.run([*command, str(shorter)], check=True)
    shorter.replace(clip)  # damaged after the resize stage: the flow job that reads it again must stop
    (results / "flow" / clip.relative_to(results / "clips")).with_name("E00_01.npz").unlink()
    failed = subprocess.run(RESUME, cwd=root, capture_output=True, text=True, env=ENV)
    console = failed.stdout + failed.stderr
    assert failed.returncode != 0
    assert f"cprcoach: error: {clip.relative_to(root)}: the clip holds 20 frames, but the resize stage wrote" in console
    assert "delete it; snakemake then resizes its recording again" in console


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("raw_dir: [unclosed\n", "bad.yaml: not valid YAML"),
        ("flow: {clip: depth}\n", "flow.clip: 'depth' is not a clip of video.clips (rgb, pose)"),
        ("flow: {bound: -1}\n", "flow.bound: -1 is less than or equal to the minimum of 0"),
    ],
    ids=["yaml-syntax", "clip-not-made", "bad-value"],
)
def test_config_errors_name_the_file_and_the_key(checkouts, tmp_path, text, message):
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    result = subprocess.run(
        [*RESUME, "--configfile", str(bad), "--dry-run"], cwd=checkouts[0], capture_output=True, text=True, env=ENV
    )
    console = result.stdout + result.stderr
    assert result.returncode != 0 and message in console, console[-3000:]
    assert str(bad) in console and "Traceback" not in console
