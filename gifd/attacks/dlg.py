"""Deep Leakage from Gradients (Zhu, Liu, Han, NeurIPS 2019, arXiv 1906.08935)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..fl import SharedUpdate
from ..matching import l2_distance
from .base import Attack, AttackConfig, AttackResult, progress


@dataclass
class DLGConfig(AttackConfig):
    """Defaults of the paper: L-BFGS (lr 1) on the pixels *and* the label logits jointly, squared-L2 gradient
    distance, Gaussian initialisation. ``joint_labels=False`` uses the inferred labels instead (iDLG-style).
    L-BFGS restarts cannot share one optimiser, so they run one after the other."""

    lr: float = 1.0
    history_size: int = 100
    joint_labels: bool = True
    restarts: int = 1


class DLG(Attack):
    r"""DLG — "Deep Leakage from Gradients". Zhu et al., NeurIPS 2019.

    Example::

        >>> result = DLG(model, task, budget=300)(update)
    """

    name = "dlg"
    Config = DLGConfig

    def _lbfgs(self, sim, target, x, logits, labels, evaluations: int, bar) -> list[float]:
        """One L-BFGS restart of at most ``evaluations`` loss evaluations; returns its loss trace."""
        cfg: DLGConfig = self.config
        b = labels.numel()
        variables = [x, logits] if cfg.joint_labels else [x]
        opt = torch.optim.LBFGS(variables, lr=cfg.lr, max_iter=evaluations, max_eval=evaluations,
                                history_size=cfg.history_size)  # fmt: skip
        trace: list[float] = []

        def closure():
            opt.zero_grad()
            y = logits.softmax(-1) if cfg.joint_labels else labels.view(1, b)
            loss = l2_distance(sim(x, y), target).sum()
            loss.backward()
            trace.append(float(loss.detach()))
            bar.update(1)
            return loss

        start = sim.evaluations
        while sim.evaluations - start < evaluations:
            before = sim.evaluations
            opt.param_groups[0]["max_eval"] = evaluations - (sim.evaluations - start)
            opt.step(closure)
            if sim.evaluations == before or not torch.isfinite(torch.tensor(trace[-1])):
                break  # converged or diverged (DLG's L-BFGS is known to blow up)
        return trace

    def _run(self, update: SharedUpdate, labels: torch.Tensor) -> AttackResult:
        cfg: DLGConfig = self.config
        b, c = labels.numel(), self.task.num_classes
        sim = self.simulator(update)
        target = list(update.tensors)
        gen = self.generator()
        per_restart = cfg.budget // cfg.restarts - 1
        finals, label_out, traces = [], [], []
        with progress(cfg.budget, self.name, cfg.progress) as bar:
            for _ in range(cfg.restarts):
                x = torch.randn((1, b, *self.task.image_shape), generator=gen).to(labels.device).requires_grad_(True)
                logits = torch.randn((1, b, c), generator=gen).to(labels.device).requires_grad_(cfg.joint_labels)
                trace = self._lbfgs(sim, target, x, logits, labels, per_restart, bar)
                finals.append(x.detach())
                label_out.append(logits.detach().argmax(-1)[0] if cfg.joint_labels else labels.clone())
                traces.append(trace)
        x_all = torch.nan_to_num(torch.cat(finals))
        y_all = torch.stack(label_out)
        result = self.finish(sim, x_all, y_all, target, labels, "l2", [])
        result.trace = traces[result.best_restart]
        return result
