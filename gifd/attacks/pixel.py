"""The pixel-space optimisation loop shared by Inverting Gradients and GradInversion.

All restarts are optimised together as one ``(R, B, C, H, W)`` tensor: the objective is the sum of the
chains' objectives and Adam is element-wise, so every chain follows exactly the trajectory it would follow
alone (sign-Adam too).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..fl import SharedUpdate
from ..matching import gradient_distance, group_consistency, image_l2, total_variation
from .base import Attack, AttackConfig, AttackResult, progress


@dataclass
class PixelConfig(AttackConfig):
    """Pixel-space attack settings (see the subclasses for the papers' defaults)."""

    distance: str = "cosine"
    layer_weights: str = "equal"
    lr: float = 0.1
    signed: bool = True
    total_variation: float = 1e-4
    image_l2: float = 0.0
    bn_statistics: float = 0.0
    group_consistency: float = 0.0
    group_start: float = 0.25
    lr_milestones: tuple[float, ...] = (3 / 8, 5 / 8, 7 / 8)
    boxed: bool = True

    def validate(self) -> None:
        super().validate()
        gradient_distance(self.distance)
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")


class PixelAttack(Attack):
    Config = PixelConfig

    def _run(self, update: SharedUpdate, labels: torch.Tensor) -> AttackResult:
        cfg: PixelConfig = self.config
        r, b = cfg.restarts, labels.numel()
        steps = cfg.budget // r - 1  # one evaluation per chain is kept for the final scoring
        sim = self.simulator(update, bn_prior=cfg.bn_statistics > 0)
        target = list(update.tensors)
        dist = gradient_distance(cfg.distance)
        y = labels.unsqueeze(0).expand(r, b)
        dev = labels.device
        x = torch.randn((r, b, *self.task.image_shape), generator=self.generator()).to(dev)
        lo, hi = self.task.box(x[0, 0])
        x.requires_grad_(True)
        opt = torch.optim.Adam([x], lr=cfg.lr)
        milestones = [int(m * steps) for m in cfg.lr_milestones]
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=milestones, gamma=0.1)
        trace: list[torch.Tensor] = []
        with progress(steps, self.name, cfg.progress) as bar:
            for step in range(steps):
                opt.zero_grad(set_to_none=True)
                obj = dist(sim(x, y), target, cfg.layer_weights)
                if cfg.total_variation > 0:
                    obj = obj + cfg.total_variation * total_variation(x)
                if cfg.image_l2 > 0:
                    obj = obj + cfg.image_l2 * image_l2(x)
                if cfg.bn_statistics > 0:
                    obj = obj + cfg.bn_statistics * sim.bn_statistics_loss(x)
                if cfg.group_consistency > 0 and r > 1 and step >= cfg.group_start * steps:
                    obj = obj + cfg.group_consistency * group_consistency(x)
                obj.sum().backward()
                if cfg.signed:
                    x.grad.sign_()
                opt.step()
                sched.step()
                if cfg.boxed:
                    with torch.no_grad():
                        x.data = torch.max(torch.min(x, hi), lo)
                trace.append(obj.detach())
                bar.update(1)
        return self.finish(sim, x, y, target, labels, cfg.distance, trace, steps=steps,
                           initial_objective=[float(v) for v in trace[0]] if trace else [])  # fmt: skip
