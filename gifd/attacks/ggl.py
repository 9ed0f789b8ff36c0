"""GGL — Generative Gradient Leakage (Li, Zhang, Wang, Gu, CVPR 2022, arXiv 2203.15696)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..fl import SharedUpdate
from ..matching import gradient_distance
from .base import AttackConfig, AttackResult, GenerativeAttack, progress
from .gan import chain_states, to_victim

__all__ = ["GGL", "GGLConfig"]


@dataclass
class GGLConfig(AttackConfig):
    """GGL's defaults: gradient-free CMA-ES (the maintained ``cma`` library) over the generator's latent,
    squared-L2 gradient distance plus a KL term 0.1 that keeps the latent's entries close to N(0, 1),
    ``tanh`` squashing of the latent for BigGAN. Every candidate CMA-ES evaluates counts against the budget;
    restarts are independent CMA-ES runs evaluated together, one batched population per generation.

    Args:
        popsize: candidates per generation (``None``: CMA-ES's default 4 + 3 ln(n), lowered where a restart's
            share of the budget would not fit 4 generations of it; GGL used 50).
        sigma0: initial step size.
        kld: weight of the KL term (0.1 for BigGAN in GGL; 0 disables).
        squash: pass the latent through ``tanh`` (``None``: only for BigGAN, as GGL).
    """

    distance: str = "l2"
    popsize: int | None = None
    sigma0: float = 0.5
    kld: float = 0.1
    squash: bool | None = None
    gen_labels: object = field(default=None, repr=False)


def _kld(z: torch.Tensor) -> torch.Tensor:
    mu, var = z.mean(1), z.var(1).clamp_min(1e-12)
    return -0.5 * (1 + var.log() - mu.pow(2) - var)


class GGL(GenerativeAttack):
    r"""GGL — "Auditing Privacy Defenses in Federated Learning via Generative Gradient Leakage", CVPR 2022.

    Example::

        >>> result = GGL(model, task, generator=G, budget=1000)(update)
    """

    name = "ggl"
    Config = GGLConfig

    def _run(self, update: SharedUpdate, labels: torch.Tensor) -> AttackResult:
        import cma

        cfg: GGLConfig = self.config
        G, R, B = self.G, cfg.restarts, labels.numel()
        squash = cfg.squash if cfg.squash is not None else "biggan" in type(G).__name__.lower()
        sim = self.simulator(update)
        target = list(update.tensors)
        dist = gradient_distance(cfg.distance)
        dev = labels.device
        start = chain_states(G, self.gan_labels(labels), R, cfg.seed)
        zshape = start["z"].shape[1:]
        per_restart = cfg.budget // R - 1
        n = B * int(np.prod(zshape))
        opts = {"seed": cfg.seed + 1, "verbose": -9, "CMA_diagonal": n > 1000}
        default = 4 + int(3 * np.log(n))
        popsize = cfg.popsize or (default if per_restart >= 4 * default else max(2, per_restart // 4))
        if popsize != default:
            opts["popsize"] = popsize
        es = [cma.CMAEvolutionStrategy(start["z"][r * B : (r + 1) * B].flatten().double().numpy(), cfg.sigma0, opts)
              for r in range(R)]  # fmt: skip
        used = [0] * R
        trace: list[float] = []

        def evaluate(zs: np.ndarray, restart_of: list[int]) -> np.ndarray:
            n = len(zs)
            z = torch.as_tensor(zs, dtype=torch.float32, device=dev).view(n * B, *zshape)
            state = {k: torch.cat([start[k][r * B : (r + 1) * B] for r in restart_of]) for k in start if k != "z"}
            state["z"] = torch.tanh(z) if squash else z
            with torch.no_grad():
                x = to_victim(G.render(0, state), self.task, n)
                loss = dist(sim(x, labels.expand(n, B)), target)
                if cfg.kld > 0:
                    loss = loss + cfg.kld * _kld(z.view(n, -1))
            return torch.nan_to_num(loss, nan=float("inf")).double().cpu().numpy()

        with progress(R * per_restart, self.name, cfg.progress) as bar:
            while True:
                asks, owner = [], []
                for r, e in enumerate(es):
                    room = per_restart - used[r]
                    if room < e.popsize or e.stop():
                        continue
                    cands = e.ask()
                    asks.append(cands)
                    owner += [r] * len(cands)
                if not asks:
                    break
                losses = evaluate(np.concatenate([np.stack(a) for a in asks]), owner)
                i = 0
                for cands in asks:
                    r = owner[i]
                    es[r].tell(cands, losses[i : i + len(cands)].tolist())
                    used[r] += len(cands)
                    i += len(cands)
                trace.append(float(losses.min()))
                bar.update(len(owner))
        best_z = [e.result.xbest if e.result.xbest is not None else e.mean for e in es]
        z = torch.as_tensor(np.stack(best_z), dtype=torch.float32, device=dev).view(R * B, *zshape)
        state = {k: v for k, v in start.items() if k != "z"}
        state["z"] = torch.tanh(z) if squash else z
        with torch.no_grad():
            x = to_victim(G.render(0, state), self.task, R)
        result = self.finish(sim, x, labels.expand(R, B), target, labels, cfg.distance, [],
                             popsize=es[0].popsize, generations=len(trace))  # fmt: skip
        result.trace = trace
        return result
