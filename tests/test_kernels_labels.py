"""Kernel tests of gifd.labels on synthetic head updates (hand-computed cases, and the label rules written out
plainly from their definitions as references on random heads); small enough for mutation testing (make mutants)."""

import random

import pytest
import torch

from gifd.fl import SharedUpdate
from gifd.labels import LABEL_STRATEGIES, bias_counts, idlg, infer_labels, llg, yin


def head(weight, bias=None, kind="gradient", num_samples=None):
    w = torch.tensor(weight, dtype=torch.float64)
    tensors = {"conv.weight": torch.ones(2, 1, 3, 3, dtype=torch.float64), "fc.weight": w}
    tensors["fc.bias"] = torch.tensor(bias, dtype=torch.float64) if bias is not None else torch.zeros(w.shape[0])
    return SharedUpdate.from_tensors(tensors, kind=kind, num_samples=num_samples)


# rows: min / sum =  c0: 1 / 2,  c1: -1 / 4,  c2: -3 / -1,  c3: -0.5 / -0.2,  c4: 0 / 0.5
W = [[1.0, 1.0], [-1.0, 5.0], [-3.0, 2.0], [-0.5, 0.3], [0.0, 0.5]]


def test_idlg_takes_the_most_negative_row_sum():
    out = idlg(head(W), 5)
    assert out.tolist() == [2] and out.shape == (1,)
    assert idlg(head([[0.0, 1.0], [-0.5, 0.4], [2.0, -2.5]]), 3).tolist() == [2]


def test_yin_ranks_rows_by_minimum_or_by_sum_sorted_by_class():
    assert yin(head(W), 5, 2).tolist() == [1, 2]  # the most negative minima, -3 (c2) then -1 (c1)
    assert yin(head(W), 5, 3).tolist() == [1, 2, 3]
    assert yin(head(W), 5, 2, reduce="sum").tolist() == [2, 3]  # sums -1 and -0.2
    assert yin(head(W), 5, 5).tolist() == [0, 1, 2, 3, 4]  # as many labels as classes is allowed
    with pytest.raises(ValueError) as e:
        yin(head(W), 5, 2, reduce="max")
    assert str(e.value) == "reduce must be 'min' or 'sum', not 'max'"
    with pytest.raises(ValueError) as e:
        yin(head(W), 4, 2)
    assert str(e.value) == "the last linear layer has 5 outputs, the task 4 classes"


def test_batch_size_checks():
    with pytest.raises(ValueError) as e:
        yin(head(W), 5, 6)
    assert str(e.value) == (
        "cannot infer 6 distinct labels from 5 classes; use the 'llg' strategy for batches with repeated labels"
    )
    for fn in (yin, llg, bias_counts):
        with pytest.raises(ValueError) as e:
            fn(head(W), 5, 0)
        assert str(e.value) == "batch size must be >= 1, got 0"
    assert llg(head(W), 5, 1).tolist() == [2]  # a batch of one is fine
    assert len(llg(head(W), 5, 7)) == 7  # repeated labels: more samples than classes is fine


def _llg_reference(s, b):
    """LLG from its definition: impact m = (1 + 1/C) * (sum of the negative row sums) / B; every negative class
    once (most negative first, at most B), then B minus that many repeated picks of the smallest corrected sum."""
    c = len(s)
    m = (1 + 1 / c) * sum(v for v in s if v < 0) / b
    s = list(s)
    out = []
    for k in sorted(range(c), key=lambda k: (s[k], k)):
        if s[k] < 0 and len(out) < b:
            out.append(k)
            s[k] -= m
    while len(out) < b:
        k = min(range(c), key=lambda k: (s[k], k))
        out.append(k)
        s[k] -= m
    return sorted(out)


def test_llg_hand_computed():
    # row sums -1, 0.2, 5 (C = 3, B = 3): impact (4/3)(-1)/3 = -4/9; class 0 once (-5/9), then twice more
    assert llg(head([[-1.0, 0.0], [0.2, 0.0], [5.0, 0.0]]), 3, 3).tolist() == [0, 0, 0]
    # row sums -3, -1, 2 (B = 2): both negative classes once; none is repeated
    assert llg(head([[-3.0], [-1.0], [2.0]]), 3, 2).tolist() == [0, 1]
    # more negative classes than samples: the most negative ones
    assert llg(head([[-3.0], [-1.0], [-2.0], [2.0]]), 4, 2).tolist() == [0, 2]
    # row sums -1, 0.05 with C = 2, B = 4: impact -3/8; class 0 at -5/8, -1/4, 1/8, then class 1 (0.05) is smaller
    assert llg(head([[-1.0], [0.05]]), 2, 4).tolist() == [0, 0, 0, 1]
    # no negative row: the smallest sums, repeated by the impact 0
    assert llg(head([[0.5], [0.25], [3.0]]), 3, 2).tolist() == [1, 1]


@pytest.mark.parametrize("seed", range(3))
def test_llg_against_its_definition_on_random_heads(seed):
    rng = random.Random(seed)
    for _ in range(40):
        c, b = rng.randint(2, 6), rng.randint(1, 9)
        s = [round(rng.uniform(-2, 1), 2) for _ in range(c)]
        assert llg(head([[v] for v in s]), c, b).tolist() == _llg_reference(s, b), (s, b)


def _bias_counts_reference(rows, bias, b):
    """Present classes (a negative head-weight entry; all classes if none) get one sample each (the B with the
    smallest bias gradient when more are present, ties to the lower class); the rest go one at a time to the present
    class with the smallest bias gradient plus picks / B."""
    c = len(rows)
    present = [min(r) < 0 for r in rows]
    out = sorted((k for k in range(c) if present[k]), key=lambda k: (bias[k], k))[:b]
    g = list(bias)
    for k in out:
        g[k] += 1 / b
    if not any(present):
        present = [True] * c
    while len(out) < b:
        k = min((k for k in range(c) if present[k]), key=lambda k: (g[k], k))
        out.append(k)
        g[k] += 1 / b
    return sorted(out)


def test_bias_counts_hand_computed():
    rows = [[-1.0, 2.0], [0.0, 0.5], [-0.1, 1.0], [-2.0, 0.0]]  # c1 has a zero, not a negative entry: absent
    # present 0, 2, 3; g after one pick each (+1/4): -0.25, -0.9 (absent, though the smallest), 0.2, 0.05 -> the 4th
    # sample is class 0
    assert bias_counts(head(rows, [-0.5, -0.9, -0.05, -0.2]), 4, 4).tolist() == [0, 0, 2, 3]
    # three present, two samples: the two present classes with the most negative bias gradient (0 and 3, not 2)
    assert bias_counts(head(rows, [-0.5, -0.9, -0.05, -0.2]), 4, 2).tolist() == [0, 3]
    assert bias_counts(head(rows, [-0.05, -0.9, -0.5, -0.2]), 4, 2).tolist() == [2, 3]
    # B = 8: g after one pick each (+1/8): -3/8, -, 1/8, -1/8; then class 0 (-1/4), class 0 (-1/8), the tie at -1/8
    # to the first class (0), class 3, the tie at 0 to class 0
    assert bias_counts(head(rows, [-0.5, -1.0, 0.0, -0.25]), 4, 8).tolist() == [0, 0, 0, 0, 0, 2, 3, 3]
    # nothing present: every class may take samples
    assert bias_counts(head([[1.0], [0.5], [2.0]], [0.3, -0.2, 0.25]), 3, 2).tolist() == [1, 2]


@pytest.mark.parametrize("seed", range(3))
def test_bias_counts_against_its_definition_on_random_heads(seed):
    rng = random.Random(100 + seed)
    for _ in range(40):
        c, b = rng.randint(2, 6), rng.randint(1, 9)
        rows = [[round(rng.uniform(-1, 2), 1) for _ in range(2)] for _ in range(c)]
        bias = [round(rng.uniform(-0.6, 0.3), 2) for _ in range(c)]
        assert bias_counts(head(rows, bias), c, b).tolist() == _bias_counts_reference(rows, bias, b), (rows, bias, b)


def test_bias_counts_needs_a_fedsgd_gradient_and_the_head_bias():
    with pytest.raises(ValueError) as e:
        bias_counts(head(W, kind="weight_delta"), 5, 2)
    assert str(e.value) == "bias_counts needs a FedSGD gradient (the bias of a FedAvg delta is not (p - y) / B)"
    no_bias = SharedUpdate.from_tensors({"fc.weight": torch.tensor(W)})
    for update in (no_bias, head(W, bias=[0.0] * 4)):
        with pytest.raises(ValueError) as e:
            bias_counts(update, 5, 2)
        assert str(e.value) == "bias_counts needs the linear head's bias as the update's last tensor"


def test_infer_labels_dispatches_and_checks():
    rows = [[-1.0, 2.0], [0.0, 0.5], [-0.1, 1.0], [-2.0, 0.0]]
    u = head(rows, [-0.5, -0.9, -0.05, -0.2], num_samples=4)
    # the rules disagree on this head (row sums 1, 0.5, 0.9, -2; minima -1, 0, -0.1, -2)
    answers = {"yin": [0, 1, 2, 3], "llg": [3, 3, 3, 3], "bias_counts": [0, 0, 2, 3]}
    for strategy, want in answers.items():
        assert infer_labels(u, 4, strategy=strategy).tolist() == want
    assert infer_labels(u, 4, 2, "llg").tolist() == llg(u, 4, 2).tolist() == [3, 3]  # an explicit size wins
    assert infer_labels(u, 4, 3, "bias_counts").tolist() == bias_counts(u, 4, 3).tolist() == [0, 2, 3]
    # auto for a FedSGD batch with the head's bias: bias counts (repeated labels allowed), at any size
    assert infer_labels(u, 4).tolist() == [0, 0, 2, 3]
    assert infer_labels(u, 4, 5).tolist() == bias_counts(u, 4, 5).tolist()
    # without a bias of the class count, or for a FedAvg delta: LLG
    delta = head(rows, [-0.5, -0.9, -0.05, -0.2], kind="weight_delta", num_samples=4)
    assert infer_labels(delta, 4).tolist() == llg(delta, 4, 4).tolist() == [3, 3, 3, 3]
    no_bias = SharedUpdate.from_tensors({"fc.weight": torch.tensor(rows)}, num_samples=4)
    assert infer_labels(no_bias, 4).tolist() == [3, 3, 3, 3]
    one = head(rows, num_samples=1)
    assert infer_labels(one, 4).tolist() == [3] and infer_labels(one, 4, strategy="idlg").tolist() == [3]
    assert infer_labels(head(rows), 4, 1).tolist() == [3]  # auto with an explicit batch of one: iDLG
    split = head([[-5.0, 10.0], [-1.0, -1.0]], num_samples=1)  # the minimum rule says 0, the row sums 1
    assert yin(split, 2, 1).tolist() == [0] and infer_labels(split, 2).tolist() == [1]
    with pytest.raises(ValueError) as e:
        infer_labels(u, 4, strategy="magic")
    assert str(e.value) == f"unknown label strategy 'magic'; choose one of {LABEL_STRATEGIES}"
    assert LABEL_STRATEGIES == ("auto", "idlg", "yin", "llg", "bias_counts")
    with pytest.raises(ValueError) as e:
        infer_labels(head(rows), 4)
    assert str(e.value) == "the batch size is not disclosed by the update: pass batch_size"
    with pytest.raises(ValueError) as e:
        infer_labels(u, 4, strategy="idlg")
    assert str(e.value) == "iDLG infers the label of a single sample, the batch has 4"
