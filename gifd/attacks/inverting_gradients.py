"""Inverting Gradients (Geiping, Bauermeister, Dröge, Moeller, NeurIPS 2020, arXiv 2003.14053)."""

from __future__ import annotations

from dataclasses import dataclass

from .pixel import PixelAttack, PixelConfig


@dataclass
class IGConfig(PixelConfig):
    """Defaults of the paper: global cosine distance over all layers, total variation 1e-4, Adam on the
    *sign* of the gradient at lr 0.1, step decay x0.1 at 3/8, 5/8 and 7/8 of the steps, pixels clamped to
    the valid box after every step, Gaussian initialisation."""

    distance: str = "cosine"
    signed: bool = True
    total_variation: float = 1e-4


class InvertingGradients(PixelAttack):
    r"""Inverting Gradients — "Inverting Gradients - How easy is it to break privacy in federated learning?"

    Geiping et al., NeurIPS 2020. Optimises the pixels of ``restarts`` candidate batches to minimise the
    cosine distance between their simulated update and the shared one, plus total variation.

    Example::

        >>> attack = InvertingGradients(model, task, budget=1000, restarts=4)
        >>> result = attack(update)          # AttackResult; result.images in [0, 1]
    """

    name = "ig"
    Config = IGConfig
