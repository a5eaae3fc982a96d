"""The project's own files: one set of pins, the commands the README promises, a tidy workflow."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

from conftest import REPO

BIN = Path(sys.executable).parent


def pins(lines):
    return dict(
        re.match(r"^([A-Za-z0-9_.-]+)==(\S+)$", line.strip()).groups()
        for line in lines
        if "==" in line and not line.lstrip().startswith("#")
    )


def test_conda_envs_carry_the_requirements_pins():
    lines = [
        line
        for name in ("requirements.txt", "requirements-nodeps.txt")
        for line in (REPO / name).read_text().splitlines()
    ]
    required = {name.lower(): version for name, version in pins(lines).items()}
    assert required["torch"] == "2.13.0"
    for env_file in sorted((REPO / "envs").glob("*.yaml")):
        env = yaml.safe_load(env_file.read_text())
        pip_lists = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
        post_deploy = env_file.with_suffix(".post-deploy.sh")
        extra = post_deploy.read_text().split() if post_deploy.exists() else []
        for name, version in pins([*pip_lists[0], *extra]).items():
            assert required.get(name.lower()) == version, (
                f"{env_file.name}: {name}=={version} differs from the requirements"
            )


def test_readme_commands_are_what_ci_runs():
    readme = (REPO / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme
    assert "make test" in (REPO / ".ci" / "run").read_text()


def test_snakefiles_are_snakefmt_formatted():
    result = subprocess.run(
        [str(BIN / "snakefmt"), "--check", "workflow/Snakefile", "rules"], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_every_rule_has_log_benchmark_threads_and_resources():
    for smk in sorted((REPO / "rules").glob("*.smk")):
        text = smk.read_text()
        for rule in re.split(r"^rule ", text, flags=re.M)[1:]:
            name = rule.split(":")[0]
            for directive in ("log:", "benchmark:", "threads:", "resources:", "conda:", "shell:"):
                assert f"    {directive}" in rule, f"{smk.name}: rule {name} lacks {directive}"


def test_python_is_ruff_clean():
    for command in (["check"], ["format", "--check"]):
        result = subprocess.run(
            [str(BIN / "ruff"), *command, "tools", "tests"], cwd=REPO, capture_output=True, text=True
        )
        assert result.returncode == 0, result.stdout + result.stderr
