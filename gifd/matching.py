"""Gradient matching: simulate the client's update for candidate data and measure its distance to the
shared one; the image regularisers used by the attacks.

Everything works on *chains* (independent restarts, and later GAN chains) stacked on a leading dimension:
candidate data has shape ``(R, B, C, H, W)``, simulated updates are lists of ``(R, *param_shape)`` tensors,
distances and regularisers return ``(R,)``. The per-chain updates come from ``torch.func.vmap`` over
``torch.func.grad`` (FedSGD) or over the unrolled local SGD steps (FedAvg), so a whole population of
restarts is one batched computation, and each chain is exactly what it would be if run alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.func import functional_call, vmap

from .fl import SharedUpdate, batch_gradient, local_training_delta

__all__ = [
    "UpdateSimulator",
    "DISTANCES",
    "cosine_distance",
    "l2_distance",
    "layer_cosine_distance",
    "masked_cosine_distance",
    "layer_weights",
    "gradient_distance",
    "total_variation",
    "image_l2",
    "group_consistency",
]


class UpdateSimulator:
    """Differentiably recompute the update a client with data ``x`` and labels ``y`` would share.

    Args:
        model: the global model (its parameters and buffers are read once and never modified).
        update: the observed update; only its kind and disclosed local hyper-parameters are used.
        bn_prior: also return, per chain, the DeepInversion BatchNorm-statistics distance
            ``sum_l ||mu_l - mu*_l||_2 + ||var_l - var*_l||_2`` of the candidate batch, against the client's
            disclosed batch statistics if any, else the model's running statistics.
        transform: applied to the simulated per-chain update (the adaptive attacker's copy of the client's
            defense, :func:`gifd.defenses.adaptive_transform`).
    """

    def __init__(self, model: nn.Module, update: SharedUpdate, *, bn_prior: bool = False, transform=None) -> None:
        self.model = model
        self.kind = update.kind
        self.local = update.local
        if self.kind == "weight_delta" and self.local is None:
            raise ValueError(
                "a FedAvg weight delta can only be inverted when the local hyper-parameters are known "
                "(ThreatModel.local_hyperparameters)"
            )
        self.params = {n: p.detach() for n, p in model.named_parameters()}
        self.buffers = {n: b.detach().clone() for n, b in model.named_buffers()}
        self.names = tuple(self.params)
        self.train_bn = model.training
        self.bn_prior = bn_prior
        self._bn_targets: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        if bn_prior:
            for name, mod in model.named_modules():
                if isinstance(mod, nn.modules.batchnorm._BatchNorm):
                    if update.bn_statistics is not None and name in update.bn_statistics:
                        self._bn_targets[name] = update.bn_statistics[name]
                    else:
                        self._bn_targets[name] = (mod.running_mean.detach(), mod.running_var.detach())
        self.evaluations = 0
        self.transform = transform

    def _single(self, buffers, x, y):
        if self.kind == "gradient":
            g = batch_gradient(self.model, self.params, buffers, x, y)
        else:
            g = local_training_delta(self.model, self.params, buffers, x, y, self.local)
        return tuple(g[n] for n in self.names)

    def _bn_loss(self, buffers, x):
        terms: list[torch.Tensor] = []
        hooks = []
        for name, mod in self.model.named_modules():
            if name in self._bn_targets:
                mu_t, var_t = self._bn_targets[name]

                def hook(m, inp, out, mu_t=mu_t, var_t=var_t):
                    h = inp[0]
                    dims = [0] + list(range(2, h.dim()))
                    mu, var = h.mean(dims), h.var(dims, unbiased=False)
                    terms.append(torch.linalg.vector_norm(mu - mu_t) + torch.linalg.vector_norm(var - var_t))

                hooks.append(mod.register_forward_hook(hook))
        try:
            functional_call(self.model, (self.params, buffers), (x,))
        finally:
            for h in hooks:
                h.remove()
        return torch.stack(terms).sum() if terms else x.new_zeros(())

    def _chain_buffers(self, chains: int):
        # train-mode BatchNorm writes its running statistics in place: give every chain its own copy
        if self.train_bn:
            return {n: b.unsqueeze(0).repeat(chains, *([1] * b.dim())) for n, b in self.buffers.items()}, 0
        return self.buffers, None

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
        """``x``: ``(R, B, C, H, W)`` in the model's input space; ``y``: ``(R, B)`` class indices or
        ``(R, B, classes)`` probabilities. Returns one ``(R, *shape)`` tensor per parameter."""
        if x.dim() != 5:
            raise ValueError(f"candidate data must be (chains, batch, C, H, W), got {tuple(x.shape)}")
        self.evaluations += x.shape[0]
        if x.shape[0] == 1:  # one chain: the same computation without vmap's overhead (about 10 % per step)
            buffers = {n: b.clone() for n, b in self.buffers.items()} if self.train_bn else self.buffers
            out = [g.unsqueeze(0) for g in self._single(buffers, x[0], y[0])]
        else:
            buffers, bdim = self._chain_buffers(x.shape[0])
            out = list(vmap(self._single, in_dims=(bdim, 0, 0))(buffers, x, y))
        return self.transform(out) if self.transform is not None else out

    def bn_statistics_loss(self, x: torch.Tensor) -> torch.Tensor:
        """The BatchNorm-statistics prior per chain, ``(R,)`` (requires ``bn_prior=True``)."""
        if not self.bn_prior:
            raise RuntimeError("UpdateSimulator was built without bn_prior=True")
        buffers, bdim = self._chain_buffers(x.shape[0])
        return vmap(self._bn_loss, in_dims=(bdim, 0))(buffers, x)


# ----------------------------------------------------------------------------------------------------------
# distances: dummy = list of (R, *shape), target = list of (*shape) -> (R,)


def layer_weights(scheme: str | Sequence[float], n: int) -> list[float]:
    """Per-tensor weights: ``equal``; ``linear`` (n, n-1, ..., 1)/n; ``exp`` softmax(n, ..., 1); or a list."""
    if isinstance(scheme, str):
        if scheme == "equal":
            return [1.0] * n
        if scheme == "linear":
            return [(n - i) / n for i in range(n)]
        if scheme == "exp":
            return torch.softmax(torch.arange(n, 0, -1, dtype=torch.float64), 0).tolist()
        raise ValueError(f"unknown layer-weight scheme {scheme!r}; use 'equal', 'linear', 'exp' or a list")
    weights = [float(w) for w in scheme]
    if len(weights) != n:
        raise ValueError(f"{len(weights)} layer weights for {n} tensors")
    return weights


def _flat(dummy, target):
    if len(dummy) != len(target):
        raise ValueError(f"{len(dummy)} simulated tensors against {len(target)} shared ones")
    r = dummy[0].shape[0]
    return [d.reshape(r, -1) for d in dummy], [t.reshape(1, -1).to(d.dtype) for t, d in zip(target, dummy)]


def cosine_distance(dummy, target, weights: str | Sequence[float] = "equal") -> torch.Tensor:
    """Geiping et al.'s global cosine distance ``1 - <g', g> / (|g'| |g|)`` over all tensors concatenated."""
    d, t = _flat(dummy, target)
    w = layer_weights(weights, len(d))
    dot = sum(wi * (a * b).sum(1) for wi, a, b in zip(w, d, t))
    nd = sum(wi * a.pow(2).sum(1) for wi, a in zip(w, d))
    nt = sum(wi * b.pow(2).sum(1) for wi, b in zip(w, t))
    return 1 - dot / (nd.clamp_min(1e-20).sqrt() * nt.clamp_min(1e-20).sqrt())


def l2_distance(dummy, target, weights: str | Sequence[float] = "equal") -> torch.Tensor:
    """Squared Euclidean distance ``sum_l w_l |g'_l - g_l|^2`` (DLG, GradInversion)."""
    d, t = _flat(dummy, target)
    w = layer_weights(weights, len(d))
    return sum(wi * (a - b).pow(2).sum(1) for wi, a, b in zip(w, d, t))


def layer_cosine_distance(dummy, target, weights: str | Sequence[float] = "equal") -> torch.Tensor:
    """Weighted mean over tensors of the per-tensor cosine distance."""
    d, t = _flat(dummy, target)
    w = layer_weights(weights, len(d))
    total = sum(
        wi * (1 - (a * b).sum(1) / (a.norm(dim=1).clamp_min(1e-20) * b.norm(dim=1).clamp_min(1e-20)))
        for wi, a, b in zip(w, d, t)
    )
    return total / sum(w)


def masked_cosine_distance(dummy, target, weights: str | Sequence[float] = "equal") -> torch.Tensor:
    """Global cosine distance restricted to the support (non-zero entries) of the shared update, for
    sparsified/pruned gradients: entries the client zeroed carry no information and are ignored."""
    masks = [(t != 0).to(d.dtype) for d, t in zip(dummy, target)]
    return cosine_distance([d * m for d, m in zip(dummy, masks)], target, weights)


DISTANCES: dict[str, Callable[..., torch.Tensor]] = {
    "cosine": cosine_distance,
    "l2": l2_distance,
    "layer_cosine": layer_cosine_distance,
    "masked_cosine": masked_cosine_distance,
}


def gradient_distance(name: str) -> Callable[..., torch.Tensor]:
    if name not in DISTANCES:
        raise ValueError(f"unknown gradient distance {name!r}; choose one of {sorted(DISTANCES)}")
    return DISTANCES[name]


# ----------------------------------------------------------------------------------------------------------
# image regularisers on (R, B, C, H, W) -> (R,)


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Anisotropic TV: mean |horizontal difference| + mean |vertical difference| per chain."""
    dx = (x[..., :, 1:] - x[..., :, :-1]).abs().flatten(1).mean(1)
    dy = (x[..., 1:, :] - x[..., :-1, :]).abs().flatten(1).mean(1)
    return dx + dy


def image_l2(x: torch.Tensor) -> torch.Tensor:
    """``||x||_2`` per chain (over the whole batch) divided by the number of pixels ``H * W``."""
    return x.flatten(1).norm(dim=1) / (x.shape[-1] * x.shape[-2])


def group_consistency(x: torch.Tensor) -> torch.Tensor:
    """GradInversion's group consistency: distance of each chain to the (fixed) mean of all chains."""
    centre = x.detach().mean(0, keepdim=True)
    return (x - centre).flatten(1).norm(dim=1) / (x.shape[-1] * x.shape[-2])
