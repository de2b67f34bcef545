"""LDDPM's adversarial step (issue 15, spec 2.5): the coarse pairs, the posterior step and both losses."""

from __future__ import annotations

import torch

from sr_desk.diffusion.schedule import vp_coarse_schedule
from sr_desk_plugins.lddpm.adversarial import (
    Discriminator,
    discriminator_loss,
    fake_pair,
    generator_loss,
    real_pair,
)

SCHEDULE = vp_coarse_schedule(4)


def test_real_pairs_have_the_forward_marginals():
    x0 = torch.full((4000, 1, 1, 1), 0.5, dtype=torch.float64)
    k = torch.full((4000,), 2)
    x_prev, x_t = real_pair(SCHEDULE, x0, k, torch.Generator().manual_seed(0))
    for x, abar in ((x_prev, SCHEDULE.alphas_cumprod_prev[2]), (x_t, SCHEDULE.alphas_cumprod[2])):
        assert abs(float(x.mean()) - 0.5 * float(abar) ** 0.5) < 0.03
        assert abs(float(x.std()) - float(1 - abar) ** 0.5) < 0.03


def test_the_posterior_step_is_exact_with_the_true_x0_and_adds_no_noise_at_the_last_step():
    x0 = torch.rand(3, 3, 4, 4, dtype=torch.float64) * 2 - 1
    x_t = torch.randn(3, 3, 4, 4, dtype=torch.float64)
    k = torch.tensor([0, 0, 0])
    out = fake_pair(SCHEDULE, x0, x_t, k, torch.Generator().manual_seed(0))
    mean, _, _ = SCHEDULE.posterior(x0, x_t, k)
    assert torch.allclose(out, mean)  # k = 0: the clean image, no noise
    k = torch.tensor([3, 3, 3])
    a = fake_pair(SCHEDULE, x0, x_t, k, torch.Generator().manual_seed(1))
    assert torch.equal(a, fake_pair(SCHEDULE, x0, x_t, k, torch.Generator().manual_seed(1)))
    assert not torch.allclose(a, SCHEDULE.posterior(x0, x_t, k)[0])


def test_a_discriminator_and_a_generator_step_run_with_r1():
    torch.manual_seed(0)
    d = Discriminator(width=8, levels=2)
    x0 = torch.rand(2, 3, 16, 16) * 2 - 1
    k = torch.tensor([1, 3])
    x_prev, x_t = real_pair(SCHEDULE, x0, k, torch.Generator().manual_seed(0))
    x0_hat = (x0 + 0.1 * torch.randn_like(x0)).requires_grad_(True)
    fake = fake_pair(SCHEDULE, x0_hat, x_t, k, torch.Generator().manual_seed(1))
    loss_d = discriminator_loss(d, (x_prev, x_t), fake, k, r1_gamma=0.05)
    loss_d.backward()
    assert torch.isfinite(loss_d) and d.stem.weight.grad.abs().sum() > 0
    assert x0_hat.grad is None  # the discriminator's step does not reach the generator
    loss_g = generator_loss(d, fake, x_t, k)
    loss_g.backward()
    assert x0_hat.grad is not None and x0_hat.grad.abs().sum() > 0


def tiny_network(seed: int):
    """A minimal LDDPM network whose head draws something (an untrained one returns its enlarged input)."""
    from sr_desk_plugins.lddpm.network import LDDPMConfig, LDDPMNet

    torch.manual_seed(seed)
    net = LDDPMNet(LDDPMConfig(width=8, mults=(1, 2), latent_channels=2, gan_latent=4, flow_steps=1, heads=2,
                               dropout=0.0)).eval()
    torch.nn.init.normal_(net.head.weight, std=0.05)
    return net


def test_restore_takes_four_steps_from_noise_and_a_seed_gives_the_same_image():
    from sr_desk.diffusion.noise import SeededNoise
    from sr_desk_plugins.lddpm.process import restore

    net = tiny_network(0)
    lr = torch.rand(1, 3, 7, 9)
    calls = []

    def run(seed, **kw):
        return restore(net, lr, (21, 27), SCHEDULE, SeededNoise(seed), callback=lambda k, n, x0: calls.append(k),
                       **kw)

    a = run(3)
    assert a.shape == (1, 3, 21, 27) and calls == [1, 2, 3, 4]
    assert torch.equal(a, run(3)) and not torch.equal(a, run(4))
    loose = run(3, lr_consistency=False)
    from sr_desk.diffusion.imresize import imresize

    def lr_error(image):
        return float((imresize(image, size=(7, 9)) - lr).abs().mean())

    assert lr_error(a) < 0.5 * lr_error(loose)


def test_the_residual_gain_extrapolates_the_result_and_its_previews_away_from_the_enlarged_input():
    """Detail's means for LDDPM: ``up + g (x0 - up)`` on the output only, the sampling path left as it was."""
    import pytest

    from sr_desk.diffusion.imresize import imresize
    from sr_desk.diffusion.noise import SeededNoise
    from sr_desk_plugins.lddpm.process import restore

    net = tiny_network(1)
    lr = torch.rand(1, 3, 7, 9)
    up = imresize(lr, size=(21, 27))

    def run(gain):
        previews = []
        image = restore(net, lr, (21, 27), SCHEDULE, SeededNoise(5), lr_consistency=False, residual_gain=gain,
                        callback=lambda k, n, x0: previews.append(x0))
        return image, previews

    plain, plain_previews = run(1.0)
    for gain in (1.5, 2.2):
        image, previews = run(gain)
        torch.testing.assert_close(image, up + gain * (plain - up), atol=1e-5, rtol=0)
        for preview, plain_preview in zip(previews, plain_previews, strict=True):
            torch.testing.assert_close(preview, up + gain * (plain_preview - up), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="residual_gain"):
        run(0.5)
