"""GIAS — Gradient Inversion with Generative Image Prior (Jeon, Kim, Kim, Ok, NeurIPS 2021, arXiv 2110.14962)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from ..fl import SharedUpdate
from ..generators.base import StagedGenerator
from ..matching import gradient_distance, total_variation
from .base import AttackConfig, AttackResult, GenerativeAttack, progress
from .gan import chain_states, to_victim

__all__ = ["GIAS", "GIASConfig"]

#: phase-2 (generator weights) learning rate per generator family (GIAS: 1e-5 BigGAN, 1e-3 StyleGAN2)
GIAS_WEIGHT_LR = {"biggan": 1e-5, "stylegan2": 1e-3, "dcgan": 1e-4}


@dataclass
class GIASConfig(AttackConfig):
    """GIAS's defaults (as the GIFD reference runs it): phase 1 optimises the latent (Adam 0.03, step decay at
    3/8, 5/8, 7/8), phase 2 a separate copy of the generator's weights per image and restart, from the
    phase-1 latent (Adam ``weight_lr``, same decay); cosine distance plus TV 1e-4. The budget is split 1:8
    between the phases, as the reference's 1,000 + 8,000 iterations.

    Args:
        weight_lr: phase-2 learning rate (``None``: per generator, :data:`GIAS_WEIGHT_LR`).
        latent_share: share of the budget spent in phase 1.
    """

    distance: str = "cosine"
    total_variation: float = 1e-4
    latent_lr: float = 0.03
    weight_lr: float | None = None
    latent_share: float = 1 / 9
    gen_labels: object = field(default=None, repr=False)


class _Render(nn.Module):
    def __init__(self, G: StagedGenerator) -> None:
        super().__init__()
        self.G = G

    def forward(self, state: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.G.render(0, state)


def _milestones(steps: int) -> list[int]:
    return [int(f * steps) for f in (3 / 8, 5 / 8, 7 / 8)]


class GIAS(GenerativeAttack):
    r"""GIAS — "Gradient Inversion with Generative Image Prior", NeurIPS 2021.

    Example::

        >>> result = GIAS(model, task, generator=G, budget=1000)(update)
    """

    name = "gias"
    Config = GIASConfig

    def __init__(self, model, task, config: GIASConfig | None = None, *, generator: StagedGenerator, **overrides):
        super().__init__(model, task, config, generator=generator, **overrides)
        cfg = self.config
        per_chain = cfg.budget // cfg.restarts - 1
        self.latent_steps = max(1, int(per_chain * cfg.latent_share))
        self.weight_steps = per_chain - self.latent_steps
        if self.weight_steps < 1:
            raise ValueError(f"a budget of {cfg.budget} is too small for GIAS's two phases")
        family = next((k for k in GIAS_WEIGHT_LR if k in type(generator).__name__.lower()), "dcgan")
        self.weight_lr = cfg.weight_lr if cfg.weight_lr is not None else GIAS_WEIGHT_LR[family]

    def _objective(self, x, sim, y, target):
        cfg: GIASConfig = self.config
        obj = gradient_distance(cfg.distance)(sim(x, y), target)
        return obj + cfg.total_variation * total_variation(x) if cfg.total_variation > 0 else obj

    def _run(self, update: SharedUpdate, labels: torch.Tensor) -> AttackResult:
        cfg: GIASConfig = self.config
        G, R, B = self.G, cfg.restarts, labels.numel()
        sim = self.simulator(update)
        target = list(update.tensors)
        y = labels.unsqueeze(0).expand(R, B)
        state = chain_states(G, self.gan_labels(labels), R, cfg.seed)
        trace: list[torch.Tensor] = []
        with progress(R * (self.latent_steps + self.weight_steps), self.name, cfg.progress) as bar:
            # phase 1: the latent
            z = state["z"].clone().requires_grad_(True)
            opt = torch.optim.Adam([z], lr=cfg.latent_lr)
            sched = torch.optim.lr_scheduler.MultiStepLR(opt, _milestones(self.latent_steps), 0.1)
            for _ in range(self.latent_steps):
                opt.zero_grad(set_to_none=True)
                obj = self._objective(to_victim(G.render(0, {**state, "z": z}), self.task, R), sim, y, target)
                obj.sum().backward()
                opt.step()
                sched.step()
                trace.append(obj.detach())
                bar.update(R)
            state = {**state, "z": z.detach()}
            # phase 2: one copy of the generator's weights per image and restart, optimised together
            render = _Render(G)
            params, buffers = stack_module_state([render] * (R * B))
            params = {k: v.clone().requires_grad_(True) for k, v in params.items()}
            per_sample = {k: v.unsqueeze(1) for k, v in state.items()}  # (R*B, 1, ...)

            def images(p):
                out = vmap(lambda pp, bb, st: functional_call(render, (pp, bb), (st,)))(params if p is None else p,
                                                                                    buffers, per_sample)  # fmt: skip
                return out.squeeze(1)

            opt = torch.optim.Adam(list(params.values()), lr=self.weight_lr)
            sched = torch.optim.lr_scheduler.MultiStepLR(opt, _milestones(self.weight_steps), 0.1)
            for _ in range(self.weight_steps):
                opt.zero_grad(set_to_none=True)
                obj = self._objective(to_victim(images(None), self.task, R), sim, y, target)
                obj.sum().backward()
                opt.step()
                sched.step()
                trace.append(obj.detach())
                bar.update(R)
        with torch.no_grad():
            x = to_victim(images(None), self.task, R)
        return self.finish(sim, x, y, target, labels, cfg.distance, trace, latent_steps=self.latent_steps,
                           weight_steps=self.weight_steps, weight_lr=self.weight_lr)  # fmt: skip
