"""Evaluation — the only code that sees the client's private images.

PSNR, SSIM, MSE and LPIPS are computed on ``[0, 1]`` images (not on normalised tensors, unlike the GIFD
reference code); logit MSE compares the victim's outputs; label accuracy counts the multiset overlap; a
reconstructed batch is first matched to its ground truth with the Hungarian algorithm.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .fl import FLTask

__all__ = ["psnr", "mse", "ssim", "logit_mse", "label_accuracy", "hungarian_match", "evaluate_batch"]


def _check_pair(a: torch.Tensor, b: torch.Tensor) -> None:
    if a.shape != b.shape or a.dim() != 4:
        raise ValueError(f"expected two (B, C, H, W) batches of one shape, got {tuple(a.shape)} and {tuple(b.shape)}")


def mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image mean squared error, ``(B,)``."""
    _check_pair(a, b)
    return (a.float() - b.float()).pow(2).flatten(1).mean(1)


def psnr(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Per-image PSNR in dB for images in ``[0, data_range]``, ``(B,)`` (inf for identical images)."""
    err = mse(a.clamp(0, data_range), b.clamp(0, data_range))
    return 10 * torch.log10(data_range**2 / err)


def _gaussian_window(size: int, sigma: float, channels: int) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = (g / g.sum()).float()
    return (g[:, None] * g[None, :]).expand(channels, 1, size, size).contiguous()


def ssim(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0, win: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Per-image SSIM (Wang et al. 2004): Gaussian window 11, sigma 1.5, K1 0.01, K2 0.03, per channel, mean
    over the valid region (a smaller odd window for images under 11 pixels). Matches
    ``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
    data_range=1)``."""
    _check_pair(a, b)
    a, b = a.float().clamp(0, data_range), b.float().clamp(0, data_range)
    c = a.shape[1]
    smallest = min(a.shape[-2:])
    win = min(win, smallest if smallest % 2 else smallest - 1)  # a smaller odd window for tiny images
    w = _gaussian_window(win, sigma, c).to(a.device)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2

    def filt(t):
        return F.conv2d(t, w, groups=c)

    mu_a, mu_b = filt(a), filt(b)
    saa = filt(a * a) - mu_a**2
    sbb = filt(b * b) - mu_b**2
    sab = filt(a * b) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * sab + c2)) / ((mu_a**2 + mu_b**2 + c1) * (saa + sbb + c2))
    return s.flatten(1).mean(1)


@torch.no_grad()
def logit_mse(model: nn.Module, task: FLTask, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image mean squared difference of the victim's logits on two ``[0, 1]`` batches (computed on the
    model's device, returned on the CPU)."""
    _check_pair(a, b)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    try:
        with torch.no_grad():
            out = (model(task.normalize(a.to(device))) - model(task.normalize(b.to(device)))).pow(2).mean(1)
    finally:
        model.train(was_training)
    return out.cpu()


def label_accuracy(predicted: torch.Tensor, true: torch.Tensor) -> float:
    """Fraction of the true labels recovered, counting repeated labels as a multiset."""
    if predicted.numel() != true.numel():
        raise ValueError(f"{predicted.numel()} predicted labels for {true.numel()} true ones")
    p, t = predicted.tolist(), true.tolist()
    hits = sum(min(p.count(c), t.count(c)) for c in set(t))
    return hits / len(t)


def hungarian_match(recon: torch.Tensor, truth: torch.Tensor) -> list[int]:
    """Permutation ``perm`` such that ``recon[perm[i]]`` is the reconstruction assigned to ``truth[i]``,
    minimising the total pixel MSE (scipy's ``linear_sum_assignment``)."""
    from scipy.optimize import linear_sum_assignment

    if recon.shape != truth.shape:
        raise ValueError(f"cannot match {tuple(recon.shape)} to {tuple(truth.shape)}")
    cost = torch.cdist(truth.flatten(1).double(), recon.flatten(1).double()).pow(2).numpy()
    rows, cols = linear_sum_assignment(cost)
    perm = np.empty(len(rows), dtype=int)
    perm[rows] = cols
    return perm.tolist()


def evaluate_batch(
    recon: torch.Tensor,
    recon_labels: torch.Tensor,
    truth: torch.Tensor,
    truth_labels: torch.Tensor,
    *,
    model: nn.Module | None = None,
    task: FLTask | None = None,
    lpips=None,
) -> list[dict]:
    """Match a reconstructed batch to its ground truth, then score each image.

    Returns one dict per ground-truth image: ``psnr``, ``ssim``, ``mse``, ``lpips`` (``None`` when no LPIPS
    model is given), ``logit_mse`` (with ``model`` and ``task``), ``label_acc`` (of the whole batch) and the
    matched ``slot``.
    """
    perm = hungarian_match(recon, truth)
    r = recon[perm]
    p, s, m = psnr(r, truth), ssim(r, truth), mse(r, truth)
    lp = lpips(r, truth) if lpips is not None else None
    lm = logit_mse(model, task, r, truth) if model is not None and task is not None else None
    acc = label_accuracy(recon_labels, truth_labels)
    rows = []
    for i in range(truth.shape[0]):
        rows.append(
            {
                "slot": perm[i],
                "psnr": float(p[i]) if math.isfinite(float(p[i])) else float("inf"),
                "ssim": float(s[i]),
                "mse": float(m[i]),
                "lpips": None if lp is None else float(lp[i]),
                "logit_mse": None if lm is None else float(lm[i]),
                "label_acc": acc,
            }
        )
    return rows
