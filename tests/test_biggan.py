import pytest
import torch

from gifd.generators.biggan import BIGGAN_LAYERS, BigGANDeep, load_biggan


def _tiny(resolution=128, **kw):
    torch.manual_seed(0)
    model = BigGANDeep(resolution, channel_width=8, num_classes=20, **kw).eval()
    sd = model.state_dict()
    for k in sd:  # non-trivial statistics and attention gain, so every part of the forward matters
        if "running_vars" in k:
            sd[k] = torch.rand_like(sd[k]) + 0.5
        elif "running_means" in k:
            sd[k] = torch.randn_like(sd[k]) * 0.1
        elif k.endswith("gamma"):
            sd[k] = torch.full_like(sd[k], 0.5)
    model.load_state_dict(sd)
    return model


@pytest.mark.parametrize("resolution,stages", [(128, 11), (256, 13), (512, 15)])
def test_public_configurations_have_the_papers_stage_counts(resolution, stages):
    layers = BIGGAN_LAYERS[resolution]
    assert len(layers) + 1 == stages
    assert 4 * 2 ** sum(up for up, _, _ in layers) == resolution


def test_matches_the_public_pytorch_port_exactly():
    from pytorch_pretrained_biggan import BigGAN, BigGANConfig

    ours = _tiny()
    ref = BigGAN(BigGANConfig(output_dim=128, channel_width=8, num_classes=20, layers=BIGGAN_LAYERS[128])).eval()
    assert set(ref.state_dict()) == set(ours.state_dict())
    ref.load_state_dict(ours.state_dict())
    z = torch.randn(2, 128)
    y = torch.nn.functional.one_hot(torch.tensor([3, 7]), 20).float()
    with torch.no_grad():
        for truncation in (1.0, 0.4):
            torch.testing.assert_close(ours(z, y, truncation), ref(z, y, truncation), rtol=1e-5, atol=1e-5)


def test_the_256_layout_has_13_module_boundaries_with_the_spec_shapes():
    g = BigGANDeep(256, channel_width=4, num_classes=10, output_size=64)
    assert g.num_stages == 13 and g.resolution == 256
    state = g.initial_state(torch.tensor([1]))
    shapes = []
    for stage in range(12):
        state = g.advance(stage, state)
        shapes.append(tuple(state["h"].shape[1:]))
    c = 4 / 128  # channel_width 4 instead of 128
    expected = [(2048, 4), (2048, 8), (2048, 8), (1024, 16), (1024, 16), (1024, 32), (512, 32), (512, 64),
                (512, 64), (256, 64), (256, 128), (128, 128)]  # fmt: skip
    assert shapes == [(int(ch * c), s, s) for ch, s in expected]
    assert g.render(12, state).shape == (1, 3, 64, 64)


def test_load_from_a_file_and_reject_a_wrong_one(tmp_path):
    model = _tiny(output_size=32)
    path = tmp_path / "pytorch_model.bin"
    torch.save(model.state_dict(), path)
    (tmp_path / "config.json").write_text(
        '{"output_dim": 128, "channel_width": 8, "num_classes": 20, "z_dim": 128, "attention_layer_position": 8}'
    )
    loaded = load_biggan(tmp_path, output_size=32)
    state = model.initial_state(torch.tensor([4]), torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(loaded.render(0, state), model.render(0, state))
    sd = model.state_dict()
    sd["generator.layers.3.conv_1.weight_orig"] = torch.zeros(3, 3)
    torch.save(sd, path)
    with pytest.raises(ValueError, match=r"generator.layers.3.conv_1.weight_orig.*shape \(3, 3\)"):
        load_biggan(tmp_path)
    del sd["generator.layers.3.conv_1.weight_orig"]
    torch.save(sd, path)
    with pytest.raises(ValueError, match="missing key 'generator.layers.3.conv_1.weight_orig'"):
        load_biggan(tmp_path)
    with pytest.raises(FileNotFoundError):
        load_biggan(tmp_path / "nothing")
