"""One GPU per job on a workstation with several.

Snakemake's `--resources gpu=N` caps how many GPU jobs run at once, but it does not say which GPU
each one gets, and plain `cuda` is always the first. So a job that asks for `cuda` claims the
first device no other cprcoach job holds: an exclusive lock (flock) on a file named after the
device's UUID, held until the process exits, when the kernel releases it, crash or not. Under
SLURM, `--gpus=1` already leaves each job one visible device, which it finds free.

Decoding on the GPU's video engines (video.decoder: nvdec) is a second pool: several decode jobs
share one GPU (video.nvdec.sessions_per_gpu), each holding one of its slots, and they run beside
the compute jobs, which need the GPU's cores rather than its decoders.
"""

from __future__ import annotations

import fcntl
import logging
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from cprcoach.errors import CprCoachError

log = logging.getLogger(__name__)

COMPUTE = "compute"  # flow and model jobs: one per GPU
NVDEC = "nvdec"  # resize jobs that decode on the GPU: video.nvdec.sessions_per_gpu per GPU

# This process's claims, (pool, device) with its lock file: open for as long as it runs.
_held: list[tuple[tuple[str, str], IO[str]]] = []


def lock_dir() -> Path:
    """Where the lock files live: CPRCOACH_GPU_LOCKS, else one folder in the machine's temp dir."""
    return Path(os.environ.get("CPRCOACH_GPU_LOCKS") or Path(tempfile.gettempdir()) / "cprcoach-gpu-locks")


def device_ids() -> list[str]:
    """One id per visible CUDA device that is the same in every process: its UUID."""
    import torch

    return [str(torch.cuda.get_device_properties(i).uuid) for i in range(torch.cuda.device_count())]


def lock_name(device: str, pool: str, slot: int) -> str:
    """The lock file of one slot of a device's pool; a compute claim keeps the plain UUID name."""
    return f"{device}.lock" if pool == COMPUTE else f"{device}.{pool}{slot}.lock"


def _try_claim(ids: Sequence[str], folder: Path, pool: str, slots: int) -> str | None:
    """Claim the first free slot (slot by slot, device by device); None if every one is held."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for slot in range(slots):
            for index, device in enumerate(ids):
                # Append mode: opening must not wipe the holder's PID before the lock is tried.
                handle = open(folder / lock_name(device, pool, slot), "a")  # noqa: SIM115 - held open: the lock lives with it
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    handle.close()
                    continue
                handle.truncate(0)
                handle.write(f"{os.getpid()}\n")
                handle.flush()
                _held.append(((pool, f"cuda:{index}"), handle))
                log.info("claimed GPU %d (%s) for %s, slot %d", index, device, pool, slot)
                return f"cuda:{index}"
    except OSError as error:
        raise CprCoachError(
            f"cannot use the GPU lock files ({error})",
            path=folder,
            fix="set CPRCOACH_GPU_LOCKS to a folder you can write",
        ) from None
    return None


def claim_cuda_device(
    ids: Sequence[str] | None = None,
    folder: str | Path | None = None,
    *,
    pool: str = COMPUTE,
    slots: int = 1,
    setting: str = "flow.device and model.device",
    wait_s: float = 0.0,
) -> str:
    """`cuda:I` for the first visible device (ids in visible order) with a slot of `pool` that no
    other job holds; with several slots, the first slot of every device is tried before the second,
    so jobs spread over the GPUs. With every slot held, it tries again for up to `wait_s` seconds.
    The claim lasts until this process ends, and later calls in the process return the same
    device. `setting` names the config key that asked for the GPU."""
    for (held_pool, device), _ in _held:
        if held_pool == pool:
            return device
    ids = device_ids() if ids is None else list(ids)
    if not ids:
        raise CprCoachError(
            f"a CUDA device was asked for ({setting}), but PyTorch sees none",
            fix=f"set {setting} to cpu, or run this job on a machine with an NVIDIA GPU and driver",
        )
    folder = Path(folder) if folder is not None else lock_dir()
    deadline = time.monotonic() + wait_s
    waiting = False
    while (claimed := _try_claim(ids, folder, pool, slots)) is None and time.monotonic() < deadline:
        if not waiting:
            log.info("every %s slot is held; waiting up to %.0f s for one", pool, wait_s)
            waiting = True
        time.sleep(0.5)
    if claimed:
        return claimed
    if pool == COMPUTE:
        raise CprCoachError(
            f"all {len(ids)} visible GPUs are held by other cprcoach jobs (locks in {folder})",
            fix="run with --resources gpu=N, N at most the number of GPUs (profiles/workstation sets it)",
        )
    raise CprCoachError(
        f"all {slots * len(ids)} {pool} slots of the {len(ids)} visible GPUs are held by other cprcoach jobs"
        f" (locks in {folder})",
        fix=f"run with --resources {pool}=N, N at most {slots} times the number of GPUs (profiles/workstation sets it)",
    )
