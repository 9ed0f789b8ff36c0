"""What every attack shares: the budget, restarts, labels, scoring, and the typed result.

**Budget.** Every attack takes one ``budget``: the total number of gradient-matching loss evaluations over
all restarts (and, for staged attacks, stages), final scoring included, so methods are compared at equal
compute. A batched step over ``R`` restarts counts ``R`` evaluations.

**Restarts** are independent chains; the one whose final image has the smallest gradient distance (no
regularisers) is returned.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from ..fl import FLTask, SharedUpdate
from ..labels import infer_labels
from ..matching import UpdateSimulator, gradient_distance

__all__ = ["AttackConfig", "AttackResult", "Attack", "GenerativeAttack", "progress"]


def progress(total: int, desc: str, enabled: bool = True):
    """A notebook-aware tqdm bar (a no-op when disabled)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled, leave=False)


@dataclass
class AttackConfig:
    """Fields common to every attack.

    Args:
        budget: total gradient-matching loss evaluations (all restarts, scoring included).
        restarts: independent random initialisations; the best by gradient distance is returned.
        seed: seed of the attack's own random numbers (initialisations).
        label_strategy: ``auto``, ``idlg``, ``yin``, ``llg`` or ``bias_counts`` when labels are not disclosed.
        progress: show a progress bar.
        adaptive: apply the recorded defense's transformation to simulated updates (adaptive attacker).
    """

    budget: int = 1000
    restarts: int = 4
    seed: int = 0
    label_strategy: str = "auto"
    progress: bool = True
    adaptive: bool = True

    def validate(self) -> None:
        if self.restarts < 1:
            raise ValueError(f"restarts must be >= 1, got {self.restarts}")
        if self.budget < 2 * self.restarts:
            raise ValueError(f"a budget of {self.budget} is too small for {self.restarts} restarts")


@dataclass
class AttackResult:
    """A reconstruction. ``images`` are in [0, 1], ``(B, C, H, W)``; ``score`` is the gradient distance of the
    returned restart; ``restart_scores`` one per restart; ``trace`` the objective of the returned restart."""

    method: str
    images: torch.Tensor
    labels: torch.Tensor
    score: float
    restart_scores: list[float]
    best_restart: int
    evaluations: int
    seconds: float
    trace: list[float] = field(default_factory=list)
    config: dict = field(default_factory=dict)
    extras: dict = field(default_factory=dict)

    def summary(self) -> dict:
        return {
            "method": self.method,
            "score": self.score,
            "restart_scores": self.restart_scores,
            "best_restart": self.best_restart,
            "evaluations": self.evaluations,
            "seconds": self.seconds,
            "labels": self.labels.tolist(),
        }


class Attack:
    """Base class: subclasses set ``name``, ``Config`` and implement :meth:`_run`."""

    name = "attack"
    Config = AttackConfig
    #: raised when a change to the attack's code changes its results (it enters the cache keys: gifd.keys)
    revision = 1

    def __init__(self, model: nn.Module, task: FLTask, config: AttackConfig | None = None, **overrides) -> None:
        config = config or self.Config()
        if not isinstance(config, self.Config):
            raise TypeError(f"{type(self).__name__} takes a {self.Config.__name__}, not {type(config).__name__}")
        known = set(asdict(config))
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"unknown parameter {unknown[0]!r} for {self.name}; known: {sorted(known)}")
        for key, value in overrides.items():
            setattr(config, key, value)
        config.validate()
        self.model, self.task, self.config = model, task, config

    # -- helpers shared by the attacks --------------------------------------------------------------------
    def labels_for(self, update: SharedUpdate, labels: torch.Tensor | None) -> torch.Tensor:
        """Disclosed labels if the update carries them, else the given ones, else inferred from the update."""
        if labels is None:
            labels = update.labels
        if labels is None:
            labels = infer_labels(update, self.task.num_classes, update.num_samples, self.config.label_strategy)
        return labels.long().to(update.tensors[0].device)

    def simulator(self, update: SharedUpdate, **kw) -> UpdateSimulator:
        """The update simulator, with the adaptive transformation of the update's defense if enabled."""
        from ..defenses import adaptive_transform

        transform = adaptive_transform(update, self.model) if self.config.adaptive else None
        return UpdateSimulator(self.model, update, transform=transform, **kw)

    def generator(self) -> torch.Generator:
        return torch.Generator().manual_seed(int(self.config.seed))

    def score(self, sim: UpdateSimulator, x: torch.Tensor, y: torch.Tensor, target, distance: str) -> torch.Tensor:
        """Gradient distance alone (no regulariser) of each chain's candidate, ``(R,)``."""
        dist = gradient_distance(distance)
        with torch.no_grad():  # torch.func.grad still differentiates the victim's loss inside
            return dist(sim(x, y), target)

    def box(self, x: torch.Tensor) -> torch.Tensor:
        """Clamp candidates (in the victim's input space) to the valid image box."""
        lo, hi = self.task.box(x.reshape(-1, *x.shape[-3:])[0])
        return torch.max(torch.min(x, hi), lo)

    def finish(self, sim, x, y, target, labels, distance: str, trace, **extras) -> AttackResult:
        """Clamp each chain's final candidate ``x`` ``(R, B, C, H, W)`` to the box, score it by the gradient
        distance alone, and return the best chain as the result (``trace``: per-step ``(R,)`` objectives or
        a list of floats)."""
        with torch.no_grad():
            x = self.box(x.detach())
        scores = torch.nan_to_num(self.score(sim, x, y, target, distance), nan=float("inf"))
        best = int(scores.argmin())
        best_labels = y[best] if y.dim() == 2 else labels
        return AttackResult(
            method=self.name,
            images=self.task.denormalize(x[best]).clamp(0, 1),
            labels=best_labels.clone(),
            score=float(scores[best]),
            restart_scores=scores.tolist(),
            best_restart=best,
            evaluations=sim.evaluations,
            seconds=0.0,
            trace=[float(t[best]) if torch.is_tensor(t) else float(t) for t in trace],
            extras=extras,
        )

    def __call__(self, update: SharedUpdate, labels: torch.Tensor | None = None) -> AttackResult:
        """Reconstruct the client's batch from ``update`` (the only client data the attack sees)."""
        update.validate(self.model)
        if update.num_samples is None:
            raise ValueError("the batch size is not disclosed by the update (ThreatModel.batch_size)")
        y = self.labels_for(update, labels)
        if y.numel() != update.num_samples:
            raise ValueError(f"{y.numel()} labels for a batch of {update.num_samples}")
        if y.numel() and (int(y.min()) < 0 or int(y.max()) >= self.task.num_classes):
            raise ValueError(f"labels must lie in the task's classes [0, {self.task.num_classes}), got {y.tolist()}")
        start = time.perf_counter()
        result = self._run(update, y)
        result.seconds = time.perf_counter() - start
        result.config = asdict(self.config)
        if result.evaluations > self.config.budget:
            raise RuntimeError(f"{self.name} used {result.evaluations} evaluations, over its budget")
        return result

    def _run(self, update: SharedUpdate, labels: torch.Tensor) -> AttackResult:  # pragma: no cover
        raise NotImplementedError


class GenerativeAttack(Attack):
    """An attack with a GAN prior: ``Attack(model, task, generator=G, **config)``. The config's
    ``gen_labels`` maps inferred FL labels to the generator's conditioning (``None``: the same indices)."""

    def __init__(self, model: nn.Module, task: FLTask, config: AttackConfig | None = None, *, generator,
                 **overrides) -> None:  # fmt: skip
        super().__init__(model, task, config, **overrides)
        self.G = generator.eval().requires_grad_(False)
        gradient_distance(self.config.distance)

    def gan_labels(self, labels: torch.Tensor) -> torch.Tensor:
        fn = self.config.gen_labels
        return labels if fn is None else fn(labels).to(labels.device)
