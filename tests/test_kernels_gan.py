"""Kernel tests of gifd.attacks.gan (generator images in the victim's space, chains, projections, the ILO ramp):
hand-computed values and reference computations, small enough for mutation testing (make mutants)."""

import math

import pytest
import torch

from gifd.attacks.gan import chain_states, ilo_lr, project_l1_ball, spherical_, stage_norms, to_victim
from gifd.fl import FLTask
from gifd.generators.base import SequentialStaged

# mean 0.5, std 0.25: the victim's input is ((g + 1) / 2 - 0.5) / 0.25 = 2 g for a generator output g
TASK = FLTask(image_shape=(3, 16, 16), num_classes=5, mean=(0.5,) * 3, std=(0.25,) * 3)


def test_to_victim_maps_generator_range_to_the_normalised_input_and_splits_chains():
    g = torch.linspace(-1, 1, 4 * 3 * 16 * 16, dtype=torch.float64).view(4, 3, 16, 16)
    x = to_victim(g, TASK, chains=2)
    assert x.shape == (2, 2, 3, 16, 16)
    torch.testing.assert_close(x, 2 * g.view(2, 2, 3, 16, 16), rtol=0, atol=1e-12)
    assert torch.equal(x[1, 0], to_victim(g[2:3], TASK, 1)[0, 0])  # chain r holds images [r*B, (r+1)*B)
    one = FLTask(image_shape=(3, 16, 16), num_classes=5, mean=(0.0,) * 3, std=(1.0,) * 3)
    assert to_victim(-torch.ones(1, 3, 16, 16), one, 1).abs().max() == 0  # -1 is black, 0 after normalising
    assert torch.equal(to_victim(torch.ones(1, 3, 16, 16), one, 1), torch.ones(1, 1, 3, 16, 16))


def test_to_victim_downsamples_by_area_averaging():
    g = torch.rand(2, 3, 48, 48, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 2 - 1
    blocks = g.reshape(2, 3, 16, 3, 16, 3).mean((3, 5))  # the mean of each 3x3 block (bilinear: the centre pixel)
    torch.testing.assert_close(to_victim(g, TASK, 1)[0], 2 * blocks, rtol=0, atol=1e-12)


def test_to_victim_resizes_a_tall_image_of_the_right_width_bilinearly():
    # width already right, height 3x too large: whether to average is decided on the width, so bilinear
    g = torch.rand(1, 3, 48, 16, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 2 - 1
    out = to_victim(g, TASK, 1)[0, 0]
    torch.testing.assert_close(out, 2 * g[0, :, 1::3], rtol=0, atol=1e-12)  # rows 3i + 1, the centres


def _ramp_expected(src: torch.Tensor, n: int) -> torch.Tensor:
    """A linear ramp g_j = 2 j / (n - 1) - 1 sampled at source position ``src`` (clamped to the ends), x 2."""
    return 2 * (2 * src.clamp(0, n - 1) / (n - 1) - 1)


def test_to_victim_upsamples_bilinearly_without_aligned_corners():
    n = 8
    ramp = (2 * torch.arange(n, dtype=torch.float64) / (n - 1) - 1).view(1, 1, 1, n).expand(1, 3, n, n)
    out = to_victim(ramp, TASK, 1)[0, 0]
    i = torch.arange(16, dtype=torch.float64)
    want = _ramp_expected((i + 0.5) / 2 - 0.5, n)  # align_corners=False: half-pixel centres
    torch.testing.assert_close(out[0, 5], want, rtol=0, atol=1e-12)
    torch.testing.assert_close(out[2, :, 3], torch.full((16,), float(want[3]), dtype=torch.float64))


def test_to_victim_resizes_a_non_square_image_of_the_right_width_bilinearly():
    # width already right, height too small: not a downsampling, so bilinear (area would repeat rows)
    n = 8
    ramp = (2 * torch.arange(n, dtype=torch.float64) / (n - 1) - 1).view(1, 1, n, 1).expand(1, 3, n, 16)
    out = to_victim(ramp, TASK, 1)[0, 0, 1]
    i = torch.arange(16, dtype=torch.float64)
    torch.testing.assert_close(out[:, 7], _ramp_expected((i + 0.5) / 2 - 0.5, n), rtol=0, atol=1e-12)


def test_to_victim_converts_channels():
    g = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 2 - 1
    grey = FLTask(image_shape=(1, 16, 16), num_classes=5, mean=(0.5,), std=(0.25,))
    torch.testing.assert_close(to_victim(g, grey, 2)[:, 0], 2 * g.mean(1, keepdim=True), rtol=0, atol=1e-12)
    one = g[:, :1]
    rgb = to_victim(one, TASK, 1)[0]  # a grey generator for an RGB task: the channel is replicated
    assert rgb.shape == (2, 3, 16, 16)
    for c in range(3):
        torch.testing.assert_close(rgb[:, c], 2 * one[:, 0], rtol=0, atol=1e-12)
    pair = g[:, :2]  # a two-channel generator for an RGB task: grey (the channel mean), replicated
    torch.testing.assert_close(to_victim(pair, TASK, 1)[0], 2 * pair.mean(1, keepdim=True).expand(-1, 3, -1, -1),
                               rtol=0, atol=1e-12)  # fmt: skip
    two = FLTask(image_shape=(2, 16, 16), num_classes=5, mean=(0.5, 0.5), std=(0.25, 0.25))
    torch.testing.assert_close(to_victim(g, two, 1)[0], 2 * g[:, :2], rtol=0, atol=1e-12)  # other counts: the first


def _tiny_generator(num_classes=3):
    torch.manual_seed(0)
    return SequentialStaged(
        lambda z, y: torch.cat([z, y], 1),
        [torch.nn.Linear(4 + num_classes, 6), torch.nn.Linear(6, 3 * 2 * 2)],
        torch.nn.Sequential(torch.nn.Unflatten(1, (3, 2, 2)), torch.nn.Tanh()),
        latent_dim=4,
        num_classes=num_classes,
        image_shape=(3, 2, 2),
    )


def test_chain_states_draw_chain_r_from_seed_plus_r():
    G = _tiny_generator()
    labels = torch.tensor([2, 0])
    states = chain_states(G, labels, chains=3, seed=5)
    assert set(states) == {"z", "y"} and states["z"].shape == (6, 4) and states["y"].shape == (6, 3)
    for r in range(3):
        alone = G.initial_state(labels, torch.Generator().manual_seed(5 + r))
        assert torch.equal(states["z"][2 * r : 2 * r + 2], alone["z"])
        assert torch.equal(states["y"][2 * r : 2 * r + 2], alone["y"])
    assert torch.equal(chain_states(G, labels, 1, 6)["z"], states["z"][2:4])  # a single chain with seed s + 1
    assert not torch.equal(states["z"][:2], states["z"][2:4])


def test_l1_projection_hand_computed_cases():
    p = project_l1_ball(torch.tensor([[10.0, 1.0, 0.5], [-3.0, 2.0, -1.0]], dtype=torch.float64), 2.0)
    # row 0: only the largest entry survives (theta = 8); row 1: theta = (3 + 2 - 2) / 2 = 1.5
    assert p.tolist() == [[2.0, 0.0, 0.0], [-1.5, 0.5, 0.0]]
    one = project_l1_ball(torch.tensor([[10.0, 1.0, 0.5]]), 1.0)
    assert one.tolist() == [[1.0, 0.0, 0.0]]
    on_the_sphere = torch.tensor([[1.0, -1.0, 0.0, 0.0]])
    assert torch.equal(project_l1_ball(on_the_sphere, 2.0), on_the_sphere)
    neg = torch.tensor([[0.5, 0.5]])
    assert torch.equal(project_l1_ball(neg, -1.0), neg)  # a negative radius disables it too


def test_l1_projection_keeps_a_diverged_chain_nan_and_projects_the_others():
    d = torch.tensor([[float("nan"), 1.0], [3.0, 0.0], [0.25, -0.25]])
    p = project_l1_ball(d, 1.0)
    assert torch.isnan(p[0]).all()
    assert p[1:].tolist() == [[1.0, 0.0], [0.25, -0.25]]


def test_stage_norms_per_sample_and_per_style_vector():
    x2 = torch.tensor([[3.0, 4.0], [0.0, 0.5]])
    n2 = stage_norms(x2)
    assert n2.shape == (2, 1) and n2.flatten().tolist() == [5.0, 0.5]
    x4 = torch.zeros(2, 2, 1, 2)
    x4[0, 0, 0] = torch.tensor([1.0, 2.0])
    x4[0, 1, 0] = torch.tensor([2.0, 4.0])
    x4[1, 1, 0, 1] = 0.25
    n4 = stage_norms(x4)
    assert n4.shape == (2, 1, 1, 1) and n4.flatten().tolist() == [5.0, 0.25]
    x3 = torch.tensor([[[3.0, 4.0, 0.0], [0.0, 0.0, 2.0]], [[1.0, 0.0, 0.0], [0.0, 0.6, 0.8]]])
    n3 = stage_norms(x3)  # W+ latents: one norm per style vector (the last dimension)
    assert n3.shape == (2, 2, 1)
    torch.testing.assert_close(n3.flatten(), torch.tensor([5.0, 2.0, 1.0, 1.0]))
    w = torch.ones(2, 2, 3, requires_grad=True)
    assert not stage_norms(w * 2).requires_grad


@pytest.mark.parametrize("shape", [(3, 5), (2, 4, 3), (2, 2, 3, 3)])
def test_spherical_restores_the_stage_start_norm_and_keeps_the_direction(shape):
    g = torch.Generator().manual_seed(len(shape))
    start = torch.randn(shape, generator=g, dtype=torch.float64) * 0.1  # norms below 1
    norms = stage_norms(start)
    x = torch.randn(shape, generator=g, dtype=torch.float64) * 0.05
    direction = x / stage_norms(x)
    spherical_(x, norms)
    torch.testing.assert_close(stage_norms(x), norms, rtol=1e-12, atol=0)
    torch.testing.assert_close(x / stage_norms(x), direction, rtol=1e-12, atol=1e-15)
    zero = torch.zeros(shape, dtype=torch.float64)
    spherical_(zero, norms)
    assert torch.equal(zero, torch.zeros(shape, dtype=torch.float64))  # no NaN from a zero vector


def test_ilo_learning_rate_ramp_inside_the_warm_up_and_the_decay():
    assert ilo_lr(0.025, 0.1) == pytest.approx(0.05)  # half-way up the 5 % warm-up
    assert ilo_lr(0.4, 0.1) == pytest.approx(0.1 * (0.5 - 0.5 * math.cos(0.8 * math.pi)))  # cosine decay
    assert ilo_lr(0.4, 0.1, rampdown=0.5) == pytest.approx(0.1)  # decay not started yet
    assert ilo_lr(0.01, 0.2, rampup=0.02) == pytest.approx(0.1)
    assert ilo_lr(0.9, 1.0, rampdown=0.2) == pytest.approx(0.5)
