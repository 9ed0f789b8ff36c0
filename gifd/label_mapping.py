"""Label mapping: which GAN conditioning to use when the clients' classes are not the GAN's.

GIFD's journal extension (arXiv 2604.00955) proposes a label mapping for out-of-distribution clients but its
algorithm is not public; these are ours. Each returns the conditioning for a batch of *inferred* FL labels
(hard GAN classes, or soft class vectors), so it plugs into the ``gen_labels`` option of GGL, GIAS and GIFD.

* ``identity``: FL label ``i`` -> GAN class ``i mod C`` (the reference code's implicit choice).
* ``random``: a fixed random table FL label -> GAN class (a control).
* ``none``: no conditioning: the uniform soft vector ``1/C`` for every image.
* ``search`` (:func:`gradient_search`): for each slot of the batch, try every GAN class with a few random
  latents and keep the class whose images' simulated update is closest to the shared one (gradient distance
  only; no ground truth). Its evaluations are taken from the attack's budget.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .attacks.gan import to_victim
from .fl import FLTask, SharedUpdate
from .generators.base import StagedGenerator
from .matching import UpdateSimulator, gradient_distance

__all__ = ["LabelMap", "MAPPINGS", "make_mapping", "gradient_search"]

MAPPINGS = ("identity", "random", "none", "search")


@dataclass
class LabelMap:
    """The conditioning chosen for a batch: ``conditioning`` is ``(B,)`` classes or ``(B, C)`` soft vectors;
    ``evaluations`` counts the gradient-matching evaluations the choice cost; ``scores`` (search only) holds
    each slot's best distance per GAN class."""

    name: str
    conditioning: torch.Tensor
    evaluations: int = 0
    scores: torch.Tensor | None = None

    def __call__(self, labels: torch.Tensor) -> torch.Tensor:
        if labels.numel() != self.conditioning.shape[0]:
            raise ValueError(f"label map made for {self.conditioning.shape[0]} slots, got {labels.numel()} labels")
        return self.conditioning.to(labels.device)


#: chains per batched evaluation in :func:`gradient_search` (a ResNet-18 update is 45 MB a chain)
CHUNK = 16


def _rows(state: dict, start: int, stop: int, total: int) -> dict:
    """The images ``start:stop`` of a generator state whose per-image tensors have ``total`` rows."""
    return {k: v[start:stop] if torch.is_tensor(v) and v.dim() and v.shape[0] == total else v for k, v in state.items()}


@torch.no_grad()
def gradient_search(model, task: FLTask, update: SharedUpdate, G: StagedGenerator, labels: torch.Tensor,
                    probes: int = 4, distance: str = "cosine", seed: int = 0,
                    chunk: int = CHUNK) -> LabelMap:  # fmt: skip
    """Pick, slot by slot, the GAN class whose random samples best match the shared update.

    Slots are visited in order; the other slots keep their current choice (identity to start). Costs
    ``B * C * probes`` gradient-matching evaluations, evaluated ``chunk`` chains at a time (each chain holds a
    whole simulated update: 200 classes x 4 probes at once would need tens of GB for a ResNet-18); the latents
    are drawn for all ``C * probes`` chains first, so the choice does not depend on ``chunk``."""
    if G.num_classes < 2:
        raise ValueError("label mapping needs a class-conditional generator")
    B, C = labels.numel(), G.num_classes
    from .defenses import adaptive_transform

    sim = UpdateSimulator(model, update, transform=adaptive_transform(update, model))
    dist = gradient_distance(distance)
    choice = labels.clone() % C
    scores = torch.empty(B, C)
    gen = torch.Generator().manual_seed(seed)
    n = C * probes
    for b in range(B):
        cand = choice.repeat(n, 1)  # (C*probes, B)
        cand[:, b] = torch.arange(C).repeat_interleave(probes)
        state = G.initial_state(cand.flatten().to(labels.device), gen)
        parts = []
        for i in range(0, n, chunk):  # chains i..j
            j = min(i + chunk, n)
            x = to_victim(G.render(0, _rows(state, i * B, j * B, n * B)), task, j - i)
            parts.append(dist(sim(x, labels.expand(j - i, B)), update.tensors))
        d = torch.cat(parts).view(C, probes)
        scores[b] = torch.nan_to_num(d, nan=float("inf")).min(1).values.cpu()
        choice[b] = int(scores[b].argmin())
    return LabelMap("search", choice, sim.evaluations, scores)


def make_mapping(name: str, labels: torch.Tensor, num_gan_classes: int, *, num_fl_classes: int | None = None,
                 seed: int = 0, **search) -> LabelMap:  # fmt: skip
    """The label map ``name`` for a batch of inferred FL ``labels`` (``search`` needs ``model``, ``task``,
    ``update`` and ``G`` keyword arguments)."""
    if name not in MAPPINGS:
        raise ValueError(f"unknown label mapping {name!r}; choose from {MAPPINGS}")
    if name == "identity":
        return LabelMap(name, labels % num_gan_classes)
    if name == "random":
        n = num_fl_classes or int(labels.max()) + 1
        table = torch.randint(0, num_gan_classes, (n,), generator=torch.Generator().manual_seed(seed))
        return LabelMap(name, table[labels.cpu()])
    if name == "none":
        return LabelMap(name, torch.full((labels.numel(), num_gan_classes), 1.0 / num_gan_classes))
    return gradient_search(labels=labels, seed=seed, **search)
