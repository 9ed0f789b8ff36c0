"""Looking at a staged generator: samples per class and what each stage controls."""

from __future__ import annotations

import torch

from .base import StagedGenerator

__all__ = ["class_samples", "stage_perturbations", "shown_classes"]


def shown_classes(num_classes: int, most: int = 12) -> list[int]:
    """The classes a sample grid shows: all of them, or ``most`` evenly spread ones when there are more."""
    if num_classes <= most:
        return list(range(max(num_classes, 1)))
    return [round(i * (num_classes - 1) / (most - 1)) for i in range(most)]


@torch.no_grad()
def class_samples(G: StagedGenerator, per_class: int = 8, seed: int = 0,
                  classes: list[int] | None = None) -> list[torch.Tensor]:  # fmt: skip
    """One ``[0, 1]`` batch of ``per_class`` samples per class in ``classes`` (default: every class; one batch
    if unconditional)."""
    gen = torch.Generator().manual_seed(seed)
    classes = classes if classes is not None else (range(G.num_classes) if G.num_classes else [0])
    out = []
    for c in classes:
        state = G.initial_state(torch.full((per_class,), c, dtype=torch.long), gen)
        out.append(((G.render(0, state) + 1) / 2).clamp(0, 1))
    return out


@torch.no_grad()
def stage_perturbations(G: StagedGenerator, labels: torch.Tensor, strength: float = 0.5, seed: int = 0):
    """For every stage ``k``: the images after adding Gaussian noise of ``strength`` times the norm of stage
    ``k``'s variable (``z`` at stage 0, the feature map after). Early stages change layout, late ones texture.
    Returns ``(original, [perturbed per stage])``, all ``[0, 1]``."""
    gen = torch.Generator().manual_seed(seed)
    state = G.initial_state(labels, gen)
    original = ((G.render(0, state) + 1) / 2).clamp(0, 1)
    rows = []
    for stage in range(G.num_stages):
        if stage:
            state = G.advance(stage - 1, state)
        key = "z" if stage == 0 else "h"
        v = state[key]
        noise = torch.randn(v.shape, generator=gen).to(v)
        scale = v.flatten(1).norm(dim=1) / noise.flatten(1).norm(dim=1) * strength
        moved = {**state, key: v + noise * scale.view(-1, *([1] * (v.dim() - 1)))}
        rows.append(((G.render(stage, moved) + 1) / 2).clamp(0, 1))
    return original, rows
