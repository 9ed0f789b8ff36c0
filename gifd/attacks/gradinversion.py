"""GradInversion (Yin, Mallya, Vahdat, Alvarez, Kautz, Molchanov, CVPR 2021, arXiv 2104.07586)."""

from __future__ import annotations

from dataclasses import dataclass

from .pixel import PixelAttack, PixelConfig


@dataclass
class GIConfig(PixelConfig):
    """Defaults: squared-L2 gradient distance, total variation 1e-4, image L2 1e-6, group consistency 0.01
    (towards the mean of the restarts, from a quarter of the steps on), BatchNorm-statistics prior 0.01
    (DeepInversion; against the model's running statistics unless the client disclosed its batch
    statistics), plain Adam at lr 0.1 with step decay. The GIFD reference code runs GI with the BN prior
    off (``bn_statistics=0``); the paper's label rule is :func:`gifd.labels.yin`."""

    distance: str = "l2"
    signed: bool = False
    total_variation: float = 1e-4
    image_l2: float = 1e-6
    bn_statistics: float = 1e-2
    group_consistency: float = 1e-2


class GradInversion(PixelAttack):
    r"""GradInversion — "See through Gradients: Image Batch Recovery via GradInversion".

    Yin et al., CVPR 2021. L2 gradient matching with image priors: BatchNorm statistics, total variation,
    image norm, and group consistency across restarts.

    Example::

        >>> attack = GradInversion(model, task, budget=1000, restarts=4)
        >>> result = attack(update)
    """

    name = "gi"
    Config = GIConfig
