"""Client-side defenses of the shared update, each with its strength and, where one exists, the attacker's
adaptive transformation of simulated updates (GGL/GIFD's "gradient transformation").

=============  =========================================================  ==========================================
name           client side (strength)                                     adaptive attacker
=============  =========================================================  ==========================================
``gaussian``   add N(0, s^2) to every entry                               none (noise is not reproducible)
``laplacian``  add Laplace(0, s) to every entry                           none
``clipping``   scale the whole update to global L2 norm at most s          the same clipping of the simulated update
``pruning``    per tensor, zero the share s of entries smallest in |g|     the same pruning of the simulated update
``soteria``    zero the head-weight columns of the share s of features    the same columns zeroed (read off the
               least sensitive to the input (Sun et al., CVPR 2021)         shared update)
``dpsgd``      clip each example's gradient to norm 1, average, add       none
               N(0, (s / B)^2) (Abadi et al. 2016; noise multiplier s;
               the update records its (epsilon, 1e-5) from Opacus's PRV
               accountant, :func:`dp_epsilon`)
``quantize``   s bits per entry (uniform, per tensor); s = 1 is the sign   none
=============  =========================================================  ==========================================
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .fl import FLTask, SharedUpdate, _params_buffers, batch_gradient

__all__ = ["Defense", "DEFENSES", "defend", "adaptive_transform", "dp_epsilon"]

DEFENSES = ("gaussian", "laplacian", "clipping", "pruning", "soteria", "dpsgd", "quantize")
#: raised when a change to a defense's code changes its output (it enters the grid's job keys); pruning 2: ties at
#: the threshold are kept in index order (``torch.topk``'s order before), found by selection, not a top-k sort
REVISIONS = {"pruning": 2}
DP_DELTA = 1e-5  # the delta of the (epsilon, delta) a DP-SGD update records


@dataclass(frozen=True)
class Defense:
    """A defense and its strength (see the module table for what the strength means)."""

    name: str
    strength: float

    def __post_init__(self) -> None:
        if self.name not in DEFENSES:
            raise ValueError(f"unknown defense {self.name!r}; choose from {DEFENSES}")
        if not self.strength >= 0:
            raise ValueError(f"defense strength must be >= 0, got {self.strength}")
        if self.name in ("pruning", "soteria") and self.strength >= 1:
            raise ValueError(f"{self.name} strength is the share pruned, in [0, 1); got {self.strength}")
        if self.name == "quantize" and (self.strength < 1 or self.strength != int(self.strength)):
            raise ValueError(f"quantize strength is a whole number of bits >= 1, got {self.strength}")

    def as_dict(self) -> dict:
        return {"name": self.name, "strength": self.strength}


# ---------------------------------------------------------------------------------------------------------------
# transformations shared by the client and the adaptive attacker (they act on lists of tensors; the attacker's
# tensors carry a leading chain dimension, marked by ``chains=True``)


def clip_global(tensors: list[torch.Tensor], bound: float, chains: bool = False) -> list[torch.Tensor]:
    """Scale all tensors together so that their global L2 norm is at most ``bound``."""
    if chains:
        sq = sum(t.reshape(t.shape[0], -1).pow(2).sum(1) for t in tensors)
        factor = (bound / (sq.sqrt() + 1e-6)).clamp(max=1.0)
        return [t * factor.view(-1, *([1] * (t.dim() - 1))) for t in tensors]
    norm = torch.sqrt(sum(t.pow(2).sum() for t in tensors))
    factor = min(1.0, bound / (float(norm) + 1e-6))
    return [t * factor for t in tensors]


def keep_mask(magnitude: torch.Tensor, keep: int) -> torch.Tensor:
    """Per row of ``magnitude`` ``(R, n)``, a boolean mask of exactly ``keep`` entries: every entry above the
    ``keep``-th largest value, then the entries equal to it in index order. The threshold comes from a selection,
    not a sort: NumPy's introselect on the CPU (about 10x faster than ``torch.topk`` over a ResNet-18 gradient),
    ``torch.kthvalue`` on other devices."""
    n = magnitude.shape[1]
    mag = magnitude.detach()
    if mag.device.type == "cpu":
        part = np.partition(mag.contiguous().numpy(), n - keep, axis=1)[:, n - keep : n - keep + 1]
        threshold = torch.from_numpy(np.ascontiguousarray(part))
    else:
        threshold = mag.kthvalue(n - keep + 1, dim=1, keepdim=True).values
    above = mag > threshold
    ties = mag == threshold
    return above | (ties & (ties.cumsum(1) <= keep - above.sum(1, keepdim=True)))


def prune(tensors: list[torch.Tensor], share: float, chains: bool = False) -> list[torch.Tensor]:
    """Per tensor, keep exactly the ``ceil((1 - share) n)`` entries largest in magnitude (ties at the threshold in
    index order: :func:`keep_mask`), zero the rest."""
    out = []
    for t in tensors:
        flat = t.reshape(t.shape[0], -1) if chains else t.reshape(1, -1)
        n = flat.shape[1]
        keep = max(1, int(torch.ceil(torch.tensor((1 - share) * n)).item()))
        out.append((flat * keep_mask(flat.abs(), keep).to(flat.dtype)).reshape(t.shape))
    return out


def _head(model: nn.Module) -> tuple[str, nn.Linear]:
    last = None
    for name, mod in model.named_modules():
        if isinstance(mod, nn.Linear):
            last = (name, mod)
    if last is None:
        raise ValueError("Soteria needs a linear head (the layer before it is the defended representation)")
    return last


def soteria_mask(model: nn.Module, x: torch.Tensor, share: float) -> torch.Tensor:
    """Sun et al.'s feature mask: 0 for the ``share`` of head-input features with the smallest
    ``sum_batch ||d r_f / d x|| / |r_f|``, 1 for the others."""
    _, head = _head(model)
    feats: list[torch.Tensor] = []
    hook = head.register_forward_hook(lambda m, inp, out: feats.append(inp[0]))
    x = x.detach().clone().requires_grad_(True)
    try:
        model(x)
    finally:
        hook.remove()
    r = feats[0]  # (B, F)
    F_ = r.shape[1]
    eye = torch.eye(F_, device=r.device).unsqueeze(1).expand(F_, r.shape[0], F_)
    (jac,) = torch.autograd.grad(r, x, grad_outputs=eye, is_grads_batched=True)  # (F, B, C, H, W)
    score = (jac.flatten(2).norm(dim=2) / (r.detach().abs().t() + 1e-12)).sum(1)  # (F,)
    k = int(share * F_)
    mask = torch.ones(F_, device=r.device)
    if k:
        mask[score.topk(k, largest=False).indices] = 0
    return mask


def quantize(tensors: list[torch.Tensor], bits: int) -> list[torch.Tensor]:
    """Uniform per-tensor quantisation to ``2**bits`` levels over ``[-max|g|, max|g|]``; 1 bit is the sign
    scaled by the mean magnitude (signSGD)."""
    out = []
    for t in tensors:
        if bits == 1:
            out.append(t.sign() * t.abs().mean())
            continue
        m = t.abs().max().clamp_min(1e-12)
        levels = 2**bits - 1
        out.append(torch.round((t / m + 1) / 2 * levels) / levels * 2 * m - m)
    return out


def _dpsgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, noise_multiplier: float, gen) -> list[torch.Tensor]:
    params, buffers = _params_buffers(model)
    per_example = torch.func.vmap(
        lambda xi, yi: batch_gradient(model, params, buffers, xi[None], yi[None]), in_dims=(0, 0)
    )(x, y)
    names = list(params)
    flat = torch.cat([per_example[n].reshape(x.shape[0], -1) for n in names], 1)
    factor = (1.0 / (flat.norm(dim=1) + 1e-6)).clamp(max=1.0)  # clip each example to norm 1
    out = []
    for n in names:
        g = (per_example[n] * factor.view(-1, *([1] * (per_example[n].dim() - 1)))).mean(0)
        noise = torch.randn(g.shape, generator=gen).to(g) * noise_multiplier / x.shape[0]
        out.append(g + noise)
    return out


def dp_epsilon(noise_multiplier: float, delta: float = DP_DELTA, steps: int = 1, sample_rate: float = 1.0) -> float:
    """The (epsilon, ``delta``)-DP guarantee of ``steps`` DP-SGD releases with this noise multiplier, each on a
    Poisson sample of rate ``sample_rate`` of the client's data (1: the update of one whole local batch, as
    :func:`defend` makes it), from Opacus's PRV accountant (Gopi et al. 2021). ``inf`` without noise."""
    if not 0 < delta < 1 or steps < 1 or not 0 < sample_rate <= 1:
        raise ValueError(f"need 0 < delta < 1, steps >= 1, 0 < sample_rate <= 1; got {delta}, {steps}, {sample_rate}")
    if noise_multiplier <= 0:
        return float("inf")
    import warnings

    import numpy as np
    from opacus.accountants import PRVAccountant

    accountant = PRVAccountant()
    for _ in range(steps):
        accountant.step(noise_multiplier=float(noise_multiplier), sample_rate=float(sample_rate))
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        # log(1 - q) at q = 1 is -inf (handled by Opacus); its RDP-based domain estimate may warn about orders
        warnings.filterwarnings("ignore", message="Optimal order")
        return float(accountant.get_epsilon(delta=delta))


def defend(
    update: SharedUpdate,
    defense: Defense,
    *,
    model: nn.Module | None = None,
    task: FLTask | None = None,
    images01: torch.Tensor | None = None,
    labels: torch.Tensor | None = None,
    seed: int = 0,
) -> SharedUpdate:
    """Apply ``defense`` on the client; the result records it in ``update.defense``. Soteria and DP-SGD
    recompute from the client's batch (``model``, ``task``, ``images01``, ``labels``)."""
    gen = torch.Generator().manual_seed(seed)
    t = list(update.tensors)
    s = defense.strength
    if defense.name == "gaussian":
        t = [g + torch.randn(g.shape, generator=gen).to(g) * s for g in t]
    elif defense.name == "laplacian":
        lap = torch.distributions.Laplace(0.0, max(s, 1e-12))
        torch.manual_seed(seed)
        t = [g + (lap.sample(g.shape).to(g) if s > 0 else 0) for g in t]
    elif defense.name == "clipping":
        t = clip_global(t, s)
    elif defense.name == "pruning":
        t = prune(t, s)
    elif defense.name == "quantize":
        t = quantize(t, int(s))
    else:
        if model is None or task is None or images01 is None or labels is None:
            raise ValueError(f"{defense.name} needs the client's model, task, images01 and labels")
        x = task.normalize(images01)
        if defense.name == "soteria":
            if update.kind != "gradient":
                raise ValueError("Soteria defends FedSGD gradients")
            name, _ = _head(model)
            mask = soteria_mask(model, x, s)
            i = update.names.index(f"{name}.weight")
            t[i] = t[i] * mask
        else:
            if update.kind != "gradient":
                raise ValueError("DP-SGD here defends one FedSGD step")
            t = _dpsgd(model, x, labels, s, gen)
            record = {**defense.as_dict(), "epsilon": dp_epsilon(s, DP_DELTA), "delta": DP_DELTA, "accountant": "prv"}
            return update.with_tensors(t, defense=record)
    return update.with_tensors(t, defense=defense.as_dict())


def adaptive_transform(
    update: SharedUpdate, model: nn.Module
) -> Callable[[list[torch.Tensor]], list[torch.Tensor]] | None:
    """The attacker's transformation of simulated updates ``(R, ...)`` for the defense recorded in
    ``update.defense`` (``None`` when there is none, or the defense has no adaptive counterpart)."""
    if not update.defense:
        return None
    d = Defense(update.defense["name"], update.defense["strength"])
    if d.name == "clipping":
        return lambda ts: clip_global(ts, d.strength, chains=True)
    if d.name == "pruning":
        return lambda ts: prune(ts, d.strength, chains=True)
    if d.name == "soteria":
        name, _ = _head(model)
        i = update.names.index(f"{name}.weight")
        mask = (update.tensors[i] != 0).any(dim=0).to(update.tensors[i].dtype)  # zeroed columns are visible

        def soteria(ts):
            ts = list(ts)
            ts[i] = ts[i] * mask
            return ts

        return soteria
    return None
