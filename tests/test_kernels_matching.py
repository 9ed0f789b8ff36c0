"""Kernel tests of gifd.matching (the update simulator, the gradient distances, the image regularisers): hand-computed
values and reference computations on small float64 models; small enough for mutation testing (make mutants)."""

import math
from dataclasses import replace

import pytest
import torch
from torch import nn

from gifd.fl import FLTask, LocalTraining, client_update
from gifd.matching import (
    DISTANCES,
    UpdateSimulator,
    cosine_distance,
    gradient_distance,
    group_consistency,
    image_l2,
    l2_distance,
    layer_cosine_distance,
    layer_weights,
    masked_cosine_distance,
    total_variation,
)

TASK = FLTask(image_shape=(3, 4, 4), num_classes=5, mean=(0.5,) * 3, std=(0.25,) * 3)
TARGET = [torch.tensor([1.0, 2.0]), torch.tensor([3.0])]
DUMMY = [torch.tensor([[2.0, 0.0]]), torch.tensor([[1.0]])]


def _bn_model(train=False):
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
        nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 5),
    ).double()  # fmt: skip
    g = torch.Generator().manual_seed(1)
    for bn in (model[1], model[4]):
        bn.running_mean.copy_(torch.randn(4, generator=g, dtype=torch.float64))
        bn.running_var.copy_(torch.rand(4, generator=g, dtype=torch.float64) + 0.5)
    return model.train(train)


def _batch():
    g = torch.Generator().manual_seed(2)
    return torch.rand(2, 3, 4, 4, generator=g, dtype=torch.float64), torch.tensor([1, 3])


def _bn_reference(model, x, targets):
    """sum over BatchNorm layers of ||mean - mu*|| + ||biased var - var*|| of the layer's input (eval-mode model)."""
    total = x.new_zeros(())
    h = x
    with torch.no_grad():
        for i, layer in enumerate(model):
            if isinstance(layer, nn.BatchNorm2d):
                mu, var = targets[i]
                total = total + (h.mean((0, 2, 3)) - mu).norm() + (h.var((0, 2, 3), unbiased=False) - var).norm()
            h = layer(h)
    return total


def test_simulator_needs_fedavg_hyperparameters_with_a_clear_message():
    from gifd.fl import ThreatModel

    model = _bn_model()
    images, labels = _batch()
    update = client_update(model, TASK, images, labels, protocol="fedavg", local=LocalTraining(2, 0.1),
                           threat=ThreatModel(local_hyperparameters=False))  # fmt: skip
    with pytest.raises(ValueError) as e:
        UpdateSimulator(model, update)
    assert str(e.value) == (
        "a FedAvg weight delta can only be inverted when the local hyper-parameters are known "
        "(ThreatModel.local_hyperparameters)"
    )


@pytest.mark.parametrize("protocol", ["fedsgd", "fedavg"])
def test_simulator_reproduces_the_update_in_float64_one_chain_or_many(protocol):
    model = _bn_model()
    images, labels = _batch()
    local = LocalTraining(3, 0.5, 1) if protocol == "fedavg" else None
    update = client_update(model, TASK, images, labels, protocol=protocol, local=local)
    sim = UpdateSimulator(model, update)
    assert sim.names == tuple(n for n, _ in model.named_parameters()) and sim.evaluations == 0
    x = TASK.normalize(images)
    other = torch.randn(x.shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    alone = sim(x[None], labels[None])
    both = sim(torch.stack([other, x]), torch.stack([labels.flip(0), labels]))
    assert sim.evaluations == 3
    for a, b, t in zip(alone, both, update.tensors):
        assert a.shape == (1, *t.shape) and b.shape == (2, *t.shape)
        torch.testing.assert_close(a[0], t, rtol=1e-10, atol=1e-13)
        torch.testing.assert_close(b[1], t, rtol=1e-10, atol=1e-13)
    first = sim(other[None], labels.flip(0)[None])
    for a, b in zip(first, both):
        torch.testing.assert_close(b[0], a[0], rtol=1e-10, atol=1e-13)
    assert not all(torch.allclose(a[0], b[0]) for a, b in zip(alone, both))  # the chains really differ
    with pytest.raises(ValueError) as e:
        sim(x, labels)
    assert str(e.value) == "candidate data must be (chains, batch, C, H, W), got (2, 3, 4, 4)"


def test_several_chains_of_a_batch_of_one():
    model = _bn_model()
    images, labels = _batch()
    update = client_update(model, TASK, images[:1], labels[:1])
    sim = UpdateSimulator(model, update)
    x = TASK.normalize(images)
    out = sim(torch.stack([x[1:], x[:1]]), torch.stack([labels[1:], labels[:1]]))
    for got, t in zip(out, update.tensors):
        assert got.shape == (2, *t.shape)
        torch.testing.assert_close(got[1], t, rtol=1e-10, atol=1e-13)
    assert not torch.allclose(out[-1][0], out[-1][1])


def test_train_mode_batchnorm_chains_get_their_own_buffers():
    model = _bn_model(train=True)
    images, labels = _batch()
    update = client_update(model, TASK, images, labels)
    sim = UpdateSimulator(model, update)
    before = {n: b.clone() for n, b in sim.buffers.items()}
    x = TASK.normalize(images)
    one = sim(x[None], labels[None])
    three = sim(torch.stack([x, x * 0.5, x]), labels.expand(3, -1))
    for a, b, t in zip(one, three, update.tensors):
        torch.testing.assert_close(a[0], t, rtol=1e-10, atol=1e-13)
        torch.testing.assert_close(b[2], t, rtol=1e-10, atol=1e-13)
    assert all(torch.equal(before[n], b) for n, b in sim.buffers.items())
    assert all(torch.equal(before[n], b) for n, b in model.named_buffers())


def test_simulator_applies_its_transform():
    model = _bn_model()
    images, labels = _batch()
    update = client_update(model, TASK, images, labels)
    sim = UpdateSimulator(model, update, transform=lambda ts: [t * 2 for t in ts])
    for a, t in zip(sim(TASK.normalize(images)[None], labels[None]), update.tensors):
        torch.testing.assert_close(a[0], 2 * t, rtol=1e-10, atol=1e-13)


def test_bn_prior_against_a_reference_with_running_and_disclosed_statistics():
    from gifd.fl import ThreatModel

    model = _bn_model()
    images, labels = _batch()
    update = client_update(model, TASK, images, labels)
    x = torch.randn(3, 2, 3, 4, 4, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    running = {1: (model[1].running_mean, model[1].running_var), 4: (model[4].running_mean, model[4].running_var)}
    sim = UpdateSimulator(model, update, bn_prior=True)
    got = sim.bn_statistics_loss(x)
    assert got.shape == (3,) and sim.evaluations == 0
    for r in range(3):
        assert float(got[r]) == pytest.approx(float(_bn_reference(model, x[r], running)), rel=1e-10)
    disclosed = client_update(model, TASK, images, labels, threat=ThreatModel(bn_statistics=True))
    only_second = replace(disclosed, bn_statistics={"4": disclosed.bn_statistics["4"]})  # the first is not disclosed
    got2 = UpdateSimulator(model, only_second, bn_prior=True).bn_statistics_loss(x)
    mixed = {1: running[1], 4: disclosed.bn_statistics["4"]}
    for r in range(3):
        assert float(got2[r]) == pytest.approx(float(_bn_reference(model, x[r], mixed)), rel=1e-10)
    assert float(UpdateSimulator(model, disclosed, bn_prior=True).bn_statistics_loss(TASK.normalize(images)[None])) \
        == pytest.approx(0, abs=1e-10)  # fmt: skip
    with pytest.raises(RuntimeError) as e:
        UpdateSimulator(model, update).bn_statistics_loss(x)
    assert str(e.value) == "UpdateSimulator was built without bn_prior=True"


def test_bn_prior_in_train_mode_and_without_batchnorm():
    model = _bn_model(train=True)
    images, labels = _batch()
    update = client_update(model, TASK, images, labels)
    x = torch.randn(3, 2, 3, 4, 4, generator=torch.Generator().manual_seed(4), dtype=torch.float64)  # 3 chains of 2
    got = UpdateSimulator(model, update, bn_prior=True).bn_statistics_loss(x)
    targets = {i: (model[i].running_mean.clone(), model[i].running_var.clone()) for i in (1, 4)}
    with torch.no_grad():
        want = [float(_bn_reference_train(model, x[r], targets)) for r in range(3)]
    assert got.tolist() == pytest.approx(want, rel=1e-10)
    plain = nn.Sequential(nn.Flatten(), nn.Linear(48, 5)).double()
    u = client_update(plain, TASK, images, labels)
    zero = UpdateSimulator(plain, u, bn_prior=True).bn_statistics_loss(x)
    assert zero.tolist() == [0.0, 0.0, 0.0]


def _bn_reference_train(model, x, targets):
    """As _bn_reference, with train-mode BatchNorm (normalised by the batch's own statistics)."""
    total = x.new_zeros(())
    h = x
    for i, layer in enumerate(model):
        if isinstance(layer, nn.BatchNorm2d):
            mu, var = targets[i]
            bm, bv = h.mean((0, 2, 3)), h.var((0, 2, 3), unbiased=False)
            total = total + (bm - mu).norm() + (bv - var).norm()
            h = (h - bm[:, None, None]) / (bv[:, None, None] + layer.eps).sqrt() * layer.weight[:, None, None] \
                + layer.bias[:, None, None]  # fmt: skip
        else:
            h = layer(h)
    return total


def test_layer_weights():
    assert layer_weights("equal", 3) == [1.0, 1.0, 1.0]
    assert layer_weights("linear", 4) == [1.0, 0.75, 0.5, 0.25]
    e = [math.exp(3), math.exp(2), math.exp(1)]
    assert layer_weights("exp", 3) == pytest.approx([v / sum(e) for v in e], rel=1e-12)
    assert layer_weights((1, 2), 2) == [1.0, 2.0] and all(type(w) is float for w in layer_weights((1, 2), 2))
    with pytest.raises(ValueError) as err:
        layer_weights("flat", 2)
    assert str(err.value) == "unknown layer-weight scheme 'flat'; use 'equal', 'linear', 'exp' or a list"
    with pytest.raises(ValueError) as err:
        layer_weights([1.0], 2)
    assert str(err.value) == "1 layer weights for 2 tensors"


def test_weighted_distances_hand_computed():
    # linear weights (1, 1/2) on DUMMY against TARGET
    dot, nd, nt = 1 * 2 + 0.5 * 3, 1 * 4 + 0.5 * 1, 1 * 5 + 0.5 * 9
    assert cosine_distance(DUMMY, TARGET, "linear").item() == pytest.approx(1 - dot / math.sqrt(nd * nt), rel=1e-6)
    per = [1 - 2 / (2 * math.sqrt(5)), 1 - 3 / 3]
    assert layer_cosine_distance(DUMMY, TARGET, "linear").item() == pytest.approx((per[0] + 0.5 * per[1]) / 1.5)
    assert layer_cosine_distance(DUMMY, TARGET, [2.0, 2.0]).item() == pytest.approx((per[0] + per[1]) / 2)
    sparse = [torch.tensor([1.0, 0.0]), torch.tensor([3.0])]
    dense = [torch.tensor([[2.0, 5.0]]), torch.tensor([[1.0]])]
    want = 1 - (2 + 0.5 * 3) / math.sqrt((4 + 0.5 * 1) * (1 + 0.5 * 9))
    assert masked_cosine_distance(dense, sparse, "linear").item() == pytest.approx(want, rel=1e-6)


def test_distances_are_scale_invariant_down_to_tiny_gradients_and_safe_at_zero():
    g = torch.Generator().manual_seed(0)
    t = [torch.randn(3, 2, generator=g, dtype=torch.float64), torch.randn(4, generator=g, dtype=torch.float64)]
    d = [torch.randn(2, 3, 2, generator=g, dtype=torch.float64), torch.randn(2, 4, generator=g, dtype=torch.float64)]
    for dist in (cosine_distance, layer_cosine_distance, masked_cosine_distance):
        ref = dist(d, t)
        small = dist([x * 1e-4 for x in d], [x * 1e-3 for x in t])
        torch.testing.assert_close(small, ref, rtol=1e-10, atol=1e-12)
        zero = dist([torch.zeros_like(x) for x in d], t)
        assert zero.tolist() == [1.0, 1.0]  # no NaN for a zero candidate
    assert l2_distance([x * 1e-3 for x in d], [x * 1e-3 for x in t]).tolist() == pytest.approx(
        (l2_distance(d, t) * 1e-6).tolist(), rel=1e-10
    )


def test_distances_per_chain_against_a_direct_computation():
    g = torch.Generator().manual_seed(1)
    t = [torch.randn(3, 2, generator=g, dtype=torch.float64), torch.randn(4, generator=g, dtype=torch.float64)]
    d = [torch.randn(3, 3, 2, generator=g, dtype=torch.float64), torch.randn(3, 4, generator=g, dtype=torch.float64)]
    tf = torch.cat([x.flatten() for x in t])
    for r in range(3):
        df = torch.cat([x[r].flatten() for x in d])
        assert float(cosine_distance(d, t)[r]) == pytest.approx(1 - float(df @ tf / (df.norm() * tf.norm())))
        assert float(l2_distance(d, t)[r]) == pytest.approx(float((df - tf).pow(2).sum()))
    for r in range(3):  # per-tensor cosine distances, averaged
        per = [1 - float(x[r].flatten() @ y.flatten() / (x[r].norm() * y.norm())) for x, y in zip(d, t)]
        assert float(layer_cosine_distance(d, t)[r]) == pytest.approx(sum(per) / 2)
    t32 = [x.float() for x in t]  # a float32 shared update against float64 candidates
    assert cosine_distance(d, t32).dtype == torch.float64
    d32 = [x.float() for x in d]  # the distance is computed in the candidates' precision
    for dist in (cosine_distance, l2_distance, layer_cosine_distance):
        assert dist(d32, t).dtype == torch.float32
    with pytest.raises(ValueError) as e:
        cosine_distance(d[:1], t)
    assert str(e.value) == "1 simulated tensors against 2 shared ones"


def test_gradient_distance_names():
    assert DISTANCES == {"cosine": cosine_distance, "l2": l2_distance, "layer_cosine": layer_cosine_distance,
                         "masked_cosine": masked_cosine_distance}  # fmt: skip
    for name, fn in DISTANCES.items():
        assert gradient_distance(name) is fn
    with pytest.raises(ValueError) as e:
        gradient_distance("l1")
    assert (
        str(e.value)
        == "unknown gradient distance 'l1'; choose one of ['cosine', 'l2', 'layer_cosine', 'masked_cosine']"
    )


def test_regularisers_on_several_chains_channels_and_a_non_square_image():
    # (R, B, C, H, W) = (2, 1, 3, 2, 3); chain 0: the horizontal ramp 0, 1, 2 in every row; chain 1: row 0 is 0,
    # row 1 is 2 (6 in channel 1)
    x = torch.zeros(2, 1, 3, 2, 3, dtype=torch.float64)
    x[0] = torch.tensor([0.0, 1.0, 2.0])
    x[1, :, :, 1, :] = 2.0
    x[1, :, 1] *= 3
    assert total_variation(x).tolist() == pytest.approx([1.0 + 0.0, 0.0 + (2 + 6 + 2) / 3])
    assert image_l2(x).tolist() == pytest.approx([math.sqrt(3 * 2 * 5) / 6, math.sqrt(12 + 108 + 12) / 6])
    rows = torch.tensor([0.0, 1.0, 3.0], dtype=torch.float64).view(1, 1, 1, 3, 1).expand(1, 1, 1, 3, 2)
    assert total_variation(rows).tolist() == pytest.approx([(1 + 2) / 2])  # vertical steps 1 and 2, three rows
    three = torch.stack([torch.zeros(1, 1, 2, 3), torch.ones(1, 1, 2, 3), 5 * torch.ones(1, 1, 2, 3)]).double()
    # the centre is the mean of the chains, 2
    assert group_consistency(three).tolist() == pytest.approx([c * math.sqrt(6) / 6 for c in (2, 1, 3)])
    y = three.clone().requires_grad_(True)
    group_consistency(y).sum().backward()  # the centre is fixed: no gradient flows through it
    want = torch.stack([(y[r] - 2).detach() / ((y[r] - 2).detach().norm() * 6) for r in range(3)])
    torch.testing.assert_close(y.grad, want)
