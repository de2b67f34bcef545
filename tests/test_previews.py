"""Previews: never larger than the host asked for, a few a second, and none made when none is shown."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sr_desk.diffusion.runtime import preview_of
from sr_desk.engine.worker import EventKind, PreviewGate, Worker, shrink_preview


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_gate_passes_a_few_previews_a_second_and_always_the_last():
    clock = Clock()
    gate = PreviewGate(side=None, rate=10.0, clock=clock)
    assert PreviewGate().open()  # no rate: every preview passes
    image = np.zeros((4, 4, 3), np.float32)
    assert gate.admit(image) is not None
    clock.now = 0.05
    assert not gate.open() and gate.admit(image) is None
    assert gate.admit(image, final=True) is not None  # the final step's preview is never lost
    clock.now = 0.2
    assert gate.open() and gate.admit(image) is not None


def test_previews_are_shrunk_to_the_side_asked_for_and_dropped_when_none_is_shown():
    preview = np.random.default_rng(0).random((300, 130, 3), dtype=np.float32)
    small = shrink_preview(preview, 64)
    assert max(small.shape[:2]) <= 64 and small.dtype == np.float32
    assert np.isclose(small.mean(), preview[: small.shape[0] * 5, : small.shape[1] * 5].mean(), atol=1e-3)
    assert shrink_preview(preview, 400) is preview
    assert PreviewGate(side=0).admit(preview, final=True) is None


@pytest.mark.parametrize("side", [None, 48, 0])
def test_previews_reaching_the_host_are_never_larger_than_requested(side):
    events = []

    def method(context):
        for step in range(1, 6):
            image = torch.rand(1, 3, 200, 120)
            context.report(step, 5, preview=preview_of(context, image))
        return "done"

    with Worker(device="cpu", on_event=events.append, preview_side=side) as worker:
        job = worker.submit(method)
        assert job.wait(60) and job.result == "done"
    previews = [e.preview for e in events if e.kind is EventKind.PROGRESS and e.preview is not None]
    if side == 0:
        assert previews == []
        return
    assert previews, "the final step's preview always arrives"
    assert all(max(p.shape[:2]) <= (side or 200) for p in previews)
    if side:
        assert previews[-1].shape[:2] == (48, 29)  # shrunk on the method's device, aspect kept


def test_preview_of_makes_nothing_when_the_host_would_drop_it():
    class Closed:
        preview_side = None

        def wants_preview(self):
            return False

    class Plain:  # a host from before previews were rate-limited: any size, every time
        pass

    image = torch.rand(1, 3, 10, 8)
    assert preview_of(Closed(), image) is None
    assert preview_of(Plain(), image).shape == (10, 8, 3)


def test_the_editor_asks_for_screen_sized_previews_at_15_a_second(qapp):
    from sr_desk.ui.jobs import PREVIEW_RATE, PREVIEW_SIDE_FLOOR, preview_side

    assert preview_side() >= PREVIEW_SIDE_FLOOR and PREVIEW_RATE == 15.0
