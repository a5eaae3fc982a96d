"""The workflow on a real SLURM cluster: scripts/slurm-cluster starts one on this machine (installing
Slurm, munge and MariaDB with apt the first time), the workflow runs on it through profiles/slurm,
sacct must show every job as a completed SLURM job, and the results must be a local run's."""

from __future__ import annotations

import json
import os
import pickle
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import yaml

from conftest import REPO
from cprcoach.config import load_config
from cprcoach.shards.store import open_shard
from cprcoach.synth.dataset import generate_dataset

pytestmark = pytest.mark.slow

CLUSTER = REPO / "scripts" / "slurm-cluster"
# A state directory and ports of its own. (One cluster at a time per machine: stop one started by
# hand first, or start refuses to replace its configuration link.)
CLUSTER_ENV = {"CPRCOACH_SLURM_DIR": "/tmp/cprcoach-slurm-test", "CPRCOACH_SLURM_PORT": "26817"}
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "workflow" / "Snakefile")]
# Jobs run `python -m cprcoach...`: sbatch exports this PATH to them (--export=ALL).
ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
# Keys whose values differ between two runs of one configuration: durations and dates.
VOLATILE_KEYS = {"seconds", "pairs_per_second", "timings", "created"}


def run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    """Run a command; fail the test with the end of its output if it fails."""
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}")
    return result


@pytest.fixture(scope="session")
def slurm_env():
    """A one-node SLURM cluster for the session; the environment its clients need."""
    env = {**ENV, **CLUSTER_ENV}
    run([str(CLUSTER), "start"], env)
    conf = run([str(CLUSTER), "env"], env).stdout.strip().removeprefix("export SLURM_CONF=")
    yield {**ENV, "SLURM_CONF": conf}
    run([str(CLUSTER), "stop"], env)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, slurm_env):
    """One small configuration run through SLURM and locally, on the same raw videos: each run's
    results folder, and the SLURM run's log."""
    root = tmp_path_factory.mktemp("slurm-workflow")
    for name in ("slurm", "local"):
        # config.test.yaml cut to one participant, one view, one composite and the single classes:
        # the correct one and the composite's errors (ImagineNet learns from them): a few dozen jobs.
        config = yaml.safe_load((REPO / "config.test.yaml").read_text())
        config.update(raw_dir=str(root / "raw"), results_dir=str(root / name / "results"), views=config["views"][:1])
        synth = config["synth"]
        composite = synth["composites"][0]
        synth.update(participants=1, singles=["E00", *composite.split("+")], composites=[composite])
        (root / name).mkdir()
        (root / name / "config.yaml").write_text(yaml.safe_dump(config))
    generate_dataset(load_config(root / "slurm" / "config.yaml"))
    # The plugin first asks sacct about a job after 40 s by default; these jobs take seconds.
    profile = ["--profile", str(REPO / "profiles" / "slurm"), "--slurm-init-seconds-before-status-checks", "1"]
    slurm_run = run([*SNAKEMAKE, "--directory", str(root / "slurm"), *profile], slurm_env)
    run([*SNAKEMAKE, "--directory", str(root / "local"), "--cores", "2"], ENV)
    return root / "slurm" / "results", root / "local" / "results", slurm_run.stderr


def test_every_job_ran_on_slurm_and_completed(runs, slurm_env):
    _, _, log = runs
    table = log.split("Job stats:")[1].split("\n\n")[0]
    planned = {m[0]: int(m[1]) for m in re.findall(r"^(\w+)\s+(\d+)$", table, flags=re.M) if m[0] != "total"}
    local = set(re.findall(r"^localrule (\w+):$", log, flags=re.M))  # `all` (it runs nothing)
    run_id = re.search(r"SLURM run ID: (\S+)", log)[1]  # every job's SLURM job name
    sacct = run(
        ["sacct", "-X", "-n", "-P", "--starttime", "now-1days", "--name", run_id]
        + ["--format", "JobID,State,ExitCode,Partition,Account,Comment"],
        slurm_env,
    ).stdout
    jobs = [
        dict(zip(("id", "state", "exit", "partition", "account", "comment"), line.split("|"), strict=True))
        for line in sacct.splitlines()
    ]
    assert jobs and all(job["state"] == "COMPLETED" and job["exit"] == "0:0" for job in jobs), sacct
    # The plugin comments each job with its rule (and wildcards).
    rules = [re.fullmatch(r"rule_(\w+?)(?:_wildcards_.*)?", job["comment"])[1] for job in jobs]
    assert Counter(rules) == {rule: count for rule, count in planned.items() if rule not in local}
    # profiles/slurm's partitions, and the cluster's default account.
    profile = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    default = profile["default-resources"]["slurm_partition"]
    partition = {rule: resources["slurm_partition"] for rule, resources in profile["set-resources"].items()}
    assert {(rule, job["partition"]) for rule, job in zip(rules, jobs, strict=True)} == {
        (rule, partition.get(rule, default)) for rule in rules
    }
    assert {job["account"] for job in jobs} == {"cprcoach"}


def meaning(value, results: Path):
    """A value as comparable data, without what differs between runs: the results folder in paths,
    durations and dates."""
    if isinstance(value, dict):
        return {key: meaning(item, results) for key, item in value.items() if key not in VOLATILE_KEYS}
    if isinstance(value, list | tuple):
        return [meaning(item, results) for item in value]
    if isinstance(value, torch.Tensor):
        value = value.numpy()
    if isinstance(value, np.ndarray | np.generic):
        value = np.asarray(value)
        if value.dtype.kind in "OUS":
            return meaning(value.tolist(), results)
        return (value.dtype.str, value.shape, value.tobytes())
    if isinstance(value, bytes):
        return value.replace(str(results).encode(), b"RESULTS")
    if isinstance(value, str):
        if value.startswith("{"):  # JSON metadata in npz files and HDF5 attributes
            return meaning(json.loads(value), results)
        return value.replace(str(results), "RESULTS")
    if isinstance(value, float):
        return repr(value)  # nan == nan
    return value


def content(path: Path):
    """What a result file holds, read by its type (containers record their own write times)."""
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=True) as data:
            return {key: data[key] for key in data.files}
    if path.suffix == ".h5":
        tree = {}
        with open_shard(path) as shard:
            tree["/"] = dict(shard.attrs)
            shard.visititems(
                lambda name, item: tree.__setitem__(
                    name, {"attrs": dict(item.attrs), "data": item[()] if isinstance(item, h5py.Dataset) else None}
                )
            )
        return tree
    if path.suffix == ".json":
        return json.loads(path.read_text())
    if path.suffix == ".pkl":
        with path.open("rb") as handle:
            return pickle.load(handle)
    if path.suffix == ".pt":
        return torch.load(path, map_location="cpu", weights_only=False)
    return path.read_bytes()


def test_results_are_those_of_a_local_run(runs):
    slurm_results, local_results, _ = runs

    def files(results: Path) -> list[Path]:
        # Logs and benchmarks are about the run, not the data.
        paths = (p.relative_to(results) for p in results.rglob("*") if p.is_file())
        return sorted(p for p in paths if p.parts[0] not in ("logs", "benchmarks"))

    assert files(slurm_results) == files(local_results)
    for path in files(slurm_results):
        assert meaning(content(slurm_results / path), slurm_results) == meaning(
            content(local_results / path), local_results
        ), path
