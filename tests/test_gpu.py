"""GPU claims: each job gets a device no other job holds, until it ends."""

from __future__ import annotations

import subprocess
import sys
import time

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


def other_job(folder, wait: bool = False, claim: str = "") -> subprocess.Popen:
    """A process that claims a device, prints it, and (with wait) holds it until its stdin closes;
    `claim` adds claim_cuda_device's keyword arguments."""
    code = (
        "from cprcoach.gpu import claim_cuda_device; "
        f"print(claim_cuda_device({IDS!r}, {str(folder)!r}{claim}), flush=True)"
    )
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
    with pytest.raises(CprCoachError, match="PyTorch sees none") as error:
        claim_cuda_device([], tmp_path)
    assert "set flow.device and model.device to cpu" in error.value.fix
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(CprCoachError, match="cannot use the GPU lock files") as error:
        claim_cuda_device(IDS, blocker / "locks")
    assert "CPRCOACH_GPU_LOCKS" in error.value.fix


def test_decode_jobs_share_gpus_slot_by_slot_beside_compute_jobs(tmp_path):
    assert claim_cuda_device(IDS, tmp_path) == "cuda:0"  # a flow job holds GPU 0's compute
    nvdec = ", pool='nvdec', slots=2, setting='video.decoder'"
    holders = [other_job(tmp_path, wait=True, claim=nvdec) for _ in range(4)]
    try:
        devices = sorted(holder.stdout.readline().strip() for holder in holders)
        assert devices == ["cuda:0", "cuda:0", "cuda:1", "cuda:1"]  # two slots of each GPU
        fifth = other_job(tmp_path, claim=nvdec)
        _, error = fifth.communicate(timeout=60)
        assert fifth.returncode != 0 and "all 4 nvdec slots of the 2 visible GPUs are held" in error
        assert "--resources nvdec=N, N at most 2 times the number of GPUs" in error
    finally:
        for holder in holders:
            holder.communicate(timeout=60)


def test_the_first_slot_of_every_gpu_goes_before_a_second(tmp_path):
    first = other_job(tmp_path, wait=True, claim=", pool='nvdec', slots=2")
    try:
        assert first.stdout.readline() == "cuda:0\n"
        second = other_job(tmp_path, claim=", pool='nvdec', slots=2")
        assert second.communicate(timeout=60)[0] == "cuda:1\n"
    finally:
        first.communicate(timeout=60)


def test_a_decode_job_waits_for_a_slot_when_asked_to(tmp_path):
    assert claim_cuda_device(IDS, tmp_path, pool="nvdec") == "cuda:0"  # this process holds GPU 0's slot
    holder = other_job(tmp_path, wait=True, claim=", pool='nvdec'")
    try:
        assert holder.stdout.readline() == "cuda:1\n"
        waiter = other_job(tmp_path, claim=", pool='nvdec', wait_s=60")
        time.sleep(1.5)
        assert waiter.poll() is None  # both slots held: it waits
        gpu._held.pop()[1].close()  # this process's job ends
        assert waiter.communicate(timeout=60)[0] == "cuda:0\n"
    finally:
        holder.communicate(timeout=60)
