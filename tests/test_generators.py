"""One interface suite over every registered staged generator (tiny random-weight configurations)."""

import pytest
import torch

from gifd.generators import make_generator

TINY = {
    "dcgan": {},
    "dcgan64": {"num_classes": 7, "width": 8},
    "biggan": {"resolution": 128, "channel_width": 8, "num_classes": 20, "output_size": 32},
    "stylegan2": {
        "size": 32,
        "style_dim": 32,
        "n_mlp": 2,
        "channels": dict.fromkeys((4, 8, 16, 32), 16),
        "output_size": 16,
        "fit_samples": 2000,
    },
}


@pytest.fixture(params=sorted(TINY))
def gen(request):
    torch.manual_seed(0)
    g = make_generator(request.param, **TINY[request.param]).eval()
    with torch.no_grad():  # trained models have non-zero noise strengths and attention gains (inits are zero)
        for name, p in g.named_parameters():
            if name.endswith(("noise.weight", "gamma")):
                p.fill_(0.1)
    return g


def _labels(g, n=2):
    return torch.arange(n) % max(g.num_classes, 1)


def test_shapes_per_stage_and_render_advance_consistency(gen):
    state = gen.initial_state(_labels(gen), torch.Generator().manual_seed(1))
    with torch.no_grad():
        image = gen.render(0, state)
    assert image.shape == (2, *gen.image_shape)
    assert torch.isfinite(image).all()
    for stage in range(gen.num_stages - 1):
        nxt = gen.advance(stage, state)
        assert nxt["h"].shape[0] == 2
        with torch.no_grad():
            torch.testing.assert_close(gen.render(stage + 1, nxt), gen.render(stage, state), rtol=1e-4, atol=1e-4)
        state = nxt
    with pytest.raises(ValueError, match="last"):
        gen.advance(gen.num_stages - 1, state)
    with pytest.raises(ValueError, match="stage must be in"):
        gen.render(gen.num_stages, state)


def test_determinism_under_a_seed(gen):
    a = gen.initial_state(_labels(gen), torch.Generator().manual_seed(5))
    b = gen.initial_state(_labels(gen), torch.Generator().manual_seed(5))
    c = gen.initial_state(_labels(gen), torch.Generator().manual_seed(6))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k])
    with torch.no_grad():
        assert torch.equal(gen.render(0, a), gen.render(0, b))
        assert not torch.equal(gen.render(0, a), gen.render(0, c))


def test_gradients_reach_each_stages_variables(gen):
    state = gen.initial_state(_labels(gen), torch.Generator().manual_seed(2))
    for stage in range(gen.num_stages):
        if stage:
            state = gen.advance(stage - 1, state)
        names = gen.variables(stage)
        leaves = {k: v.detach().clone().requires_grad_(k in names) for k, v in state.items()}
        (gen.render(stage, leaves) ** 2).sum().backward()
        for name in names:
            assert leaves[name].grad is not None and leaves[name].grad.abs().sum() > 0, (stage, name)


def test_unknown_generator():
    with pytest.raises(ValueError, match="unknown generator 'vqgan'"):
        make_generator("vqgan")


def test_an_exported_64x64_prior_loads_by_path_with_its_manifest(tmp_path):
    import json

    from safetensors.torch import save_file

    from gifd.generators import ConditionalDCGAN64, load_generator, prior_manifest
    from gifd.generators.dcgan import export

    torch.manual_seed(0)
    G = ConditionalDCGAN64()
    ckpt = tmp_path / "checkpoint.pt"
    torch.save({"G_ema": G.state_dict(), "iteration": 3, "seconds": 1.0}, ckpt)
    dest = tmp_path / "prior.safetensors"
    manifest = export(ckpt, dest, {"classes": ["a"] * 202}, architecture="ConditionalDCGAN64()")
    loaded = load_generator(f"dcgan64:{dest}")
    assert loaded.num_stages == 5 and loaded.image_shape == (3, 64, 64) and loaded.source_sha256
    assert prior_manifest(f"dcgan64:{dest}")["sha256"] == manifest["sha256"] == json.loads(
        dest.with_suffix(".json").read_text())["sha256"]  # fmt: skip
    state = loaded.initial_state(torch.tensor([0, 201]))
    assert loaded.render(0, state).shape == (2, 3, 64, 64)
    save_file({"x": torch.zeros(1)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ValueError, match="other.safetensors"):
        load_generator(f"dcgan64:{tmp_path / 'other.safetensors'}")


def test_the_shipped_64x64_prior_loads_from_its_manifest_with_five_stages():
    """gifd/priors/tinyimagenet64_dcgan.*: the weights match the manifest's sha256, the manifest names the command,
    the iterations and one class per output, and the prior renders 64x64 images through 5 stages."""
    from gifd.generators import load_generator, prior_manifest

    manifest = prior_manifest("tinyimagenet64")
    assert manifest["iterations"] > 0 and "dcgan64 train" in manifest["command"]
    G = load_generator("tinyimagenet64")
    assert G.num_classes == len(manifest["classes"]) == len(manifest["wnids"]) == 202
    assert G.num_stages == 5 and G.image_shape == (3, 64, 64) and manifest["sha256"].startswith(G.source_sha256)
    with torch.no_grad():
        images = G.render(0, G.initial_state(torch.tensor([0, 201])))
    assert images.shape == (2, 3, 64, 64) and torch.isfinite(images).all()
