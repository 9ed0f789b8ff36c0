"""Label inference from the last linear layer of a shared update (no ground truth involved).

For cross-entropy with softmax, the gradient of the head's weight row ``c`` is ``sum_n (p_nc - y_nc) h_n``.
With non-negative features ``h`` (after ReLU and pooling) the rows of the true classes sum to negative values
and the others to positive ones. A FedAvg weight delta (initial minus final) has the same sign structure for
few local steps.

* :func:`idlg` — Zhao et al., "iDLG: Improved Deep Leakage from Gradients", 2020 (batch of one).
* :func:`yin` — Yin et al., "See through Gradients: Image Batch Recovery via GradInversion", CVPR 2021
  (the ``B`` rows with the most negative minimum; assumes distinct labels in the batch).
* :func:`llg` — Wainakh et al., "User-Level Label Leakage from Gradients in Federated Learning", PETS 2022
  (LLG: handles repeated labels by subtracting an estimated per-sample impact).
* :func:`bias_counts` — repeated labels from the head's bias gradient (see its docstring).
"""

from __future__ import annotations

import torch

from .fl import SharedUpdate

__all__ = ["infer_labels", "idlg", "yin", "llg", "bias_counts", "LABEL_STRATEGIES", "AUTO_REVISION"]


def _row_sums(update: SharedUpdate, num_classes: int) -> torch.Tensor:
    w = update.last_weight
    if w.shape[0] != num_classes:
        raise ValueError(f"the last linear layer has {w.shape[0]} outputs, the task {num_classes} classes")
    return w.sum(dim=1)


def _check_size(batch_size: int, num_classes: int, distinct: bool) -> None:
    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    if distinct and batch_size > num_classes:
        raise ValueError(
            f"cannot infer {batch_size} distinct labels from {num_classes} classes; "
            "use the 'llg' strategy for batches with repeated labels"
        )


def idlg(update: SharedUpdate, num_classes: int) -> torch.Tensor:
    """iDLG: the single class whose head-weight row sums to the most negative value."""
    return _row_sums(update, num_classes).argmin().view(1)


def yin(update: SharedUpdate, num_classes: int, batch_size: int, reduce: str = "min") -> torch.Tensor:
    """GradInversion's rule (Yin et al. 2021, Eq. 4): rank the head-weight rows by their *minimum* entry and
    take the ``batch_size`` most negative, sorted ascending by class.

    With non-negative features, a class absent from the batch has a row ``sum_n p_nc h_n >= 0`` entry-wise,
    while a present class has negative entries where its own sample's features dominate. ``reduce="sum"``
    ranks by row sums instead, as the GIFD reference code does (less reliable when the untrained model's
    predictions are peaked)."""
    _check_size(batch_size, num_classes, distinct=True)
    w = update.last_weight
    _row_sums(update, num_classes)  # validates the head's size
    if reduce == "min":
        s = w.min(dim=1).values
    elif reduce == "sum":
        s = w.sum(dim=1)
    else:
        raise ValueError(f"reduce must be 'min' or 'sum', not {reduce!r}")
    return torch.sort(torch.topk(-s, batch_size).indices).values


def llg(update: SharedUpdate, num_classes: int, batch_size: int) -> torch.Tensor:
    """LLG (Wainakh et al. 2022): negative rows first, then repeated picks of the minimum after subtracting
    the estimated impact of one sample, ``m = (1 + 1/C) * sum(negative row sums) / B``."""
    _check_size(batch_size, num_classes, distinct=False)
    s = _row_sums(update, num_classes).clone().double()
    impact = torch.where(s < 0, s, torch.zeros_like(s)).sum() * (1 + 1 / num_classes) / batch_size
    labels: list[int] = []
    for c in torch.argsort(s).tolist():
        if s[c] < 0 and len(labels) < batch_size:
            labels.append(c)
            s[c] -= impact
    while len(labels) < batch_size:
        c = int(s.argmin())
        labels.append(c)
        s[c] -= impact
    return torch.sort(torch.tensor(labels, dtype=torch.long)).values


def bias_counts(update: SharedUpdate, num_classes: int, batch_size: int) -> torch.Tensor:
    """Repeated labels from the head's *bias* gradient (FedSGD only); our combination of two known facts.

    Presence comes from GradInversion's minimum rule (a class is in the batch iff its head-weight row has a
    negative entry). Counts come from the bias gradient ``g_c = (sum_n p_nc - count_c) / B``: every present
    class gets one sample, then samples go one at a time to the present class with the most negative
    ``g_c + picks_c / B``. When more classes look present than the batch holds (the presence rule assumes
    non-negative features), the ``B`` with the most negative ``g_c`` are kept: a class in the batch has
    ``g_c <= (sum_n p_nc - 1) / B``, one outside it ``g_c = sum_n p_nc / B >= 0``. More accurate than LLG on
    untrained models; needs a head bias."""
    _check_size(batch_size, num_classes, distinct=False)
    if update.kind != "gradient":
        raise ValueError("bias_counts needs a FedSGD gradient (the bias of a FedAvg delta is not (p - y) / B)")
    bias = update.tensors[-1]
    if bias.dim() != 1 or bias.shape[0] != num_classes:
        raise ValueError("bias_counts needs the linear head's bias as the update's last tensor")
    present = update.last_weight.min(dim=1).values < 0
    g = bias.double().clone()
    labels = sorted((c for c in range(num_classes) if present[c]), key=lambda c: (float(g[c]), c))[:batch_size]
    for c in labels:
        g[c] += 1.0 / batch_size
    if not present.any():
        present = torch.ones_like(present)
    while len(labels) < batch_size:
        c = int(torch.where(present, g, torch.full_like(g, float("inf"))).argmin())
        labels.append(c)
        g[c] += 1.0 / batch_size
    return torch.sort(torch.tensor(labels, dtype=torch.long)).values


LABEL_STRATEGIES = ("auto", "idlg", "yin", "llg", "bias_counts")
#: what ``auto`` means for batches of more than one image (3: bias counts keeping the B present classes with the
#: most negative bias gradient, or LLG; 2: bias counts keeping the first present classes; 1: Yin et al.);
#: results of ``auto`` on batches carry it in their keys (:func:`gifd.keys.label_parts`)
AUTO_REVISION = 3


def _head_bias(update: SharedUpdate, num_classes: int) -> bool:
    last = update.tensors[-1]
    return update.kind == "gradient" and last.dim() == 1 and last.shape[0] == num_classes


def infer_labels(
    update: SharedUpdate, num_classes: int, batch_size: int | None = None, strategy: str = "auto"
) -> torch.Tensor:
    """Infer the batch's labels; ``auto`` is iDLG for one sample and, for a batch, :func:`bias_counts` when the
    update is a FedSGD gradient with the head's bias, else LLG: both allow repeated labels, which a client's batch
    need not avoid (four CIFAR-10 images drawn at random repeat a class half the time).

    Until :data:`AUTO_REVISION` 2, ``auto`` took Yin et al.'s rule for batches of at most ``num_classes``. Label
    accuracy on CIFAR-10 test batches, untrained ResNet-18, FedSGD (``figures/labels_cifar10/table.md``, made by
    ``tools/label_accuracy.py``): ten random batches of 4 / of 8: Yin 0.875 / 0.688, LLG 0.95 / 0.81, bias counts
    1.0 / 0.99; the batches of ``05_batch_size_cifar10`` (two images per class): Yin 0.5 / 0.5, LLG 1.0 / 0.875,
    bias counts 1.0 / 0.875."""
    if strategy not in LABEL_STRATEGIES:
        raise ValueError(f"unknown label strategy {strategy!r}; choose one of {LABEL_STRATEGIES}")
    batch_size = batch_size or update.num_samples
    if batch_size is None:
        raise ValueError("the batch size is not disclosed by the update: pass batch_size")
    if strategy == "auto":
        strategy = "idlg" if batch_size == 1 else "bias_counts" if _head_bias(update, num_classes) else "llg"
    if strategy == "idlg":
        if batch_size != 1:
            raise ValueError(f"iDLG infers the label of a single sample, the batch has {batch_size}")
        return idlg(update, num_classes)
    if strategy == "yin":
        return yin(update, num_classes, batch_size)
    if strategy == "bias_counts":
        return bias_counts(update, num_classes, batch_size)
    return llg(update, num_classes, batch_size)
