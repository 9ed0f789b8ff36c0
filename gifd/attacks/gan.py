"""What the generative attacks (GGL, GIAS, GIFD) share: generator images in the victim's input space,
independent chains drawn from per-chain seeds, and the l1-ball and spherical projections.

Chains (restarts) are stacked along the generator's batch dimension: chain ``r`` holds images
``[r*B, (r+1)*B)``. Generators are evaluated per sample (eval-mode BatchNorm), so the chains do not
interact; the victim's per-chain updates come from the vmapped :class:`~gifd.matching.UpdateSimulator`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..fl import FLTask
from ..generators.base import StagedGenerator, State

__all__ = ["to_victim", "chain_states", "project_l1_ball", "spherical_", "stage_norms", "ilo_lr"]


def to_victim(images: torch.Tensor, task: FLTask, chains: int) -> torch.Tensor:
    """Generator output ``(R*B, C', H', W')`` in ``[-1, 1]`` -> the victim's input ``(R, B, C, H, W)``
    (resized with area interpolation, grey-scaled or replicated to the task's channels, normalised)."""
    c, h, w = task.image_shape
    x = (images + 1) / 2
    if x.shape[-2:] != (h, w):
        mode = "area" if x.shape[-1] > w else "bilinear"
        x = F.interpolate(x, size=(h, w), mode=mode, **({} if mode == "area" else {"align_corners": False}))
    if x.shape[1] != c:
        x = x.mean(1, keepdim=True).expand(-1, c, -1, -1) if c in (1, 3) else x[:, :c]
    x = task.normalize(x)
    return x.reshape(chains, -1, c, h, w)


def chain_states(G: StagedGenerator, gen_labels: torch.Tensor, chains: int, seed: int) -> State:
    """Stage-0 states of ``chains`` independent chains; chain ``r`` draws from ``Generator(seed + r)``, so a
    single chain with seed ``s`` equals chain 0 of any batch with seed ``s``."""
    states = [G.initial_state(gen_labels, torch.Generator().manual_seed(seed + r)) for r in range(chains)]
    return {k: torch.cat([s[k] for s in states]) for k in states[0]}


def project_l1_ball(delta: torch.Tensor, radius: float) -> torch.Tensor:
    """Euclidean projection of each sample of ``delta`` (first dimension) onto the l1 ball of ``radius``
    (exact sort-based algorithm of Duchi et al., ICML 2008); samples already inside are unchanged."""
    if radius <= 0:
        return delta
    flat = delta.reshape(delta.shape[0], -1)
    absd = flat.abs()
    inside = absd.sum(1) <= radius
    # the threshold is found in float64 (float32 cumulative sums over a feature map drift by ~1e-4, enough to
    # leave the ball); MPS has no float64 and keeps the input's precision
    exact = torch.float32 if flat.device.type == "mps" else torch.float64
    mu = torch.sort(absd, dim=1, descending=True).values.to(exact)
    cumsum = mu.cumsum(1)
    ks = torch.arange(1, flat.shape[1] + 1, device=flat.device, dtype=exact)
    cond = mu * ks > (cumsum - radius)
    # cond holds on a prefix: rho is its last index (clamped: a diverged, NaN chain stays NaN instead of crashing)
    rho = (cond.sum(1, keepdim=True) - 1).clamp_min(0)
    theta = (cumsum.gather(1, rho) - radius) / (rho + 1).to(exact)
    proj = flat.sign() * (absd.to(exact) - theta).clamp_min(0).to(flat.dtype)
    out = torch.where(inside[:, None], flat, proj)
    return out.reshape(delta.shape)


def spherical_(x: torch.Tensor, norms: torch.Tensor) -> None:
    """Rescale ``x`` in place so that each sample keeps the norm it had at the start of the stage
    (per sample and, for W+ latents, per style vector: the norm is over the last dimension for 3-D latents,
    over all non-batch dimensions otherwise)."""
    x.mul_(norms / _norms(x).clamp_min(1e-12))


def _norms(x: torch.Tensor) -> torch.Tensor:
    if x.dim() == 3:
        return x.norm(dim=-1, keepdim=True)
    return x.flatten(1).norm(dim=1).view(-1, *([1] * (x.dim() - 1)))


def stage_norms(x: torch.Tensor) -> torch.Tensor:
    return _norms(x).detach()


def ilo_lr(t: float, lr: float, rampdown: float = 0.75, rampup: float = 0.05) -> float:
    """ILO/PULSE learning-rate ramp used by GIFD: linear warm-up over the first 5 %, cosine decay over the
    last 75 % of a stage (``t`` in [0, 1])."""
    ramp = min(1.0, (1 - t) / rampdown)
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    return lr * ramp * min(1.0, t / rampup)
