"""`cprcoach workflow ARGS...`: `snakemake ARGS...`, resumable after a crash or a kill.

Snakemake locks its working directory while it runs and marks a job's outputs incomplete until
the job ends. A run that is killed (kill -9, a lost node, a closed laptop) leaves both behind, and
a plain rerun stops at them. Every output of this project is written to a temporary sibling and
renamed, so an output that exists is complete and the rerun may simply go on. This command
checks the config files first (a YAML error names its file), removes a stale lock (one that no
snakemake process on this machine holds for the working directory) and runs snakemake with
--rerun-incomplete and --show-failed-logs: after a crash, the same command again finishes the run.

A snakemake of the same working directory on another machine (a second login node of a
cluster) cannot be seen from here: run one at a time per results folder.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from cprcoach.config import load_yaml
from cprcoach.errors import cli_errors
from cprcoach.logs import setup_logging

log = logging.getLogger(__name__)

RESUMABLE = ("--rerun-incomplete", "--show-failed-logs")


def option_values(args: Sequence[str], *names: str) -> list[str]:
    """The values given to an option (`--name VALUE`, `--name=VALUE`, `--name V1 V2 ...`)."""
    values: list[str] = []
    taking = False
    for arg in args:
        if arg.startswith("-"):
            name, _, value = arg.partition("=")
            taking = name in names and not value
            if name in names and value:
                values.append(value)
        elif taking:
            values.append(arg)
    return values


def working_directory(args: Sequence[str], cwd: Path) -> Path:
    directory = option_values(args, "--directory", "-d")
    return (cwd / directory[-1]).resolve() if directory else cwd.resolve()


def _snakemake_directories() -> list[Path]:
    """The working directories of the snakemake processes running on this machine (Linux /proc)."""
    directories = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")[:-1]
            cwd = (entry / "cwd").resolve()
        except OSError:  # gone meanwhile, or another user's
            continue
        if any(Path(arg).name == "snakemake" for arg in argv[:3]):
            directories.append(working_directory(argv, cwd))
    return directories


def remove_stale_lock(workdir: Path) -> bool:
    """Remove snakemake's lock of `workdir` if no snakemake running here holds it; True if removed."""
    locks = sorted((workdir / ".snakemake" / "locks").glob("*.lock"))
    if not locks:
        return False
    if not Path("/proc").is_dir():
        log.warning("cannot tell whether another snakemake runs in %s; if none does, run snakemake --unlock", workdir)
        return False
    if workdir in _snakemake_directories():
        log.warning("another snakemake is running in %s: it holds the lock", workdir)
        return False
    for lock in locks:
        lock.unlink(missing_ok=True)
    log.info("%s: removed the lock a stopped snakemake left behind", workdir)
    return True


@cli_errors
def run_workflow(args: Sequence[str]) -> int:
    """Check the config files, clear a stale lock, run snakemake; returns its exit status."""
    cwd = Path.cwd()
    workdir = working_directory(args, cwd)
    for config in option_values(args, "--configfile", "--configfiles"):
        load_yaml(cwd / config)
    remove_stale_lock(workdir)
    extra = [option for option in RESUMABLE if option not in args]
    return subprocess.call([sys.executable, "-m", "snakemake", *extra, *args])


def main(argv: Sequence[str] | None = None) -> None:
    setup_logging(False)
    sys.exit(run_workflow(list(sys.argv[1:] if argv is None else argv)))
