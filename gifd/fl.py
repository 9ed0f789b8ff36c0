"""The federated-learning side: the task, what the client shares, and what the server learns.

The attacker only ever sees a :class:`SharedUpdate` (plus the global model and the :class:`FLTask`, which an
honest-but-curious server knows). How the update was produced — by :func:`client_update` here, or captured
from a real FL framework with :meth:`SharedUpdate.from_tensors` — does not matter to the attacks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Literal

import torch
from torch import nn
from torch.func import functional_call

__all__ = [
    "FLTask",
    "ThreatModel",
    "LocalTraining",
    "SharedUpdate",
    "client_update",
    "fedsgd_update",
    "fedavg_update",
    "local_training_delta",
    "batch_gradient",
]

UpdateKind = Literal["gradient", "weight_delta"]


@dataclass(frozen=True)
class FLTask:
    """What the server knows about the learning task: input shape, classes and input normalisation."""

    image_shape: tuple[int, int, int] = (3, 32, 32)
    num_classes: int = 10
    mean: tuple[float, ...] = (0.4914, 0.4822, 0.4465)
    std: tuple[float, ...] = (0.2470, 0.2435, 0.2616)

    def __post_init__(self) -> None:
        c = self.image_shape[0]
        if len(self.mean) != c or len(self.std) != c:
            raise ValueError(f"mean/std need {c} entries for image shape {self.image_shape}")

    def _stats(self, ref: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (-1, 1, 1)
        m = torch.tensor(self.mean, dtype=ref.dtype, device=ref.device).view(shape)
        s = torch.tensor(self.std, dtype=ref.dtype, device=ref.device).view(shape)
        return m, s

    def normalize(self, images01: torch.Tensor) -> torch.Tensor:
        """[0,1] images -> the model's input space."""
        m, s = self._stats(images01)
        return (images01 - m) / s

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """Model input space -> [0,1] images (not clamped)."""
        m, s = self._stats(x)
        return x * s + m

    def box(self, ref: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Lower and upper bounds of valid images in the model's input space."""
        m, s = self._stats(ref)
        return (0 - m) / s, (1 - m) / s


@dataclass(frozen=True)
class ThreatModel:
    """What the (honest-but-curious) server learns besides the update itself.

    Attributes:
        labels: the client discloses its labels (otherwise they are inferred from the update).
        batch_size: the number of samples behind the update is known.
        bn_statistics: the client shares the BatchNorm statistics of its batch.
        local_hyperparameters: for FedAvg, the local steps, learning rate and mini-batch size are known.
    """

    labels: bool = False
    batch_size: bool = True
    bn_statistics: bool = False
    local_hyperparameters: bool = True


@dataclass(frozen=True)
class LocalTraining:
    """FedAvg local training: ``steps`` SGD steps at ``lr`` on mini-batches of ``batch_size``.

    Mini-batch ``i`` is the contiguous slice ``[(i mod m) * batch_size, ...)`` of the client's data, with
    ``m = n / batch_size`` (the data is not shuffled, so the attacker can replay the schedule).
    ``batch_size=None`` uses the whole local batch at every step.
    """

    steps: int = 1
    lr: float = 1e-4
    batch_size: int | None = None

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"local steps must be >= 1, got {self.steps}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"local learning rate must be positive, got {self.lr}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError(f"local mini-batch size must be >= 1, got {self.batch_size}")

    def minibatches(self, n: int) -> list[slice]:
        mb = n if self.batch_size is None else self.batch_size
        if n % mb:
            raise ValueError(f"{n} samples do not split into local mini-batches of {mb}")
        m = n // mb
        return [slice((i % m) * mb, (i % m + 1) * mb) for i in range(self.steps)]


@dataclass(frozen=True)
class SharedUpdate:
    """What a client sends: one tensor per model parameter, in ``model.named_parameters()`` order.

    ``kind`` is ``"gradient"`` (FedSGD: the gradient of the mean cross-entropy of one batch) or
    ``"weight_delta"`` (FedAvg: initial minus final weights after local training, so that one step equals
    ``lr`` times the gradient). The optional fields are filled according to the :class:`ThreatModel`.
    """

    kind: UpdateKind
    names: tuple[str, ...]
    tensors: tuple[torch.Tensor, ...]
    num_samples: int | None = None
    labels: torch.Tensor | None = None
    local: LocalTraining | None = None
    bn_statistics: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None
    defense: dict | None = field(default=None)

    def __post_init__(self) -> None:
        if self.kind not in ("gradient", "weight_delta"):
            raise ValueError(f"update kind must be 'gradient' or 'weight_delta', not {self.kind!r}")
        if len(self.names) != len(self.tensors):
            raise ValueError(f"{len(self.names)} names for {len(self.tensors)} tensors")
        for name, t in zip(self.names, self.tensors):
            if not torch.is_tensor(t):
                raise TypeError(f"update entry {name!r} is not a tensor")
            if not torch.isfinite(t).all():
                raise ValueError(f"update entry {name!r} contains NaN or Inf")

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor], kind: UpdateKind = "gradient", **kw) -> SharedUpdate:
        """Wrap an update captured elsewhere (a name -> tensor mapping, e.g. from a Flower client); NumPy arrays
        are converted, anything else is refused by name."""
        if not isinstance(tensors, dict):
            raise TypeError(f"from_tensors takes a name -> tensor mapping, not {type(tensors).__name__}")
        out = []
        for name, t in tensors.items():
            if not torch.is_tensor(t):
                if type(t).__module__ != "numpy" or not hasattr(t, "dtype"):
                    raise TypeError(f"update entry {name!r} is a {type(t).__name__}, not a tensor or NumPy array")
                t = torch.from_numpy(t)
            out.append(t.detach())
        return cls(kind, tuple(tensors), tuple(out), **kw)

    def as_dict(self) -> dict[str, torch.Tensor]:
        return dict(zip(self.names, self.tensors))

    def validate(self, model: nn.Module) -> None:
        """Raise one clear error if the update does not fit ``model``'s parameters."""
        params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        if len(params) != len(self.tensors):
            raise ValueError(f"the update has {len(self.tensors)} tensors, the model {len(params)} parameters")
        for (pname, p), name, t in zip(params, self.names, self.tensors):
            if pname != name:
                raise ValueError(f"update entry {name!r} does not match model parameter {pname!r}")
            if tuple(p.shape) != tuple(t.shape):
                raise ValueError(
                    f"update entry {name!r} has shape {tuple(t.shape)}, the model parameter {tuple(p.shape)}"
                )

    def with_tensors(self, tensors: list[torch.Tensor] | tuple[torch.Tensor, ...], **kw) -> SharedUpdate:
        return replace(self, tensors=tuple(tensors), **kw)

    @property
    def last_weight(self) -> torch.Tensor:
        """The last 2-D tensor (the linear head's weight), used by label inference."""
        for t in reversed(self.tensors):
            if t.dim() == 2:
                return t
        raise ValueError("the update has no 2-D (linear layer) weight for label inference")


def _check_batch(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> int:
    if images.dim() != 4:
        raise ValueError(f"images must be (B, C, H, W), got shape {tuple(images.shape)}")
    if labels.dim() != 1 or labels.shape[0] != images.shape[0]:
        raise ValueError(f"labels must be ({images.shape[0]},), got shape {tuple(labels.shape)}")
    if not torch.isfinite(images).all():
        raise ValueError("images contain NaN or Inf")
    return images.shape[0]


def _params_buffers(model: nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    params = {n: p.detach() for n, p in model.named_parameters()}
    buffers = {n: b.detach().clone() for n, b in model.named_buffers()}
    return params, buffers


def _loss(model, params, buffers, x, y):
    out = functional_call(model, (params, buffers), (x,))
    return nn.functional.cross_entropy(out, y)


def batch_gradient(model, params, buffers, x, y):
    """Gradient of the mean cross-entropy, as a pure function (``torch.func``; vmappable, differentiable)."""
    # buffers are an explicit input so that train-mode BatchNorm may update (copies of) its running stats
    return torch.func.grad(lambda p, b: _loss(model, p, b, x, y))(params, buffers)


def local_training_delta(model, params, buffers, x, y, local: LocalTraining):
    """Run the client's local SGD functionally; return ``{name: initial - final}``.

    Written with ``torch.func`` so that the attacker can ``vmap`` it over restarts and differentiate through
    the unrolled local steps; the client's real update is computed by the same code, so both sides agree.
    """
    current = dict(params)
    for sl in local.minibatches(x.shape[0]):
        grads = batch_gradient(model, current, buffers, x[sl], y[sl])
        current = {n: current[n] - local.lr * grads[n] for n in current}
    return {n: params[n] - current[n] for n in params}


def fedsgd_update(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """FedSGD: the gradient of the mean cross-entropy of one batch (``images`` in the model's input space)."""
    _check_batch(model, images, labels)
    params, buffers = _params_buffers(model)
    return {n: g.detach() for n, g in batch_gradient(model, params, buffers, images, labels).items()}


def fedavg_update(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, local: LocalTraining
) -> dict[str, torch.Tensor]:
    """FedAvg: ``local.steps`` SGD steps; returns initial minus final weights."""
    _check_batch(model, images, labels)
    local.minibatches(images.shape[0])  # validates the split
    params, buffers = _params_buffers(model)
    delta = local_training_delta(model, params, buffers, images, labels, local)
    return {n: d.detach() for n, d in delta.items()}


def _bn_batch_statistics(model: nn.Module, images: torch.Tensor) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    stats: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    hooks = []
    for name, mod in model.named_modules():
        if isinstance(mod, nn.modules.batchnorm._BatchNorm):

            def hook(m, inp, out, name=name):
                x = inp[0]
                dims = [0] + list(range(2, x.dim()))
                stats[name] = (x.mean(dims).detach(), x.var(dims, unbiased=False).detach())

            hooks.append(mod.register_forward_hook(hook))
    try:
        with torch.no_grad():
            state = {k: v.clone() for k, v in model.state_dict().items()}
            model(images)
            model.load_state_dict(state)  # a train-mode forward must not move the server's running stats
    finally:
        for h in hooks:
            h.remove()
    return stats


def client_update(
    model: nn.Module,
    task: FLTask,
    images01: torch.Tensor,
    labels: torch.Tensor,
    *,
    protocol: Literal["fedsgd", "fedavg"] = "fedsgd",
    local: LocalTraining | None = None,
    threat: ThreatModel = ThreatModel(),
) -> SharedUpdate:
    """Simulate one honest client: compute its update on ``images01`` (in [0,1]) and what it discloses.

    Raises a clear error for labels outside the task's classes or images of the wrong shape.
    """
    if tuple(images01.shape[1:]) != tuple(task.image_shape):
        raise ValueError(f"images have shape {tuple(images01.shape[1:])}, the task expects {task.image_shape}")
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= task.num_classes):
        raise ValueError(f"labels must lie in [0, {task.num_classes}), got {labels.tolist()}")
    x = task.normalize(images01)
    if protocol == "fedsgd":
        tensors, kind, local = fedsgd_update(model, x, labels), "gradient", None
    elif protocol == "fedavg":
        local = local or LocalTraining()
        tensors, kind = fedavg_update(model, x, labels, local), "weight_delta"
    else:
        raise ValueError(f"unknown protocol {protocol!r}; use 'fedsgd' or 'fedavg'")
    return SharedUpdate(
        kind=kind,
        names=tuple(tensors),
        tensors=tuple(tensors.values()),
        num_samples=images01.shape[0] if threat.batch_size else None,
        labels=labels.clone() if threat.labels else None,
        local=local if (local is not None and threat.local_hyperparameters) else None,
        bn_statistics=_bn_batch_statistics(model, x) if threat.bn_statistics else None,
    )
