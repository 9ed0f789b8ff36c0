"""GIFD (Fang, Chen, Wang, Wang, Xia, ICCV 2023, arXiv 2308.04699): gradient inversion over the feature
domains of a generator, as the reference code runs it (``GIFD_SPEC`` section 4), without its bugs."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..fl import SharedUpdate
from ..generators.base import StagedGenerator
from ..matching import gradient_distance, image_l2, total_variation
from .base import AttackConfig, AttackResult, GenerativeAttack, progress
from .gan import chain_states, ilo_lr, project_l1_ball, spherical_, stage_norms, to_victim

__all__ = ["GIFD", "GIFDConfig", "GIFD_PRESETS"]


@dataclass
class GIFDConfig(AttackConfig):
    """GIFD settings. The defaults are the reference code's (cosine distance, TV 1e-4, image L2 1e-6, Adam at
    0.1 with the ILO ramp per stage, 4 restarts); ``radii`` and ``last_stage`` depend on the generator (see
    :data:`GIFD_PRESETS`).

    Args:
        radii: l1-ball radius per stage for the deviation from the stage's start (``<= 0``: no projection);
            shorter lists repeat their last value; ``None``: the generator's preset.
        last_stage: K, the last stage optimised; the result is the best over stages 0..K. ``None``: the
            preset's K, else the generator's last stage.
        steps_per_stage: optimiser steps per stage; ``None`` splits the budget evenly over stages 0..K.
        spherical: keep the latent (and noise) norms of the stage start after every step (stage 0 only, or
            every stage when ``spherical_all_stages``; ``None``: the preset's choice).
        project_latent: also l1-project the latent and noise maps around their stage start (StyleGAN2;
            ``None``: the preset's choice).
        gen_labels: conditioning for class-conditional generators: ``None`` uses the inferred FL labels as
            GAN classes (in-distribution); a callable maps inferred labels to GAN labels or soft class vectors.
    """

    distance: str = "cosine"
    total_variation: float = 1e-4
    image_l2: float = 1e-6
    lr: float = 0.1
    radii: tuple[float, ...] | None = None
    last_stage: int | None = None
    steps_per_stage: int | None = None
    spherical: bool = True
    spherical_all_stages: bool | None = None
    project_latent: bool | None = None
    preset: str | None = None
    gen_labels: object = field(default=None, repr=False)

    def validate(self) -> None:
        super().validate()
        gradient_distance(self.distance)
        if self.preset is not None and self.preset not in GIFD_PRESETS:
            raise ValueError(f"unknown GIFD preset {self.preset!r}; choose from {sorted(GIFD_PRESETS)}")


#: The paper's settings per generator (``GIFD_SPEC`` 4.5, 4.6, 12) and ours for the bundled prior.
GIFD_PRESETS: dict[str, dict] = {
    "biggan": {"radii": (1000, 2000, 2500, 3000, 3500, 4000, 4500, 5000, 5500, 6000, 6500, 7000, 7500),
               "last_stage": 9, "spherical_all_stages": False, "project_latent": False},
    "stylegan2": {"radii": (1000, 2000, 3000, 4000, 5000, 6000, 8000, 8000), "last_stage": 4,
                  "spherical_all_stages": True, "project_latent": True},
    # tuned on CIFAR-10 *training* images 0, 25000 at budget 1000 (tools/tune_gifd_radii.py,
    # figures/tuning_gifd_radii_dcgan):
    # radius 1000 for stages 1-3 beat 0 (no ball), 100, 300 and the growing 1000/2000/3000 by >= 4.9 dB mean PSNR
    "dcgan": {"radii": (0, 1000, 1000, 1000), "last_stage": 3, "spherical_all_stages": False, "project_latent": False},
    # the 64x64 Tiny-ImageNet prior: the CIFAR-10 prior's radii carried over, every stage up to the last feature
    # map (not tuned yet: figures/tuning_gifd_dcgan64 will say)
    "dcgan64": {"radii": (0, 1000, 1000, 1000, 1000), "last_stage": 4, "spherical_all_stages": False,
                "project_latent": False},
}  # fmt: skip


class GIFD(GenerativeAttack):
    r"""GIFD — "A Generative Gradient Inversion Method with Feature Domain Optimization", ICCV 2023.

    Stage 0 optimises the generator's latent (spherical renormalisation); stage ``k >= 1`` optimises the
    output of block ``k-1``, projected after every step onto an l1 ball around its value at the start of
    the stage. Each stage's final images are scored by the gradient distance alone; the result is the best
    image over stages 0..K (and over the restarts, which run as one batch). Per-stage images and scores
    are kept in ``result.extras``.

    Unlike the reference code, the *best* restart's image is returned, restarts draw independent noise, FedAvg
    updates work, and the RGB skip of StyleGAN2 is carried between stages. The learning-rate ramp is evaluated
    at each step's midpoint, so every step moves, down to one step per stage (the smallest budget is
    ``restarts x (K + 1) x 2`` evaluations: one step and one scoring pass per stage and restart).

    Example::

        >>> attack = GIFD(model, task, generator=G, budget=1000)
        >>> result = attack(update)
        >>> result.extras["stage_scores"]     # best gradient distance per stage
    """

    name = "gifd"
    Config = GIFDConfig
    #: 2: the ILO ramp is evaluated at each step's midpoint (revision 1 took ``step / steps``, so the first
    #: step of every stage ran at learning rate 0, and a stage of one step did not move at all)
    revision = 2

    def __init__(self, model, task, config: GIFDConfig | None = None, *, generator: StagedGenerator, **overrides):
        super().__init__(model, task, config, generator=generator, **overrides)
        preset = GIFD_PRESETS.get(self.config.preset or _preset_name(generator), {})
        cfg = self.config
        self.radii = tuple(cfg.radii if cfg.radii is not None else preset.get("radii", (0.0,)))
        last = cfg.last_stage if cfg.last_stage is not None else preset.get("last_stage", generator.num_stages - 1)
        self.last_stage = min(int(last), generator.num_stages - 1)
        if self.last_stage < 0:
            raise ValueError(f"last_stage must be >= 0, got {last}")

        def choose(name: str) -> bool:
            value = getattr(cfg, name)
            return bool(preset.get(name, False) if value is None else value)

        self.spherical_all = choose("spherical_all_stages")
        self.project_latent = choose("project_latent")
        stages = self.last_stage + 1
        steps = cfg.steps_per_stage or (cfg.budget // (cfg.restarts * stages) - 1)
        if steps < 1 or cfg.restarts * stages * (steps + 1) > cfg.budget:
            raise ValueError(
                f"a budget of {cfg.budget} cannot cover {stages} stages x {cfg.restarts} restarts; GIFD "
                f"needs at least {cfg.restarts * stages * 2} (one step and one scoring pass each)"
            )
        self.steps = steps

    def radius(self, stage: int) -> float:
        return float(self.radii[min(stage, len(self.radii) - 1)])

    def _run(self, update: SharedUpdate, labels: torch.Tensor) -> AttackResult:
        cfg: GIFDConfig = self.config
        G, R, B = self.G, cfg.restarts, labels.numel()
        sim = self.simulator(update)
        target = list(update.tensors)
        dist = gradient_distance(cfg.distance)
        y = labels.unsqueeze(0).expand(R, B)
        dev = labels.device
        state = {k: v.to(dev) for k, v in chain_states(G, self.gan_labels(labels).to(dev), R, cfg.seed).items()}
        stage_images, stage_scores, trace = [], [], []
        best = (float("inf"), None, -1, -1)  # score, images, stage, restart
        with progress(self.steps * R * (self.last_stage + 1), self.name, cfg.progress) as bar:
            for stage in range(self.last_stage + 1):
                if stage:
                    state = G.advance(stage - 1, state)
                names = G.variables(stage)
                leaves = {k: v.detach().clone().requires_grad_(k in names) for k, v in state.items()}
                variables = [leaves[k] for k in names]
                centre = {k: leaves[k].detach().clone() for k in names}
                sphere = [k for k in names if k == "z" or k.startswith("noise_")]
                sphere = sphere if cfg.spherical and (stage == 0 or self.spherical_all) else []
                norms = {k: stage_norms(leaves[k]) for k in sphere}
                l1 = [k for k in names if k == "h" or (self.project_latent and k in sphere + ["z"])]
                opt = torch.optim.Adam(variables, lr=cfg.lr)
                for step in range(self.steps):
                    for group in opt.param_groups:  # at the step's midpoint: the first step moves too
                        group["lr"] = ilo_lr((step + 0.5) / self.steps, cfg.lr)
                    opt.zero_grad(set_to_none=True)
                    x = to_victim(G.render(stage, leaves), self.task, R)
                    obj = dist(sim(x, y), target)
                    if cfg.total_variation > 0:
                        obj = obj + cfg.total_variation * total_variation(x)
                    if cfg.image_l2 > 0:
                        obj = obj + cfg.image_l2 * image_l2(x)
                    obj.sum().backward()
                    opt.step()
                    with torch.no_grad():
                        for k in sphere:
                            spherical_(leaves[k], norms[k])
                        for k in l1:
                            leaves[k].copy_(centre[k] + project_l1_ball(leaves[k] - centre[k], self.radius(stage)))
                    trace.append(obj.detach())
                    bar.update(R)
                state = {k: v.detach() for k, v in leaves.items()}
                with torch.no_grad():
                    x = self.box(to_victim(G.render(stage, state), self.task, R))
                scores = torch.nan_to_num(self.score(sim, x, y, target, cfg.distance), nan=float("inf"))
                r = int(scores.argmin())
                images = self.task.denormalize(x[r]).clamp(0, 1)
                stage_images.append(images)
                stage_scores.append(scores.tolist())
                if float(scores[r]) < best[0]:
                    best = (float(scores[r]), images, stage, r)
        score, images, best_stage, best_restart = best
        if images is None:  # every chain diverged: return the last stage's first chain, scored as such
            images, best_stage, best_restart = stage_images[-1], self.last_stage, 0
        return AttackResult(
            method=self.name,
            images=images,
            labels=labels.clone(),
            score=score,
            restart_scores=stage_scores[best_stage],
            best_restart=best_restart,
            evaluations=sim.evaluations,
            seconds=0.0,
            trace=[float(t[best_restart]) for t in trace],
            extras={
                "best_stage": best_stage,
                "stage_scores": [min(s) for s in stage_scores],
                "stage_restart_scores": stage_scores,
                "stage_images": stage_images,
                "steps_per_stage": self.steps,
                "last_stage": self.last_stage,
                "radii": [self.radius(k) for k in range(self.last_stage + 1)],
            },
        )


def _preset_name(G: StagedGenerator) -> str:
    """The preset whose name the generator's class name contains (the longest such: ``dcgan64`` before
    ``dcgan``)."""
    name = type(G).__name__.lower()
    return max((key for key in GIFD_PRESETS if key in name), key=len, default="")
