"""The worker's allocator setting: freed tensors are reused, not faulted in afresh, and given back after a job."""

from __future__ import annotations

import resource
import threading
from pathlib import Path

import pytest
import torch

from sr_desk.core import allocator as memory
from sr_desk.engine.worker import Worker

pytestmark = pytest.mark.skipif(memory._glibc() is None, reason="the allocator setting is for glibc (Linux)")

BLOCK = 96 << 20  # over glibc's 32 MB ceiling for heap blocks and its 64 MB thread heaps
PAGES = BLOCK // 4096


def _fewest_faults_of_a_round(rounds: int = 10) -> int:
    """The fewest minor page faults, on a fresh thread, of one round of three 96 MB tensors made and freed.

    A fresh round can only reuse what earlier rounds freed once their holes
    have merged into blocks large enough, so the first rounds fault; without
    reuse every round faults in every page.
    """
    faults: list[int] = []

    def run() -> None:
        for _ in range(rounds):
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            x = torch.empty(BLOCK, dtype=torch.uint8).fill_(1)
            y = x + 1
            z = x + y
            del x, y, z
            faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return min(faults)


def _resident_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_a_started_worker_tunes_the_allocator_so_a_thread_reuses_freed_blocks() -> None:
    with Worker(device="cpu"):
        assert memory.reuse_freed_memory() is True
    assert _fewest_faults_of_a_round() < PAGES // 10


def test_release_free_memory_hands_freed_blocks_back() -> None:
    assert memory.reuse_freed_memory() is True
    memory.release_free_memory()
    blocks = [torch.empty(BLOCK, dtype=torch.uint8).fill_(1) for _ in range(3)]
    held = _resident_mb()
    del blocks
    kept = _resident_mb()
    memory.release_free_memory()
    released = _resident_mb()
    assert kept > held - 96  # freed, yet kept for reuse
    assert released < kept - 2 * 96


def test_the_worker_releases_free_memory_after_each_job(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr("sr_desk.engine.worker.release_free_memory", lambda: calls.append(1))
    with Worker(device="cpu") as worker:
        worker.submit(lambda context: 1).wait(10)
        worker.submit(lambda context: 2).wait(10)
    assert len(calls) == 2
