"""GPU claims: each job gets a device no other job holds, until it ends."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import REPO
from cprcoach.errors import CprCoachError
from cprcoach.gpu import claim_cuda_device, release_cuda_devices


@pytest.fixture(autouse=True)
def release():
    yield
    release_cuda_devices()


def test_jobs_get_different_devices_and_a_full_machine_is_a_clear_error(tmp_path):
    ids = ["GPU-aaaa", "GPU-bbbb"]
    assert claim_cuda_device(ids, tmp_path) == "cuda:0"
    assert claim_cuda_device(ids, tmp_path) == "cuda:1"
    with pytest.raises(CprCoachError, match="all 2 visible GPUs are held") as error:
        claim_cuda_device(ids, tmp_path)
    assert "--resources gpu=N" in error.value.fix
    release_cuda_devices()
    assert claim_cuda_device(ids, tmp_path) == "cuda:0"


def test_a_claim_is_held_across_processes_and_freed_when_its_process_ends(tmp_path):
    ids = ["GPU-aaaa", "GPU-bbbb"]
    assert claim_cuda_device(ids, tmp_path) == "cuda:0"
    code = f"from cprcoach.gpu import claim_cuda_device; print(claim_cuda_device({ids!r}, {str(tmp_path)!r}))"
    other = [sys.executable, "-c", code]
    env = {"PYTHONPATH": str(REPO / "tools")}
    for _ in range(2):  # the second run finds GPU 1 free again: the first one's claim ended with it
        assert subprocess.run(other, capture_output=True, text=True, env=env, check=True).stdout == "cuda:1\n"


def test_no_device_is_a_clear_error(tmp_path):
    with pytest.raises(CprCoachError, match="PyTorch sees none"):
        claim_cuda_device([], tmp_path)
