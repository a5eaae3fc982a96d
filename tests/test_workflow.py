"""End to end: the real Snakefile on the synthetic test dataset, then incremental rebuilds."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import REPO
from cprcoach.config import load_config
from cprcoach.flow.format import read_flow
from cprcoach.pose.format import read_pose
from cprcoach.samples import read_sheet
from cprcoach.synth.dataset import generate_dataset

pytestmark = pytest.mark.slow

SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "workflow" / "Snakefile")]
# Aggregates over every video: they rerun whenever a participant is added.
ONCE = (
    "all",
    "sample_sheet",
    "video_table",
    "pose_quality",
    "shard_index",
    "shard_check",
    "dataset_stats",
    "skeleton_export",
    "model_summary",
)
ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [*SNAKEMAKE, "--directory", str(workdir), "--cores", "2", *args], capture_output=True, text=True, env=ENV
    )
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}")
    return result


def model_jobs(config: dict) -> dict[str, int]:
    """The model stage retrains on every change of the data: per seed a backbone per modality, a run per
    head of each modality and fusion, the fusions' joined features and late fusions; then every run over
    the seeds."""
    model = config["model"]
    modalities, heads, fusions, seeds = (len(model[key]) for key in ("modalities", "heads", "fusions", "seeds"))
    return {
        "backbone": modalities * seeds,
        "fused_features": fusions * seeds,
        "imagine_head": (modalities + fusions) * heads * seeds,
        "late_fusion": fusions * heads * seeds,
        "head_over_seeds": (modalities + fusions) * heads,
        "late_fusion_over_seeds": fusions * heads,
    }


def planned_jobs(workdir: Path) -> dict[str, int]:
    """Jobs a dry run would execute, by rule (from its job-stats table)."""
    output = snakemake(workdir, "--dry-run").stdout
    if "Nothing to be done" in output:
        return {}
    table = output.split("Job stats:")[1].split("Reasons:")[0]
    return {m[0]: int(m[1]) for m in re.findall(r"^(\w+)\s+(\d+)$", table, flags=re.M) if m[0] != "total"}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A work folder with the test config; the third participant's videos wait in `staged`."""
    workdir = tmp_path_factory.mktemp("workflow")
    config = yaml.safe_load((REPO / ".test" / "workflow" / "config.yaml").read_text())
    config["raw_dir"] = str(workdir / "raw")
    config["results_dir"] = str(workdir / "results")
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    staged = workdir / "staged"
    generate_dataset(load_config(workdir / "config.yaml"), raw_dir=staged)
    for participant in ["P01", "P02"]:
        shutil.copytree(staged / participant, workdir / "raw" / participant)
    return workdir, config


def test_lint_is_clean(project):
    workdir, _ = project
    result = snakemake(workdir, "--lint")
    assert "Congratulations, your workflow is in a good condition!" in result.stdout + result.stderr


def test_full_run_then_incremental_rebuild(project):
    workdir, config = project
    results = Path(config["results_dir"])
    labels = config["synth"]["singles"] + config["synth"]["composites"]
    per_participant = len(labels) * len(config["views"])

    # The per-video stages run one job per recording (its four views).
    per_recording_rules = ("resized_clips", "optical_flow", "rescuer_pose")
    assert planned_jobs(workdir) == {
        **{rule: 2 * len(labels) for rule in per_recording_rules},
        **{rule: 1 for rule in ONCE},
        **model_jobs(config),
        "views_contact_sheet": 1,
        "flow_figure": 1,
        "skeleton_overlay": len(config["synth"]["composites"]) + 1,  # first view: E00 and the composites
        "shard": 2 * len(config["views"]),
    }
    snakemake(workdir)
    sheet = read_sheet(results / "samples.tsv")
    assert len(sheet) == 2 * per_participant
    assert set(sheet.loc[sheet.participant == "P02", "split"]) == {"test"}  # held out
    table = (results / "tables" / "videos.tsv").read_text().splitlines()
    assert len(table) == 1 + 2 * per_participant
    for sample in sheet.itertuples():
        for clip in config["video"]["clips"]:
            assert (
                results / "clips" / sample.participant / sample.view / f"{sample.label}_{sample.take}.{clip}.mp4"
            ).stat().st_size > 0
    for figure in ["views.png", "flow.png", "pose_pck.png"]:
        assert (results / "plots" / figure).read_bytes()[:4] == b"\x89PNG"
    frames = round(config["synth"]["seconds"] * config["video"]["source"]["fps"])
    x, y, meta = read_flow(results / "flow" / "P01" / "V2" / "E04+E07_01.npz")
    rgb = config["video"]["clips"]["rgb"]
    assert x.shape == y.shape == (frames - 1, rgb["height"], rgb["width"]) and meta["backend"] == "torch"
    pose = read_pose(results / "pose" / "P01" / "V2" / "E04+E07_01.npz")
    assert pose.keypoints.shape == (frames, 26, 3)
    source = config["video"]["source"]
    inside = pose.keypoints[pose.found][..., :2]
    assert (
        (inside >= 0).all() and (inside[..., 0] < source["width"]).all() and (inside[..., 1] < source["height"]).all()
    )
    assert (results / "shards" / "P01_V1.h5").stat().st_size > 0
    stats = (results / "tables" / "dataset_stats.tsv").read_text()
    assert "Perspectives" in stats and "Frames (RGB+Flow)" in stats
    check_model_outputs(results, config, composites=int((sheet["kind"] == "composite").sum()))
    assert planned_jobs(workdir) == {}  # nothing new: nothing runs

    shutil.copytree(workdir / "staged" / "P03", workdir / "raw" / "P03")
    before = {p: p.stat().st_mtime_ns for pattern in ("clips/*/*/*.mp4", "shards/*.h5") for p in results.glob(pattern)}
    assert planned_jobs(workdir) == {
        **{rule: len(labels) for rule in per_recording_rules},
        **{rule: 1 for rule in ONCE},
        **model_jobs(config),
        "shard": len(config["views"]),  # the new participant's shards only
    }
    snakemake(workdir)
    assert len(before) == 2 * per_participant * 2 + 2 * len(config["views"])
    assert all(p.stat().st_mtime_ns == mtime for p, mtime in before.items())  # old clips and shards untouched
    index = pd.read_csv(results / "shards" / "index.tsv", sep="\t", dtype=str)
    assert len(index) == 3 * per_participant
    assert len(read_sheet(results / "samples.tsv")) == 3 * per_participant
    assert planned_jobs(workdir) == {}


def check_model_outputs(results: Path, config: dict, composites: int) -> None:
    """Every modality's and fusion's head runs wrote per-seed metrics, scores and weights, and their
    metrics over the seeds with an AP plot; the summary lists every method, the gains every head."""
    model = config["model"]
    fusions = ["+".join(members) for members in model["fusions"]]
    runs = (
        [(m, "none") for m in model["modalities"]] + [(f, "features") for f in fusions] + [(f, "late") for f in fusions]
    )
    for modality, fusion in runs:
        for head in model["heads"]:
            folder = results / "model" / modality / head / ("late" if fusion == "late" else "")
            over_seeds = json.loads((folder / "metrics.json").read_text())
            assert (over_seeds["modality"], over_seeds["fusion"], over_seeds["head"]) == (modality, fusion, head)
            assert over_seeds["seeds"] == model["seeds"]
            figure = over_seeds["summary"][head]["composite_mAP_fused"]
            assert len(figure["values"]) == len(model["seeds"]) and 0 <= figure["mean"] <= 1 and figure["std"] >= 0
            assert (folder / "per_class_ap.png").read_bytes()[:4] == b"\x89PNG"
            for seed in model["seeds"]:
                run = results / "model" / modality / f"seed{seed}" / head
                metrics = json.loads(((run / "late") if fusion == "late" else run).joinpath("metrics.json").read_text())
                assert metrics["seed"] == seed and set(metrics["summary"]) == {head, "sigmoid", "backbone"}
                assert metrics["composite"]["videos"]["n_videos"] == composites
                assert set(metrics["composite"]["views"]) == set(config["views"])
                if fusion != "late":
                    assert (run / "head.pt").stat().st_size > 0 and (run / "scores.npz").stat().st_size > 0
    summary = pd.read_csv(results / "tables" / "model_summary.tsv", sep="\t")
    assert len(summary) == 3 * len(runs) * len(model["heads"]) and summary["imagination"].sum() == len(runs) * len(
        model["heads"]
    )
    assert (summary["seeds"] == len(model["seeds"])).all() and summary["composite_mAP_fused_std"].notna().all()
    gains = pd.read_csv(results / "tables" / "model_gains.tsv", sep="\t")
    assert (gains["comparison"] == "imagination").sum() == 2 * len(runs) * len(model["heads"])
    fused_heads = 2 * sum(len(members) for members in model["fusions"]) * len(model["heads"])  # features, late
    assert (gains["comparison"] == "fusion").sum() == fused_heads
    assert gains["primary"].sum() == 2 and (gains["comparison"] == "best").sum() == (1 if fusions else 0)


def test_assess_rule_scores_one_recording(project):
    workdir, config = project
    target = Path(config["results_dir"]) / "assess" / "P01" / "V2" / "E04+E07_01.json"
    snakemake(workdir, str(target))
    result = json.loads(target.read_text())
    assert result["modality"] == "skeleton" and result["method"] == "ImagineNet-FC"
    assert [c["code"] for c in result["classes"]][:1] == ["E00"] and len(result["classes"]) == 14
    assert all(0 <= c["probability"] <= 1 for c in result["classes"])
    summary = result["measurements"]["summary"]  # the compressions, measured from the skeleton
    assert summary["compressions"] == len(result["measurements"]["per_compression"]) >= 2
    assert summary["depth_cm"] > 0 and summary["posture"] in ("kneeling", "squatting", "standing")
    report = target.with_suffix(".html").read_text()
    assert report.startswith("<!DOCTYPE html>") and "data:image/png;base64," in report


def test_bad_raw_names_stop_the_workflow_with_one_message(project, tmp_path):
    workdir, config = project
    bad = tmp_path / "bad"
    shutil.copytree(workdir, bad, ignore=shutil.ignore_patterns(".snakemake", "results", "staged"))
    bad_config = {**config, "raw_dir": str(bad / "raw"), "results_dir": str(bad / "results")}
    (bad / "config.yaml").write_text(yaml.safe_dump(bad_config))
    (bad / "raw" / "P01" / "V1" / "E00_01.mp4").rename(bad / "raw" / "P01" / "V1" / "E0_01.mp4")
    result = snakemake(bad, "--dry-run", check=False)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "labels that are not classes" in output and "P01/V1/E0_01.mp4: 'E0' is not a class name" in output
    assert "recordings missing a view" in output and "P01 E00 take 1: missing V1" in output
    assert "Traceback" not in output
