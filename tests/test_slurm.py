"""The workflow on a real SLURM cluster: scripts/slurm-cluster starts one on this machine (installing
Slurm, munge and MariaDB with apt the first time), the workflow runs on it through profiles/slurm,
sacct must show every job as a completed SLURM job, and the results must be a local run's."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

from conftest import REPO, assert_same_results
from cprcoach.config import load_config
from cprcoach.synth.dataset import generate_dataset

pytestmark = pytest.mark.slow

CLUSTER = REPO / "scripts" / "slurm-cluster"
# A state directory and ports of its own. (One cluster at a time per machine: stop one started by
# hand first, or start refuses to replace its configuration link.)
CLUSTER_ENV = {"CPRCOACH_SLURM_DIR": "/tmp/cprcoach-slurm-test", "CPRCOACH_SLURM_PORT": "26817"}
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "workflow" / "Snakefile")]
# Jobs run `python -m cprcoach...`: sbatch exports this PATH to them (--export=ALL).
ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


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
        config = yaml.safe_load((REPO / ".test" / "slurm" / "config.yaml").read_text())
        config.update(raw_dir=str(root / "raw"), results_dir=str(root / name / "results"))
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


def test_results_are_those_of_a_local_run(runs):
    slurm_results, local_results, _ = runs
    assert_same_results(slurm_results, local_results)
