"""GPU claims: each job gets a device no other job holds, until it ends."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import REPO
from cprcoach import gpu
from cprcoach.errors import CprCoachError
from cprcoach.gpu import claim_cuda_device

IDS = ["GPU-aaaa", "GPU-bbbb"]


@pytest.fixture(autouse=True)
def release():
    """Each test starts with no claim: what a job's end (closing its lock files) does."""
    yield
    while gpu._held:
        gpu._held.pop()[1].close()


def other_job(folder, wait: bool = False) -> subprocess.Popen:
    """A process that claims a device, prints it, and (with wait) holds it until its stdin closes."""
    code = f"from cprcoach.gpu import claim_cuda_device; print(claim_cuda_device({IDS!r}, {str(folder)!r}), flush=True)"
    if wait:
        code += "; import sys; sys.stdin.read()"
    env = {"PYTHONPATH": str(REPO / "tools")}
    return subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_jobs_get_different_devices_and_a_full_machine_is_a_clear_error(tmp_path):
    assert claim_cuda_device(IDS, tmp_path) == "cuda:0"
    assert claim_cuda_device(IDS, tmp_path) == "cuda:0"  # one process, one device, however often it asks
    holder = other_job(tmp_path, wait=True)
    try:
        assert holder.stdout.readline() == "cuda:1\n"
        third = other_job(tmp_path)
        _, error = third.communicate(timeout=60)
        assert third.returncode != 0 and "all 2 visible GPUs are held by other cprcoach jobs" in error
    finally:
        holder.communicate(timeout=60)  # closing its stdin ends it, and its claim with it
    freed = other_job(tmp_path)
    assert freed.communicate(timeout=60)[0] == "cuda:1\n"


def test_no_device_and_unwritable_locks_are_clear_errors(tmp_path):
    with pytest.raises(CprCoachError, match="PyTorch sees none"):
        claim_cuda_device([], tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(CprCoachError, match="cannot use the GPU lock files") as error:
        claim_cuda_device(IDS, blocker / "locks")
    assert "CPRCOACH_GPU_LOCKS" in error.value.fix
