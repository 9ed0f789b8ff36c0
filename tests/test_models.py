import pytest
import torch

from gifd.models import ResNet18, load_checkpoint, make_model


@pytest.mark.parametrize(
    "name,shape",
    [("resnet18", (3, 32, 32)), ("convnet", (3, 32, 32)), ("lenet", (1, 32, 32)), ("tv:resnet18", (3, 32, 32))],
)
def test_models_build_and_classify(name, shape):
    model = make_model(name, 7, in_channels=shape[0], seed=0)
    assert model(torch.rand(2, *shape)).shape == (2, 7)
    assert not model.training


def test_resnet18_is_the_cifar_variant():
    m = ResNet18(10)
    assert m.conv1.kernel_size == (3, 3) and m.conv1.stride == (1, 1)
    assert not any(isinstance(x, torch.nn.MaxPool2d) for x in m.modules())
    assert sum(p.numel() for p in m.parameters()) == 11_173_962


def test_seed_makes_models_identical_and_bn_mode_is_applied():
    a, b = make_model("convnet", seed=5), make_model("convnet", seed=5, bn_mode="train")
    for x, y in zip(a.parameters(), b.parameters()):
        assert torch.equal(x, y)
    assert b.training and not a.training


def test_checkpoint_round_trip_and_clear_mismatch(tmp_path):
    model = make_model("convnet", 5, seed=1)
    path = tmp_path / "m.pt"
    torch.save(model.state_dict(), path)
    loaded = make_model("convnet", 5, seed=2, checkpoint=path)
    for x, y in zip(model.parameters(), loaded.parameters()):
        assert torch.equal(x, y)
    with pytest.raises(ValueError, match=r"fc.weight.*shape \(5, 128\).*\(3, 128\)"):
        make_model("convnet", 3, checkpoint=path)
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        make_model("convnet", checkpoint=tmp_path / "missing.pt")


def test_checkpoints_never_unpickle_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pt"
    torch.save({"fc.weight": Evil()}, path)
    with pytest.raises(Exception, match="(?i)weights.only|unsupported|global"):
        load_checkpoint(path)


def test_unknown_model_and_bad_arguments():
    with pytest.raises(ValueError, match="unknown model 'vit'"):
        make_model("vit")
    with pytest.raises(ValueError, match="unknown torchvision classifier"):
        make_model("tv:not_a_net")
    with pytest.raises(ValueError, match="bn_mode"):
        make_model("convnet", bn_mode="frozen")
