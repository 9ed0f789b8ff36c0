"""The from-scratch StyleGAN2 generator: key layout, loading, staging, upfirdn2d (tiny CPU configurations)."""

import math

import pytest
import torch
from torch.nn import functional as F

from gifd.generators.stylegan2 import StyleGAN2Generator, load_stylegan2, make_blur_kernel, upfirdn2d

STYLE_DIM = 32
N_MLP = 2
CH = 16


def tiny(size: int = 32, seed: int = 0, **kwargs) -> StyleGAN2Generator:
    torch.manual_seed(seed)
    channels = {2**r: CH for r in range(2, 11)}
    kwargs.setdefault("fit_samples", 2000)
    g = StyleGAN2Generator(size, style_dim=STYLE_DIM, n_mlp=N_MLP, channel_multiplier=1, channels=channels, **kwargs)
    # non-zero noise strengths and biases, so that every path matters
    with torch.no_grad():
        for name, p in g.named_parameters():
            if name.endswith("noise.weight") or name.endswith("activate.bias") or name.endswith("rgb1.bias"):
                p.normal_(0, 0.3)
            if name.startswith("to_rgbs") and name.endswith(".bias") and "modulation" not in name:
                p.normal_(0, 0.3)
    return g.eval()


def expected_keys(size: int, n_mlp: int) -> set[str]:
    """The rosinality ``Generator`` state-dict keys, built from the layout description alone."""
    log_size = int(math.log2(size))
    keys = {f"style.{i}.{p}" for i in range(1, n_mlp + 1) for p in ("weight", "bias")}
    keys.add("input.input")

    def styled(prefix: str, upsample: bool) -> set[str]:
        out = {f"{prefix}.conv.weight", f"{prefix}.conv.modulation.weight", f"{prefix}.conv.modulation.bias"}
        out |= {f"{prefix}.noise.weight", f"{prefix}.activate.bias"}
        if upsample:
            out.add(f"{prefix}.conv.blur.kernel")
        return out

    def rgb(prefix: str, upsample: bool) -> set[str]:
        out = {f"{prefix}.conv.weight", f"{prefix}.conv.modulation.weight", f"{prefix}.conv.modulation.bias"}
        out.add(f"{prefix}.bias")
        if upsample:
            out.add(f"{prefix}.upsample.kernel")
        return out

    keys |= styled("conv1", False) | rgb("to_rgb1", False)
    for i in range(2 * (log_size - 2)):
        keys |= styled(f"convs.{i}", i % 2 == 0)
    for j in range(log_size - 2):
        keys |= rgb(f"to_rgbs.{j}", True)
    keys |= {f"noises.noise_{k}" for k in range((log_size - 2) * 2 + 1)}
    return keys


def test_key_layout_and_shapes():
    g = tiny(32)
    sd = g.state_dict()
    assert set(sd) == expected_keys(32, N_MLP)
    assert len(sd) == len(expected_keys(32, N_MLP))
    assert sd["style.1.weight"].shape == (STYLE_DIM, STYLE_DIM)
    assert sd["style.2.bias"].shape == (STYLE_DIM,)
    assert sd["input.input"].shape == (1, CH, 4, 4)
    assert sd["conv1.conv.weight"].shape == (1, CH, CH, 3, 3)
    assert sd["conv1.conv.modulation.weight"].shape == (CH, STYLE_DIM)
    assert sd["conv1.noise.weight"].shape == (1,)
    assert sd["to_rgb1.conv.weight"].shape == (1, 3, CH, 1, 1)
    assert sd["to_rgb1.bias"].shape == (1, 3, 1, 1)
    assert sd["convs.5.conv.weight"].shape == (1, CH, CH, 3, 3)
    assert sd["to_rgbs.2.conv.weight"].shape == (1, 3, CH, 1, 1)
    kernel = make_blur_kernel() * 4
    assert torch.equal(sd["convs.0.conv.blur.kernel"], kernel)
    assert torch.equal(sd["to_rgbs.1.upsample.kernel"], kernel)
    assert [tuple(sd[f"noises.noise_{k}"].shape) for k in range(7)] == [(1, 1, r, r) for r in (4, 8, 8, 16, 16, 32, 32)]
    assert (g.n_latent, g.num_layers, g.num_stages) == (8, 7, 4)


def test_config_f_layout_without_allocating():
    with torch.device("meta"):
        g = StyleGAN2Generator(1024)
    sd = g.state_dict()
    assert set(sd) == expected_keys(1024, 8)
    assert sd["convs.6.conv.weight"].shape == (1, 512, 512, 3, 3)  # 64 px: 256 * 2
    assert sd["convs.8.conv.weight"].shape == (1, 256, 512, 3, 3)  # 128 px: 128 * 2
    assert sd["convs.14.conv.weight"].shape == (1, 32, 64, 3, 3)  # 1024 px: 16 * 2 from 512 px: 32 * 2
    assert sd["to_rgbs.7.conv.modulation.weight"].shape == (32, 512)
    assert (g.n_latent, g.num_stages) == (18, 9)  # blocks at 4, 8, ..., 1024 px


def test_checkpoint_round_trip_and_errors(tmp_path):
    g = tiny(32)
    path = tmp_path / "ckpt.pt"
    torch.save({"g_ema": g.state_dict(), "latent_avg": torch.zeros(STYLE_DIM)}, path)
    h = load_stylegan2(path, channels={2**r: CH for r in range(2, 11)}, fit_samples=2000).eval()
    assert h.size == 32 and h.n_mlp == N_MLP and h.style_dim == STYLE_DIM
    w = torch.randn(2, g.n_latent, STYLE_DIM, generator=torch.Generator().manual_seed(1))
    assert torch.equal(g(w, g.stored_noise()), h(w, h.stored_noise()))

    bad = dict(g.state_dict())
    bad["convs.2.conv.weight"] = torch.zeros(1, CH, CH + 1, 3, 3)
    torch.save({"g_ema": bad}, path)
    with pytest.raises(ValueError, match=r"convs\.2\.conv\.weight"):
        load_stylegan2(path, size=32, channels={2**r: CH for r in range(2, 11)})
    missing = dict(g.state_dict())
    del missing["to_rgbs.1.bias"]
    torch.save(missing, path)  # a bare state dict is accepted too
    with pytest.raises(ValueError, match=r"to_rgbs\.1\.bias"):
        load_stylegan2(path, channels={2**r: CH for r in range(2, 11)})


def test_render_advance_consistency_every_stage():
    g = tiny(32, output_size=16)
    state = g.initial_state(torch.zeros(2, dtype=torch.long), torch.Generator().manual_seed(0))
    ref = g.render(0, state)
    assert ref.shape == (2, 3, 16, 16)
    for stage in range(g.num_stages - 1):
        state = g.advance(stage, state)
        res = 2 ** (stage + 2)
        assert state["h"].shape == (2, CH, res, res) and state["skip"].shape == (2, 3, res, res)
        torch.testing.assert_close(g.render(stage + 1, state), ref, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError):
        g.advance(g.num_stages - 1, state)


def test_full_resolution_output_and_forward():
    g = tiny(16)
    state = g.initial_state(torch.zeros(3), torch.Generator().manual_seed(0))
    img = g.render(0, state)
    assert img.shape == (3, 3, 16, 16) and g.image_shape == (3, 16, 16)
    noise = [state[k] for k in g.noise_keys]
    torch.testing.assert_close(g(state["z"], noise), img)


def test_determinism_under_seed():
    g = tiny(16)
    labels = torch.zeros(2, dtype=torch.long)
    a = g.initial_state(labels, torch.Generator().manual_seed(7))
    b = g.initial_state(labels, torch.Generator().manual_seed(7))
    c = g.initial_state(labels, torch.Generator().manual_seed(8))
    assert a.keys() == b.keys() == {"z", *g.noise_keys}
    assert a["z"].shape == (2, g.n_latent, STYLE_DIM)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["z"], c["z"])
    assert torch.equal(g.render(0, a), g.render(0, b))
    # a freshly built generator with the same weights reproduces the gaussian fit and thus the state
    h = tiny(16)
    assert torch.equal(h.initial_state(labels, torch.Generator().manual_seed(7))["z"], a["z"])


def test_gaussian_fit_cache(tmp_path):
    path = tmp_path / "fit.pt"
    g = tiny(16, fit_cache=path)
    fit = g.gaussian_fit()
    assert path.is_file() and fit["mean"].shape == (STYLE_DIM,) and (fit["std"] > 0).all()
    assert g.gaussian_fit() is fit  # in-memory cache
    h = tiny(16, fit_cache=path)
    torch.testing.assert_close(h.gaussian_fit()["mean"], fit["mean"])
    # the cache is invalidated when the mapping weights change
    other = tiny(16, seed=1, fit_cache=path)
    assert not torch.allclose(other.gaussian_fit()["mean"], fit["mean"])


def test_gradients_reach_every_variable():
    g = tiny(32, output_size=16)
    state = g.initial_state(torch.zeros(2, dtype=torch.long), torch.Generator().manual_seed(0))
    for stage in range(g.num_stages):
        names = g.variables(stage)
        assert names[0] == "z" and (stage == 0) == ("h" not in names)
        leaves = {k: (v.clone().requires_grad_(True) if k in names else v) for k, v in state.items()}
        g.render(stage, leaves).sum().backward()
        for k in names:
            assert leaves[k].grad is not None and leaves[k].grad.abs().sum() > 0, (stage, k)
        if stage + 1 < g.num_stages:
            state = g.advance(stage, state)
    assert set(g.variables(0)) == {"z", *g.noise_keys}


def test_upfirdn2d():
    kernel = make_blur_kernel() * 4
    x = torch.full((1, 2, 6, 6), 3.0)
    up = upfirdn2d(x, kernel, up=2, pad=(2, 1))
    assert up.shape == (1, 2, 12, 12)
    torch.testing.assert_close(up[..., 2:-2, 2:-2], torch.full_like(up[..., 2:-2, 2:-2], 3.0))

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 9, 9, generator=gen)
    k = torch.randn(3, 4, generator=gen)
    ref = F.conv2d(x.reshape(6, 1, 9, 9), torch.flip(k, (0, 1))[None, None]).reshape(2, 3, 7, 6)
    torch.testing.assert_close(upfirdn2d(x, k), ref)
    # negative padding crops; down-sampling takes every other sample
    torch.testing.assert_close(upfirdn2d(x, k, pad=(-1, -1)), ref[..., 1:-1, 1:-1])
    torch.testing.assert_close(upfirdn2d(x, k, down=2), ref[..., ::2, ::2])


def test_skip_is_carried():
    g = tiny(32)
    state = g.initial_state(torch.zeros(2, dtype=torch.long), torch.Generator().manual_seed(0))
    full = g.render(0, state)
    for stage in range(g.num_stages - 1):
        state = g.advance(stage, state)
        torch.testing.assert_close(g.render(stage + 1, state), full, rtol=1e-5, atol=1e-5)
        zeroed = {**state, "skip": torch.zeros_like(state["skip"])}
        assert (g.render(stage + 1, zeroed) - full).abs().max() > 1e-3
