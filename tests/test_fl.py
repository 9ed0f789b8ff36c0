import pytest
import torch
from torch import nn

from gifd.fl import FLTask, LocalTraining, SharedUpdate, ThreatModel, client_update, fedavg_update, fedsgd_update
from gifd.models import make_model


def _data(n=4, c=3, s=16, classes=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, c, s, s, generator=g), torch.randint(0, classes, (n,), generator=g)


@pytest.mark.parametrize("bn_mode", ["eval", "train"])
def test_fedsgd_is_the_autograd_gradient_of_mean_cross_entropy(bn_mode):
    model = make_model("convnet", 5, seed=1, bn_mode=bn_mode)
    x, y = _data()
    ref = make_model("convnet", 5, seed=1, bn_mode=bn_mode)
    loss = nn.functional.cross_entropy(ref(x), y)
    expected = torch.autograd.grad(loss, list(ref.parameters()))
    got = fedsgd_update(model, x, y)
    assert list(got) == [n for n, _ in model.named_parameters()]
    for g, e in zip(got.values(), expected):
        torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-6)
    # the server's model is left untouched (train-mode BN must not move its running statistics)
    for a, b in zip(model.state_dict().values(), make_model("convnet", 5, seed=1).state_dict().values()):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("bn_mode", ["eval", "train"])
def test_fedavg_equals_a_hand_written_sgd_loop(bn_mode):
    local = LocalTraining(steps=3, lr=0.05, batch_size=2)
    model = make_model("convnet", 5, seed=2, bn_mode=bn_mode)
    x, y = _data(seed=3)
    delta = fedavg_update(model, x, y, local)

    ref = make_model("convnet", 5, seed=2, bn_mode=bn_mode)
    start = [p.detach().clone() for p in ref.parameters()]
    opt = torch.optim.SGD(ref.parameters(), lr=0.05)
    for step in range(3):
        sl = slice((step % 2) * 2, (step % 2) * 2 + 2)
        opt.zero_grad()
        nn.functional.cross_entropy(ref(x[sl]), y[sl]).backward()
        opt.step()
    for d, p0, p1 in zip(delta.values(), start, ref.parameters()):
        torch.testing.assert_close(d, p0 - p1.detach(), rtol=1e-4, atol=1e-6)


def test_local_training_rejects_uneven_minibatches():
    model = make_model("convnet", 5, seed=0)
    x, y = _data(n=3)
    with pytest.raises(ValueError, match="do not split"):
        fedavg_update(model, x, y, LocalTraining(steps=2, lr=0.1, batch_size=2))


def test_client_update_records_only_what_the_threat_model_discloses():
    task = FLTask((3, 16, 16), 5, (0.5,) * 3, (0.25,) * 3)
    model = make_model("convnet", 5, seed=0)
    imgs, labels = torch.rand(2, 3, 16, 16), torch.tensor([0, 4])
    hidden = client_update(model, task, imgs, labels)
    assert hidden.labels is None and hidden.num_samples == 2 and hidden.kind == "gradient"
    told = client_update(model, task, imgs, labels, threat=ThreatModel(labels=True, bn_statistics=True))
    assert told.labels.tolist() == [0, 4]
    assert set(told.bn_statistics) == {n for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)}
    avg = client_update(model, task, imgs, labels, protocol="fedavg", local=LocalTraining(2, 0.1, 1))
    assert avg.kind == "weight_delta" and avg.local == LocalTraining(2, 0.1, 1)
    secret = client_update(
        model, task, imgs, labels, protocol="fedavg", threat=ThreatModel(local_hyperparameters=False)
    )
    assert secret.local is None


def test_update_validation_names_the_problem(tiny_setup):
    task, model, _, _, update = tiny_setup
    update.validate(model)
    wrong = list(update.tensors)
    wrong[0] = torch.zeros(7)
    with pytest.raises(ValueError, match=r"features.0.weight.*shape \(7,\)"):
        update.with_tensors(wrong).validate(model)
    with pytest.raises(ValueError, match="tensors, the model"):
        update.with_tensors(update.tensors[:-1], names=update.names[:-1]).validate(model)
    bad = list(update.tensors)
    bad[-1] = bad[-1].clone()
    bad[-1][0] = float("nan")
    with pytest.raises(ValueError, match="fc.bias.*NaN"):
        update.with_tensors(bad)
    with pytest.raises(ValueError, match="does not match model parameter"):
        SharedUpdate.from_tensors({("x" + n): t for n, t in update.as_dict().items()}).validate(model)


def test_client_update_bad_input():
    task = FLTask((3, 16, 16), 5, (0.5,) * 3, (0.25,) * 3)
    model = make_model("convnet", 5, seed=0)
    with pytest.raises(ValueError, match="labels must lie in"):
        client_update(model, task, torch.rand(1, 3, 16, 16), torch.tensor([5]))
    with pytest.raises(ValueError, match="task expects"):
        client_update(model, task, torch.rand(1, 3, 8, 8), torch.tensor([1]))
    with pytest.raises(ValueError, match="protocol"):
        client_update(model, task, torch.rand(1, 3, 16, 16), torch.tensor([1]), protocol="fedprox")
    with pytest.raises(ValueError, match="NaN"):
        client_update(model, task, torch.full((1, 3, 16, 16), float("nan")), torch.tensor([1]))


def test_task_normalisation_round_trip():
    task = FLTask()
    x = torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(task.denormalize(task.normalize(x)), x)
    lo, hi = task.box(x)
    torch.testing.assert_close(task.denormalize(lo).flatten(), torch.zeros(3))
    with pytest.raises(ValueError, match="mean/std"):
        FLTask((1, 28, 28), 10, (0.5, 0.5, 0.5), (0.2, 0.2, 0.2))
