import math

import pytest
import torch

from gifd.fl import LocalTraining, client_update
from gifd.matching import (
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
from gifd.models import make_model

TARGET = [torch.tensor([1.0, 2.0]), torch.tensor([3.0])]
DUMMY = [torch.tensor([[2.0, 0.0]]), torch.tensor([[1.0]])]


def test_distances_against_hand_computed_values():
    assert cosine_distance(DUMMY, TARGET).item() == pytest.approx(1 - 5 / math.sqrt(70), abs=1e-6)
    assert l2_distance(DUMMY, TARGET).item() == pytest.approx(9.0)
    assert layer_cosine_distance(DUMMY, TARGET).item() == pytest.approx((1 - 1 / math.sqrt(5) + 0) / 2, abs=1e-6)
    assert l2_distance(DUMMY, TARGET, weights="linear").item() == pytest.approx(1 * 5 + 0.5 * 4)
    assert l2_distance(DUMMY, TARGET, weights=[0.0, 2.0]).item() == pytest.approx(8.0)
    sparse = [torch.tensor([1.0, 0.0]), torch.tensor([3.0])]
    dense = [torch.tensor([[2.0, 5.0]]), torch.tensor([[1.0]])]
    assert masked_cosine_distance(dense, sparse).item() == pytest.approx(1 - 5 / math.sqrt(50), abs=1e-6)
    assert cosine_distance([t.unsqueeze(0) * 3 for t in TARGET], TARGET).item() == pytest.approx(0, abs=1e-6)


def test_distances_work_per_chain():
    chains = [torch.stack([DUMMY[0][0], torch.tensor([1.0, 2.0])]), torch.tensor([[1.0], [3.0]])]
    d = l2_distance(chains, TARGET)
    assert d.tolist() == [9.0, 0.0]


def test_distance_and_weight_errors():
    with pytest.raises(ValueError, match="unknown gradient distance 'l3'"):
        gradient_distance("l3")
    with pytest.raises(ValueError, match="3 layer weights for 2 tensors"):
        layer_weights([1, 2, 3], 2)
    with pytest.raises(ValueError, match="1 simulated tensors against 2"):
        l2_distance(DUMMY[:1], TARGET)


def test_regularisers_against_hand_computed_values():
    x = torch.tensor([[0.0, 1.0], [2.0, 3.0]]).view(1, 1, 1, 2, 2)
    assert total_variation(x).item() == pytest.approx(1.0 + 2.0)
    assert image_l2(x).item() == pytest.approx(math.sqrt(14) / 4)
    two = torch.cat([x, x + 2])
    assert group_consistency(two).tolist() == pytest.approx([2 / 4, 2 / 4])


@pytest.mark.parametrize("protocol", ["fedsgd", "fedavg"])
def test_simulator_reproduces_the_client_update_and_chains_are_independent(tiny_setup, protocol):
    task, model, images, labels, _ = tiny_setup
    local = LocalTraining(2, 0.1, 1) if protocol == "fedavg" else None
    update = client_update(model, task, images, labels, protocol=protocol, local=local)
    sim = UpdateSimulator(model, update)
    x = task.normalize(images)
    other = torch.randn_like(x)
    batched = sim(torch.stack([x, other]), labels.expand(2, -1))
    for got, want in zip(batched, update.tensors):
        torch.testing.assert_close(got[0], want, rtol=1e-4, atol=1e-6)
    alone = sim(other[None], labels[None])
    for got, want in zip(batched, alone):
        torch.testing.assert_close(got[1], want[0], rtol=1e-4, atol=1e-6)
    assert cosine_distance(batched, update.tensors)[0].item() == pytest.approx(0, abs=1e-5)
    assert sim.evaluations == 3


def test_simulator_accepts_soft_labels_and_train_mode_bn(tiny_setup):
    task, _, images, labels, _ = tiny_setup
    model = make_model("convnet", 5, seed=0, bn_mode="train")
    update = client_update(model, task, images, labels)
    sim = UpdateSimulator(model, update, bn_prior=True)
    soft = torch.nn.functional.one_hot(labels, 5).float()
    g = sim(task.normalize(images)[None].expand(3, -1, -1, -1, -1), soft[None].expand(3, -1, -1))
    for got, want in zip(g, update.tensors):
        torch.testing.assert_close(got[2], want, rtol=1e-4, atol=1e-6)
    assert sim.bn_statistics_loss(torch.randn(2, 2, 3, 16, 16)).shape == (2,)


def test_fedavg_inversion_needs_the_local_hyperparameters(tiny_setup):
    from gifd.fl import ThreatModel

    task, model, images, labels, _ = tiny_setup
    update = client_update(model, task, images, labels, protocol="fedavg",
                           threat=ThreatModel(local_hyperparameters=False))  # fmt: skip
    with pytest.raises(ValueError, match="local hyper-parameters"):
        UpdateSimulator(model, update)


def test_bn_prior_uses_disclosed_batch_statistics(tiny_setup):
    from gifd.fl import ThreatModel

    task, model, images, labels, _ = tiny_setup
    update = client_update(model, task, images, labels, threat=ThreatModel(bn_statistics=True))
    sim = UpdateSimulator(model, update, bn_prior=True)
    x = task.normalize(images)
    assert sim.bn_statistics_loss(x[None]).item() == pytest.approx(0, abs=1e-4)
    assert sim.bn_statistics_loss(torch.randn_like(x)[None]).item() > 0.1


@pytest.mark.parametrize("bn_mode", ["eval", "train"])
def test_one_chain_runs_without_vmap_and_equals_a_chain_of_a_batch(bn_mode):
    from gifd.fl import FLTask, client_update
    from gifd.models import make_model

    task = FLTask(image_shape=(3, 16, 16), num_classes=5, mean=(0.5,) * 3, std=(0.25,) * 3)
    model = make_model("resnet18", 5, seed=0, bn_mode=bn_mode)
    g = torch.Generator().manual_seed(0)
    images, labels = torch.rand(2, 3, 16, 16, generator=g), torch.tensor([1, 3])
    update = client_update(model, task, images, labels)
    sim = UpdateSimulator(model, update)
    before = {n: b.clone() for n, b in sim.buffers.items()}
    x = torch.randn(2, 2, 3, 16, 16, generator=g)
    y = labels.expand(2, 2)
    one, both = sim(x[:1], y[:1]), sim(x, y)
    for a, b in zip(one, both):
        assert a.shape[0] == 1
        torch.testing.assert_close(a[0], b[0], rtol=1e-4, atol=1e-6)
    assert all(torch.equal(before[n], b) for n, b in sim.buffers.items())  # train-mode BN left them alone
    assert sim.evaluations == 3
