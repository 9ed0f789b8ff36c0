import pytest
import torch

from gifd.fl import FLTask, LocalTraining, client_update
from gifd.labels import bias_counts, infer_labels, llg, yin
from gifd.metrics import label_accuracy
from gifd.models import make_model

TASK = FLTask((3, 32, 32), 10)


@pytest.fixture(scope="module")
def resnet():
    return make_model("resnet18", 10, seed=123)


@pytest.mark.parametrize("label", range(10))
def test_idlg_is_exact_on_a_batch_of_one(resnet, label):
    img = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(label))
    update = client_update(resnet, TASK, img, torch.tensor([label]))
    assert infer_labels(update, 10).tolist() == [label]
    assert infer_labels(update, 10, strategy="idlg").tolist() == [label]


@pytest.mark.parametrize("seed", range(3))
def test_yin_is_exact_on_distinct_label_batches_of_8(resnet, seed):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randperm(10, generator=g)[:8]
    update = client_update(resnet, TASK, torch.rand(8, 3, 32, 32, generator=g), labels)
    assert infer_labels(update, 10).tolist() == sorted(labels.tolist())


def test_label_inference_from_a_fedavg_delta(resnet):
    labels = torch.tensor([2, 5, 9])
    update = client_update(resnet, TASK, torch.rand(3, 3, 32, 32), labels, protocol="fedavg",
                           local=LocalTraining(steps=2, lr=1e-3))  # fmt: skip
    assert infer_labels(update, 10).tolist() == [2, 5, 9]


def test_yin_sum_variant_of_the_reference_code_is_weaker(resnet):
    # the GIFD reference ranks rows by their sum; on this batch it misses a label that the min rule finds
    g = torch.Generator().manual_seed(1)
    labels = torch.randperm(10, generator=g)[:8]
    update = client_update(resnet, TASK, torch.rand(8, 3, 32, 32, generator=g), labels)
    assert yin(update, 10, 8).tolist() == sorted(labels.tolist())
    assert yin(update, 10, 8, reduce="sum").tolist() != sorted(labels.tolist())


def _repeated_batches(resnet, n=10):
    for s in range(n):
        g = torch.Generator().manual_seed(100 + s)
        labels = torch.randint(0, 10, (8,), generator=g)
        yield labels, client_update(resnet, TASK, torch.rand(8, 3, 32, 32, generator=g), labels)


@pytest.mark.parametrize("strategy,floor", [("llg", 0.7), ("bias_counts", 0.9)])
def test_repeated_label_strategies_recover_most_labels(resnet, strategy, floor):
    accs = [label_accuracy(infer_labels(u, 10, strategy=strategy), y) for y, u in _repeated_batches(resnet)]
    assert sum(accs) / len(accs) >= floor


def test_llg_and_bias_counts_are_exact_on_a_simple_repeated_batch(resnet):
    labels = torch.tensor([1, 1, 1, 4, 4, 7])
    update = client_update(resnet, TASK, torch.rand(6, 3, 32, 32, generator=torch.Generator().manual_seed(6)), labels)
    assert llg(update, 10, 6).tolist() == [1, 1, 1, 4, 4, 7]
    assert bias_counts(update, 10, 6).tolist() == [1, 1, 1, 4, 4, 7]


def test_label_inference_bad_input(resnet):
    update = client_update(resnet, TASK, torch.rand(2, 3, 32, 32), torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="12 distinct labels from 10 classes"):
        infer_labels(update, 10, batch_size=12, strategy="yin")
    with pytest.raises(ValueError, match="iDLG infers the label of a single sample"):
        infer_labels(update, 10, strategy="idlg")
    with pytest.raises(ValueError, match="unknown label strategy 'magic'"):
        infer_labels(update, 10, strategy="magic")
    with pytest.raises(ValueError, match="last linear layer has 10 outputs, the task 7"):
        infer_labels(update, 7)
