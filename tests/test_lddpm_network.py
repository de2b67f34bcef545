"""LDDPM's network (issue 15): shapes, the CVAE encoder dropped at inference, its KL term, and the config."""

from __future__ import annotations

import json

import pytest
import torch

from sr_desk_plugins.lddpm.network import LDDPMConfig, LDDPMNet

TINY = LDDPMConfig(width=8, mults=(1, 2), latent_channels=2, gan_latent=4, flow_steps=1, heads=2, dropout=0.0)


def network(seed: int = 0) -> LDDPMNet:
    torch.manual_seed(seed)
    net = LDDPMNet(TINY)
    torch.nn.init.normal_(net.head.weight, std=0.05)  # a trained head is not zero
    return net


def inputs(batch: int = 2, size: int = 16):
    g = torch.Generator().manual_seed(1)
    return (torch.randn(batch, 3, size, size, generator=g), torch.rand(batch, 3, size, size, generator=g),
            torch.randint(0, 4, (batch,), generator=g), torch.randn(batch, TINY.gan_latent, generator=g))


def test_sampling_runs_with_the_cvae_encoder_dropped():
    net = network().eval()
    x, lr_up, t, z = inputs()
    with torch.no_grad():
        for p in net.cvae_encoder.parameters():
            p.fill_(float("nan"))  # never read at inference
        latent = torch.randn(net.latent_shape(x))
        eps, kl = net(x, lr_up, t, z, z_latent=latent)
    assert eps.shape == x.shape and torch.isfinite(eps).all() and float(kl) == 0.0


def test_training_draws_the_latent_from_the_encoder_with_its_kl_term():
    net = network().train()
    x, lr_up, t, z = inputs()
    delta = torch.randn(net.latent_shape(x))
    eps, kl = net(x, lr_up, t, z, delta=delta)
    assert float(kl.detach()) > 0
    (eps.pow(2).mean() + kl).backward()
    assert net.cvae_encoder[0].weight.grad.abs().sum() > 0 and net.flow.steps[0].coupling.net[0].weight.grad is not None
    with pytest.raises(ValueError, match="z_latent"):
        net(x, lr_up, t, z)


def test_every_noise_source_changes_the_estimate():
    net = network().eval()
    x, lr_up, t, z = inputs()
    latent = torch.randn(net.latent_shape(x))
    with torch.no_grad():
        base, _ = net(x, lr_up, t, z, z_latent=latent)
        assert not torch.allclose(base, net(x, lr_up, t, torch.randn_like(z), z_latent=latent)[0])
        assert not torch.allclose(base, net(x, lr_up, t, z, z_latent=torch.randn_like(latent))[0])
        assert torch.equal(base, net(x, lr_up, t, z, z_latent=latent)[0])


def test_config_values_from_a_header_are_checked():
    assert LDDPMConfig.from_json(TINY.to_json()) == TINY
    for field, value in (("width", 12), ("flow_steps", 100), ("dropout", 1.5), ("mults", [])):
        with pytest.raises(ValueError):
            LDDPMConfig.from_json(json.dumps(json.loads(TINY.to_json()) | {field: value}))


def test_the_compact_preset_enters_as_pixel_blocks_and_keeps_every_shape():
    from sr_desk_plugins.lddpm.train import PRESETS

    config = PRESETS["compact"]
    assert config.unshuffle == 2 and config.size_multiple == 8
    net = LDDPMNet(config).eval()
    assert sum(p.numel() for p in net.parameters()) == 3_791_356
    x = torch.randn(1, 3, 24, 40)
    latent = torch.randn(net.latent_shape(x))
    assert latent.shape == (1, 8, 3, 5)
    with torch.no_grad():
        eps, _ = net(x, x, 2, torch.randn(1, config.gan_latent), z_latent=latent)
    assert eps.shape == x.shape


def test_an_untrained_network_returns_the_enlarged_input():
    net = LDDPMNet(TINY).eval()  # its head starts at zero
    x, lr_up, t, z = inputs()
    with torch.no_grad():
        out, _ = net(x, lr_up, t, z, z_latent=torch.randn(net.latent_shape(x)))
    assert torch.equal(out, lr_up)
