"""Projection: how well can a prior express real images? (The bundled prior's quality figure.)

For each target image, optimise the latent ``z`` and the class conditioning (a softmax over class logits,
so the class is found too) to minimise pixel MSE, from ``starts`` random starts, ``steps`` Adam steps each;
keep the best start per image. Everything runs as one batch of ``images x starts``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..metrics import psnr
from .base import StagedGenerator

__all__ = ["ProjectionResult", "project"]


@dataclass
class ProjectionResult:
    images: torch.Tensor  # best projection per target, [0, 1]
    psnr: torch.Tensor  # per target, dB
    classes: torch.Tensor  # argmax of the optimised conditioning


def project(G: StagedGenerator, targets01: torch.Tensor, *, steps: int = 500, starts: int = 4, lr: float = 0.05,
            seed: int = 0, chunk: int = 256) -> ProjectionResult:  # fmt: skip
    """Project ``targets01`` (``(N, C, H, W)`` in [0, 1]) onto ``G``'s range (stage 0: latent and class)."""
    outs = [_project(G, targets01[i : i + chunk], steps, starts, lr, seed + i) for i in range(0, len(targets01), chunk)]
    return ProjectionResult(*(torch.cat(t) for t in zip(*((o.images, o.psnr, o.classes) for o in outs))))


def _project(G, targets01, steps, starts, lr, seed) -> ProjectionResult:
    n = targets01.shape[0]
    gen = torch.Generator().manual_seed(seed)
    labels = torch.zeros(n * starts, dtype=torch.long)
    state = G.initial_state(labels, gen)
    z = state["z"].clone().requires_grad_(True)
    logits = torch.zeros(n * starts, max(G.num_classes, 1)).requires_grad_(G.num_classes > 0)
    params = [z, logits] if G.num_classes else [z]
    opt = torch.optim.Adam(params, lr=lr)
    target = targets01.repeat_interleave(starts, 0) * 2 - 1
    G.requires_grad_(False)
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        st = {**state, "z": z}
        if G.num_classes:
            st["y"] = torch.softmax(logits, -1)
        loss = (G.render(0, st) - target).pow(2).flatten(1).mean(1)
        loss.sum().backward()
        opt.step()
    with torch.no_grad():
        st = {**state, "z": z}
        if G.num_classes:
            st["y"] = torch.softmax(logits, -1)
        imgs = ((G.render(0, st) + 1) / 2).clamp(0, 1)
        scores = psnr(imgs, targets01.repeat_interleave(starts, 0)).view(n, starts)
        best = scores.argmax(1)
        pick = torch.arange(n) * starts + best
    return ProjectionResult(imgs[pick], scores[torch.arange(n), best], logits.detach().argmax(-1)[pick])
