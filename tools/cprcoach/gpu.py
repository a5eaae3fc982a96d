"""One GPU per job on a workstation with several.

Snakemake's `--resources gpu=N` caps how many GPU jobs run at once, but it does not say which GPU
each one gets, and plain `cuda` is always the first. So a job that asks for `cuda` claims the
first device no other cprcoach job holds: an exclusive lock (flock) on a file named after the
device's UUID, held until the process exits, when the kernel releases it, crash or not. Under
SLURM, `--gpus=1` already leaves each job one visible device, which it finds free.
"""

from __future__ import annotations

import fcntl
import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from cprcoach.errors import CprCoachError

log = logging.getLogger(__name__)

# This process's device and its lock file: open for as long as it runs.
_held: list[tuple[str, IO[str]]] = []


def lock_dir() -> Path:
    """Where the lock files live: CPRCOACH_GPU_LOCKS, else one folder in the machine's temp dir."""
    return Path(os.environ.get("CPRCOACH_GPU_LOCKS") or Path(tempfile.gettempdir()) / "cprcoach-gpu-locks")


def device_ids() -> list[str]:
    """One id per visible CUDA device that is the same in every process: its UUID."""
    import torch

    return [str(torch.cuda.get_device_properties(i).uuid) for i in range(torch.cuda.device_count())]


def claim_cuda_device(ids: Sequence[str] | None = None, folder: str | Path | None = None) -> str:
    """`cuda:I` for the first visible device (ids in visible order) that no other job holds; the
    claim lasts until this process ends, and later calls in the process return the same device."""
    if _held:
        return _held[0][0]
    ids = device_ids() if ids is None else list(ids)
    if not ids:
        raise CprCoachError(
            "a CUDA device was asked for, but PyTorch sees none", fix="set flow.device and model.device to cpu"
        )
    folder = Path(folder) if folder is not None else lock_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for index, device in enumerate(ids):
            # Append mode: opening must not wipe the holder's PID before the lock is tried.
            handle = open(folder / f"{device}.lock", "a")  # noqa: SIM115 - held open: the lock lives with it
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            handle.truncate(0)
            handle.write(f"{os.getpid()}\n")
            handle.flush()
            _held.append((f"cuda:{index}", handle))
            log.info("claimed GPU %d (%s)", index, device)
            return f"cuda:{index}"
    except OSError as error:
        raise CprCoachError(
            f"cannot use the GPU lock files ({error})",
            path=folder,
            fix="set CPRCOACH_GPU_LOCKS to a folder you can write",
        ) from None
    raise CprCoachError(
        f"all {len(ids)} visible GPUs are held by other cprcoach jobs (locks in {folder})",
        fix="run with --resources gpu=N, N at most the number of GPUs (profiles/workstation sets it)",
    )
