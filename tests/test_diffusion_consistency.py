import pytest
import torch

from sr_desk.diffusion.consistency import back_project
from sr_desk.diffusion.imresize import imresize


def lr_error(image, lr, scale):
    return float((imresize(image, scale=1.0 / scale) - lr).abs().mean())


@pytest.mark.parametrize("scale", [2, 4])
def test_each_pass_brings_the_downscaled_image_closer_to_the_lr(scale):
    generator = torch.Generator().manual_seed(0)
    hr = torch.rand(1, 3, 16 * scale, 16 * scale, generator=generator)
    lr = imresize(hr, scale=1.0 / scale)
    estimate = torch.full_like(hr, 0.5)
    errors = [lr_error(back_project(estimate, lr, scale, k), lr, scale) for k in range(4)]
    assert errors[0] > errors[1] > errors[2] > errors[3]
    assert errors[3] < 0.15 * errors[0]
    # And towards the truth: what the LR fixes is shared with the HR image.
    assert float((back_project(estimate, lr, scale, 3) - hr).abs().mean()) < float((estimate - hr).abs().mean())


def test_zero_passes_change_nothing_and_bad_shapes_are_refused():
    image, lr = torch.rand(1, 3, 8, 8), torch.rand(1, 3, 2, 2)
    assert torch.equal(back_project(image, lr, 4, 0), image)
    with pytest.raises(ValueError, match="not 4x"):
        back_project(image, torch.rand(1, 3, 3, 2), 4)
    with pytest.raises(ValueError, match="iterations"):
        back_project(image, lr, 4, -1)


def test_residual_consistency_back_projects_the_image_the_residual_stands_for():
    from sr_desk.diffusion.consistency import residual_consistency

    torch.manual_seed(0)
    lr, base, x0 = torch.rand(1, 3, 6, 5), torch.rand(1, 3, 24, 20), torch.rand(1, 3, 24, 20) - 0.5
    corrected = residual_consistency(base, lr, 4)(x0)
    torch.testing.assert_close(corrected / 2 + base, back_project(x0 / 2 + base, lr, 4))
