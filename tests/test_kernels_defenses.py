"""Kernel tests of gifd.defenses on a tiny float64 victim: hand-computed values and reference computations of every
defense, its record and its adaptive counterpart; small enough for mutation testing (make mutants)."""

import math
import warnings

import pytest
import torch
from torch import nn

from gifd.defenses import (
    DEFENSES,
    DP_DELTA,
    Defense,
    _head,
    adaptive_transform,
    clip_global,
    defend,
    dp_epsilon,
    keep_mask,
    prune,
    quantize,
    soteria_mask,
)
from gifd.fl import FLTask, LocalTraining, client_update

TASK = FLTask(image_shape=(3, 4, 4), num_classes=3, mean=(0.5,) * 3, std=(0.25,) * 3)


def _victim(scale=1.0, labels=(0, 2, 2)):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 2, 3), nn.Tanh(), nn.Flatten(), nn.Linear(8, 3)).double()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(scale)
    n = len(labels)
    images = torch.rand(3, 3, 4, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)[:n]
    labels = torch.tensor(labels)
    return model, images, labels, client_update(model, TASK, images, labels)


def test_defense_strength_rules():
    for ok in (("gaussian", 0.0), ("pruning", 0.0), ("pruning", 0.99), ("soteria", 0.5), ("quantize", 1.0),
               ("quantize", 4), ("clipping", 3.0)):  # fmt: skip
        assert Defense(*ok).as_dict() == {"name": ok[0], "strength": ok[1]}
    cases = [
        (("blur", 1.0), f"unknown defense 'blur'; choose from {DEFENSES}"),
        (("gaussian", -0.1), "defense strength must be >= 0, got -0.1"),
        (("laplacian", float("nan")), "defense strength must be >= 0, got nan"),
        (("pruning", 1.0), "pruning strength is the share pruned, in [0, 1); got 1.0"),
        (("soteria", 1.0), "soteria strength is the share pruned, in [0, 1); got 1.0"),
        (("quantize", 0.5), "quantize strength is a whole number of bits >= 1, got 0.5"),
        (("quantize", 2.5), "quantize strength is a whole number of bits >= 1, got 2.5"),
    ]
    for args, message in cases:
        with pytest.raises(ValueError) as e:
            Defense(*args)
        assert str(e.value) == message


def test_global_clipping_hand_computed_single_and_per_chain():
    ts = [torch.full((3,), 4.0, dtype=torch.float64), torch.full((2, 2), 3.0, dtype=torch.float64)]
    norm = math.sqrt(3 * 16 + 4 * 9)
    factor = 2.0 / (norm + 1e-6)
    out = clip_global(ts, 2.0)
    for o, t in zip(out, ts):
        torch.testing.assert_close(o, t * factor, rtol=1e-14, atol=0)
    assert all(torch.equal(o, t) for o, t in zip(clip_global(ts, 100.0), ts))  # inside: unchanged, not scaled up
    assert all(torch.equal(o, torch.zeros(3)) for o in clip_global([torch.zeros(3)], 1.0))  # no NaN at zero
    chains = [torch.stack([ts[0], ts[0] * 0.01]), torch.stack([ts[1], ts[1] * 0.01])]
    per = clip_global(chains, 2.0, chains=True)
    for o, t in zip(per, chains):
        assert o.shape == t.shape
        torch.testing.assert_close(o[0], t[0] * factor, rtol=1e-14, atol=0)
        torch.testing.assert_close(o[1], t[1], rtol=1e-14, atol=0)  # norm 0.092: inside the bound


class Elsewhere(torch.Tensor):
    """A CPU tensor that reports another device: reaches keep_mask's selection for other devices (kthvalue)."""

    @property
    def device(self):
        return torch.device("meta")


def _index_order_top(mag, keep):
    mask = torch.zeros_like(mag, dtype=torch.bool)
    for r in range(mag.shape[0]):
        order = sorted(range(mag.shape[1]), key=lambda i: (-float(mag[r, i]), i))[:keep]
        mask[r, order] = True
    return mask


def test_keep_mask_on_other_devices_equals_the_cpu_selection():
    g = torch.Generator().manual_seed(0)
    ties = torch.randint(0, 4, (3, 11), generator=g).double()
    assert ties.as_subclass(Elsewhere).device.type == "meta"
    for keep in (1, 4, 7, 11):
        want = _index_order_top(ties, keep)
        assert torch.equal(keep_mask(ties, keep), want)
        assert torch.equal(keep_mask(ties.as_subclass(Elsewhere), keep).as_subclass(torch.Tensor), want)


def test_keep_mask_hand_computed():
    mag = torch.tensor([[3.0, 1.0, 2.0, 2.0, 0.0, 2.0]])
    assert keep_mask(mag, 1).tolist() == [[True, False, False, False, False, False]]
    assert keep_mask(mag, 3).tolist() == [[True, False, True, True, False, False]]  # ties at 2: the first ones
    assert keep_mask(mag, 4).tolist() == [[True, False, True, True, False, True]]
    assert keep_mask(mag, 6).all()


def test_pruning_share_to_kept_entries():
    t = torch.tensor([0.5, -4.0, 0.1, 3.0, -0.2], dtype=torch.float64)
    assert prune([t], 0.0)[0].tolist() == t.tolist()  # nothing pruned
    assert prune([t], 0.5)[0].tolist() == [0.5, -4.0, 0.0, 3.0, 0.0]  # ceil(2.5) = 3 kept
    assert prune([t], 0.9)[0].tolist() == [0.0, -4.0, 0.0, 0.0, 0.0]  # ceil(0.5) = 1
    assert prune([t], 0.99)[0].tolist() == [0.0, -4.0, 0.0, 0.0, 0.0]  # at least one entry is kept
    m = torch.tensor([[1.0, -3.0], [2.0, 0.5]])
    assert prune([m], 0.5)[0].tolist() == [[0.0, -3.0], [2.0, 0.0]]  # over the whole tensor, shape kept
    assert prune([t], 1.0)[0].tolist() == [0.0, -4.0, 0.0, 0.0, 0.0]  # even when all is pruned, the largest stays
    chains = torch.stack([m, -m * 0.5, torch.tensor([[9.0, 0.0], [0.0, 0.0]])])
    assert prune([chains], 0.75, chains=True)[0].tolist() == [[[0.0, -3.0], [0.0, 0.0]],
                                                              [[0.0, 1.5], [0.0, 0.0]],
                                                              [[9.0, 0.0], [0.0, 0.0]]]  # fmt: skip


def test_quantisation_hand_computed():
    g = torch.tensor([-1.0, -0.5, 0.0, 0.25, 1.0], dtype=torch.float64)
    # 3 bits: 8 levels -1, -5/7, ..., 1; (g + 1) / 2 * 7 = 0, 1.75, 3.5, 4.375, 7 rounds (half to even) to 0, 2, 4, 4, 7
    (q3,) = quantize([g], 3)
    torch.testing.assert_close(q3, torch.tensor([0, 2, 4, 4, 7], dtype=torch.float64) / 7 * 2 - 1)
    (q2,) = quantize([g * 4], 2)  # levels over [-max, max] = [-4, 4]: -4, -4/3, 4/3, 4
    torch.testing.assert_close(q2, torch.tensor([-4, -4 / 3, 4 / 3, 4 / 3, 4], dtype=torch.float64))
    s, s2 = quantize([g, -2 * g], 1)  # per tensor, every tensor
    torch.testing.assert_close(s, torch.tensor([-0.55, -0.55, 0.0, 0.55, 0.55], dtype=torch.float64))
    torch.testing.assert_close(s2, torch.tensor([1.1, 1.1, 0.0, -1.1, -1.1], dtype=torch.float64))
    (z,) = quantize([torch.zeros(4, dtype=torch.float64)], 2)
    assert z.abs().max() < 1e-12  # a zero tensor stays (almost) zero
    two = quantize([g, 2 * g], 3)  # per tensor
    torch.testing.assert_close(two[1], 2 * two[0])


def test_head_is_the_last_linear_layer():
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 2)))
    name, mod = _head(model)
    assert name == "2.1" and mod is model[2][1]
    with pytest.raises(ValueError) as e:
        _head(nn.Sequential(nn.Conv2d(1, 1, 1)))
    assert str(e.value) == "Soteria needs a linear head (the layer before it is the defended representation)"


def _soteria_reference(model, x, share):
    """Per head-input feature f: sum over the batch of ||d r_f(x_b) / d x_b|| / |r_f(x_b)|; the smallest share are
    masked."""
    body = model[:3]
    feats = body(x)
    b, f = feats.shape
    score = torch.zeros(f, dtype=torch.float64)
    for j in range(f):
        for i in range(b):
            xi = x[i : i + 1].clone().requires_grad_(True)
            r = body(xi)[0, j]
            (grad,) = torch.autograd.grad(r, xi)
            score[j] += grad.norm() / r.abs()
    mask = torch.ones(f, dtype=torch.float64)
    mask[torch.argsort(score)[: int(share * f)]] = 0
    return mask


@pytest.mark.parametrize("share", [0.0, 0.3, 0.5, 0.9])
def test_soteria_mask_and_defense_against_a_reference(share):
    model, images, labels, update = _victim()
    x = TASK.normalize(images)
    want = _soteria_reference(model, x, share)
    mask = soteria_mask(model, x, share)
    assert mask.tolist() == want.tolist() and int((mask == 0).sum()) == int(share * 8)
    d = defend(update, Defense("soteria", share), model=model, task=TASK, images01=images, labels=labels)
    assert d.defense == {"name": "soteria", "strength": share}
    for n, a, b in zip(update.names, d.tensors, update.tensors):
        assert torch.equal(a, b * want if n == "3.weight" else b)


def test_dpsgd_clips_each_example_to_norm_one_then_adds_scaled_noise():
    model, images, labels, update = _victim(scale=0.2, labels=(1, 2))  # a batch of 2 (not the 3 channels)
    per = [client_update(model, TASK, images[i : i + 1], labels[i : i + 1]).tensors for i in range(2)]
    norms = [math.sqrt(sum(float(t.pow(2).sum()) for t in p)) for p in per]
    assert min(norms) < 1 < max(norms)  # both sides of the clipping bound
    clean = defend(update, Defense("dpsgd", 0.0), model=model, task=TASK, images01=images, labels=labels, seed=3)
    for j, t in enumerate(clean.tensors):
        want = sum(p[j] * min(1.0, 1.0 / (n + 1e-6)) for p, n in zip(per, norms)) / 2
        torch.testing.assert_close(t, want, rtol=1e-12, atol=1e-15)
    noisy = defend(update, Defense("dpsgd", 0.6), model=model, task=TASK, images01=images, labels=labels, seed=3)
    gen = torch.Generator().manual_seed(3)
    for a, b in zip(noisy.tensors, clean.tensors):
        torch.testing.assert_close(a - b, torch.randn(b.shape, generator=gen).double() * 0.6 / 2, rtol=1e-9, atol=1e-12)
    assert noisy.defense == {"name": "dpsgd", "strength": 0.6, "epsilon": dp_epsilon(0.6, 1e-5), "delta": 1e-5,
                             "accountant": "prv"}  # fmt: skip
    assert DP_DELTA == 1e-5


def test_noise_defenses_are_reproducible_draws_of_their_distribution():
    _, _, _, update = _victim()
    g = defend(update, Defense("gaussian", 0.3), seed=5)
    gen = torch.Generator().manual_seed(5)
    for a, b in zip(g.tensors, update.tensors):
        torch.testing.assert_close(a - b, torch.randn(b.shape, generator=gen).double() * 0.3, rtol=1e-9, atol=1e-12)
    assert g.defense == {"name": "gaussian", "strength": 0.3}
    default = defend(update, Defense("gaussian", 0.3))  # seed 0 unless given
    assert all(
        torch.equal(a, b) for a, b in zip(default.tensors, defend(update, Defense("gaussian", 0.3), seed=0).tensors)
    )
    assert not torch.equal(default.tensors[0], g.tensors[0])
    lap = defend(update, Defense("laplacian", 0.2), seed=6)
    torch.manual_seed(6)
    draw = torch.distributions.Laplace(0.0, 0.2)
    for a, b in zip(lap.tensors, update.tensors):
        torch.testing.assert_close(a - b, draw.sample(b.shape).double(), rtol=1e-6, atol=1e-9)
    zero = defend(update, Defense("laplacian", 0.0), seed=6)
    assert all(torch.equal(a, b) for a, b in zip(zero.tensors, update.tensors))


def test_deterministic_defenses_apply_their_transformation():
    _, _, _, update = _victim()
    ts = list(update.tensors)
    for defense, fn in ((Defense("clipping", 0.05), lambda: clip_global(ts, 0.05)),
                        (Defense("pruning", 0.7), lambda: prune(ts, 0.7)),
                        (Defense("quantize", 3), lambda: quantize(ts, 3))):  # fmt: skip
        d = defend(update, defense)
        assert all(torch.equal(a, b) for a, b in zip(d.tensors, fn())) and d.defense == defense.as_dict()
        assert not all(torch.equal(a, b) for a, b in zip(d.tensors, ts))


def test_defenses_that_recompute_need_the_clients_batch_and_fedsgd():
    model, images, labels, update = _victim()
    full = dict(model=model, task=TASK, images01=images, labels=labels)
    for name in ("soteria", "dpsgd"):
        for missing in full:
            with pytest.raises(ValueError) as e:
                defend(update, Defense(name, 0.5), **{k: v for k, v in full.items() if k != missing})
            assert str(e.value) == f"{name} needs the client's model, task, images01 and labels"
    avg = client_update(model, TASK, images, labels, protocol="fedavg", local=LocalTraining(1, 0.1))
    with pytest.raises(ValueError) as e:
        defend(avg, Defense("soteria", 0.5), **full)
    assert str(e.value) == "Soteria defends FedSGD gradients"
    with pytest.raises(ValueError) as e:
        defend(avg, Defense("dpsgd", 0.5), **full)
    assert str(e.value) == "DP-SGD here defends one FedSGD step"


def test_adaptive_transformations_repeat_the_defense_per_chain():
    model, images, labels, update = _victim()
    g = torch.Generator().manual_seed(7)
    chains = [torch.randn(2, *t.shape, generator=g, dtype=torch.float64) for t in update.tensors]
    assert adaptive_transform(update, model) is None
    for defense in (Defense("gaussian", 0.1), Defense("laplacian", 0.1), Defense("quantize", 2)):
        assert adaptive_transform(defend(update, defense), model) is None
    full = dict(model=model, task=TASK, images01=images, labels=labels)
    assert adaptive_transform(defend(update, Defense("dpsgd", 1.0), **full), model) is None
    clip = adaptive_transform(defend(update, Defense("clipping", 0.5)), model)
    assert all(torch.equal(a, b) for a, b in zip(clip(chains), clip_global(chains, 0.5, chains=True)))
    pr = adaptive_transform(defend(update, Defense("pruning", 0.6)), model)
    assert all(torch.equal(a, b) for a, b in zip(pr(chains), prune(chains, 0.6, chains=True)))
    sot_update = defend(update, Defense("soteria", 0.5), **full)
    sot = adaptive_transform(sot_update, model)
    columns = (sot_update.as_dict()["3.weight"] != 0).any(dim=0).double()  # the zeroed columns are visible
    assert int((columns == 0).sum()) == 4
    before = list(chains)
    out = sot(chains)
    assert len(chains) == len(before) and all(a is b for a, b in zip(chains, before))  # the caller's list is kept
    for n, a, b in zip(update.names, out, chains):
        assert torch.equal(a, b * columns if n == "3.weight" else b)


def test_dp_epsilon_arguments_and_silence():
    for bad in (dict(delta=0), dict(delta=1.0), dict(steps=0), dict(sample_rate=0.0), dict(sample_rate=1.5)):
        args = {"delta": 1e-5, "steps": 1, "sample_rate": 1.0, **bad}
        with pytest.raises(ValueError) as e:
            dp_epsilon(1.0, **bad)
        assert str(e.value) == ("need 0 < delta < 1, steps >= 1, 0 < sample_rate <= 1; got "
                                f"{args['delta']}, {args['steps']}, {args['sample_rate']}")  # fmt: skip
    assert dp_epsilon(0.0) == float("inf") and dp_epsilon(-1.0) == float("inf")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # neither NumPy's log(0) nor Opacus's "optimal order" notice leaks out
        one, many = dp_epsilon(1.0), dp_epsilon(1.0, steps=3)
        assert 0 < dp_epsilon(50.0) < 0.1 and many > one
        assert dp_epsilon(1.0, delta=1e-3) < one and dp_epsilon(1.0, sample_rate=0.5) < one
    assert dp_epsilon(1.0) == dp_epsilon(1.0, DP_DELTA, 1, 1.0)
