import pytest
import torch

from gifd.defenses import Defense, adaptive_transform, clip_global, defend, dp_epsilon, prune, quantize
from gifd.fl import FLTask, client_update
from gifd.matching import UpdateSimulator, cosine_distance, l2_distance
from gifd.models import make_model


def test_pruning_keeps_exactly_the_top_share():
    g = torch.tensor([[0.1, -5.0, 0.3], [2.0, -0.2, 0.05]])
    (p,) = prune([g], 0.5)
    assert torch.equal(p, torch.tensor([[0.0, -5.0, 0.3], [2.0, 0.0, 0.0]]))
    big = torch.randn(1000, generator=torch.Generator().manual_seed(0))
    (q,) = prune([big], 0.9)
    assert int((q != 0).sum()) == 100
    assert q.abs().max() == big.abs().max() and (q[q != 0].abs().min() >= big.abs().sort().values[-100])


def test_clipping_bounds_the_global_norm():
    ts = [torch.full((3,), 4.0), torch.full((4,), 3.0)]
    clipped = clip_global(ts, 2.0)
    norm = torch.sqrt(sum(t.pow(2).sum() for t in clipped))
    assert norm.item() == pytest.approx(2.0, rel=1e-5)
    assert torch.allclose(clip_global(ts, 1e6)[0], ts[0])  # inside the bound: unchanged


def test_quantisation():
    g = torch.tensor([-1.0, -0.2, 0.0, 0.6, 1.0])
    (q2,) = quantize([g], 2)
    assert torch.allclose(q2, torch.tensor([-1.0, -1 / 3, 1 / 3, 1 / 3, 1.0]), atol=1e-6)  # 4 levels
    (s,) = quantize([g], 1)
    assert torch.allclose(s, torch.sign(g) * g.abs().mean())


def _setup():
    task = FLTask((3, 16, 16), 5, (0.5,) * 3, (0.25,) * 3)
    model = make_model("convnet", 5, seed=0)
    g = torch.Generator().manual_seed(0)
    images, labels = torch.rand(3, 3, 16, 16, generator=g), torch.tensor([0, 2, 4])
    return task, model, images, labels, client_update(model, task, images, labels)


def test_dpsgd_clips_each_example_before_averaging():
    task, model, images, labels, update = _setup()
    defended = defend(update, Defense("dpsgd", 0.0), model=model, task=task, images01=images, labels=labels)
    manual = []
    for i in range(3):
        u = client_update(model, task, images[i : i + 1], labels[i : i + 1])
        norm = torch.sqrt(sum(t.pow(2).sum() for t in u.tensors))
        manual.append([t * min(1.0, 1.0 / (float(norm) + 1e-6)) for t in u.tensors])
    for j, t in enumerate(defended.tensors):
        torch.testing.assert_close(t, sum(m[j] for m in manual) / 3, rtol=1e-4, atol=1e-6)
    noisy = defend(update, Defense("dpsgd", 1.0), model=model, task=task, images01=images, labels=labels)
    assert not torch.allclose(noisy.tensors[0], defended.tensors[0])
    assert defended.defense["name"] == "dpsgd" and defended.defense["epsilon"] == float("inf")
    assert noisy.defense["epsilon"] == pytest.approx(dp_epsilon(1.0)) and noisy.defense["delta"] == 1e-5


def _analytic_gaussian_delta(eps: float, sigma: float) -> float:
    """Balle and Wang (2018): the exact delta(eps) of one Gaussian mechanism, sensitivity 1, noise sigma."""
    from math import erf, exp, sqrt

    phi = lambda v: 0.5 * (1 + erf(v / sqrt(2)))  # noqa: E731
    return phi(1 / (2 * sigma) - eps * sigma) - exp(eps) * phi(-1 / (2 * sigma) - eps * sigma)


@pytest.mark.parametrize("sigma", [0.7, 1.0, 3.0])
def test_dp_epsilon_of_one_release_matches_the_analytic_gaussian_mechanism(sigma):
    eps = dp_epsilon(sigma, delta=1e-5)
    lo, hi = 0.0, 100.0  # the exact epsilon, by bisection on the decreasing delta(eps)
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _analytic_gaussian_delta(mid, sigma) > 1e-5 else (lo, mid)
    assert eps == pytest.approx(hi, rel=0.02)
    assert dp_epsilon(sigma, steps=4) > eps > dp_epsilon(2 * sigma)
    assert dp_epsilon(sigma, sample_rate=0.01) < eps
    assert dp_epsilon(0.0) == float("inf")
    with pytest.raises(ValueError, match="delta"):
        dp_epsilon(sigma, delta=0)


def test_soteria_zeroes_the_least_sensitive_head_columns():
    task, model, images, labels, update = _setup()
    d = defend(update, Defense("soteria", 0.5), model=model, task=task, images01=images, labels=labels)
    w = d.as_dict()["fc.weight"]
    zero_cols = int((w == 0).all(dim=0).sum())
    assert zero_cols == w.shape[1] // 2
    others = [n for n in d.names if n != "fc.weight"]
    assert all(torch.equal(d.as_dict()[n], update.as_dict()[n]) for n in others)


@pytest.mark.parametrize("defense", [Defense("clipping", 0.01), Defense("pruning", 0.8), Defense("soteria", 0.6)])
def test_adaptive_transformation_gives_distance_zero_on_the_true_input(defense):
    task, model, images, labels, update = _setup()
    defended = defend(update, defense, model=model, task=task, images01=images, labels=labels)
    transform = adaptive_transform(defended, model)
    assert transform is not None
    x = task.normalize(images)[None]
    plain = UpdateSimulator(model, defended)(x, labels[None])
    adapted = UpdateSimulator(model, defended, transform=transform)(x, labels[None])
    assert l2_distance(adapted, defended.tensors).item() == pytest.approx(0, abs=1e-10)
    assert cosine_distance(adapted, defended.tensors).item() == pytest.approx(0, abs=1e-5)
    assert l2_distance(plain, defended.tensors).item() > 0


def test_noise_has_no_adaptive_transform_and_bad_defenses_fail():
    task, model, images, labels, update = _setup()
    noisy = defend(update, Defense("gaussian", 0.1))
    assert adaptive_transform(noisy, model) is None
    assert not torch.allclose(noisy.tensors[0], update.tensors[0])
    lap = defend(update, Defense("laplacian", 0.1))
    assert not torch.allclose(lap.tensors[0], update.tensors[0])
    with pytest.raises(ValueError, match="unknown defense 'mixup'"):
        Defense("mixup", 0.1)
    with pytest.raises(ValueError, match="share pruned"):
        Defense("pruning", 1.5)
    with pytest.raises(ValueError, match="needs the client's model"):
        defend(update, Defense("soteria", 0.5))


def test_an_attack_uses_the_adaptive_transformation():
    from gifd.attacks import InvertingGradients

    task, model, images, labels, update = _setup()
    defended = defend(update, Defense("pruning", 0.9))
    adaptive = InvertingGradients(model, task, budget=40, restarts=2, progress=False)(defended)
    blind = InvertingGradients(model, task, budget=40, restarts=2, progress=False, adaptive=False)(defended)
    assert adaptive.score != blind.score


def _stable_top(mag: torch.Tensor, keep: int) -> torch.Tensor:
    """Reference rule: sort by magnitude (descending), ties by index (ascending); keep the first ``keep``."""
    mask = torch.zeros_like(mag, dtype=torch.bool)
    for r in range(mag.shape[0]):
        order = sorted(range(mag.shape[1]), key=lambda i: (-float(mag[r, i]), i))[:keep]
        mask[r, order] = True
    return mask


@pytest.mark.parametrize("seed", range(4))
def test_pruning_keeps_exactly_the_largest_entries_ties_in_index_order(seed):
    from gifd.defenses import keep_mask, prune

    g = torch.Generator().manual_seed(seed)
    ties = torch.randint(-3, 4, (3, 57), generator=g).float()  # many equal magnitudes, zeros included
    for keep in (1, 5, 20, 57):
        assert torch.equal(keep_mask(ties.abs(), keep), _stable_top(ties.abs(), keep))
        assert (keep_mask(ties.abs(), keep).sum(1) == keep).all()
    # without ties it is the torch.topk rule it replaced, on chains and on single tensors
    cont = [torch.randn(4, 6, 5, generator=g, dtype=torch.float64), torch.randn(4, 11, generator=g)]
    for t, out in zip(cont, prune(cont, 0.7, chains=True)):
        flat = t.reshape(4, -1)
        keep = int(torch.ceil(torch.tensor(0.3 * flat.shape[1])).item())
        ref = torch.zeros_like(flat).scatter_(1, flat.abs().topk(keep, dim=1).indices, 1.0) * flat
        assert torch.equal(out.reshape(4, -1), ref)
    (single,) = prune([cont[0][0]], 0.9)
    assert (single != 0).sum() == 3 and single.shape == cont[0][0].shape


def test_pruning_passes_gradients_through_the_kept_entries():
    from gifd.defenses import prune

    x = torch.tensor([[0.5, -2.0, 0.1, 3.0]], requires_grad=True)
    (out,) = prune([x], 0.5, chains=True)
    out.sum().backward()
    assert x.grad.tolist() == [[0.0, 1.0, 0.0, 1.0]]
