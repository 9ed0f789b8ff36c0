"""Training a class-conditional GAN prior on this CPU: one loop shared by the bundled priors.

Non-saturating GAN loss (BCE on logits), one discriminator and one generator step per iteration, Adam 2e-4,
betas (0.5, 0.999), random horizontal flips of the real images, an exponential moving average (EMA) of the
generator's weights (the EMA generator is what ships). Checkpoints (``out/checkpoint.pt``) hold the generator,
its EMA, the discriminator, both optimisers, the iteration, the wall time and the random state, so a run
resumes where it stopped; ``copy`` also writes a copy small enough to commit (the three networks in fp16, the
iteration, time and random state, but not the Adam states, which would double its size), from which a fresh
machine resumes when ``out`` has no checkpoint: the networks continue, Adam restarts its moment estimates.
Training images come as one uint8 tensor ``(N, 3, H, W)`` decoded once; nothing here reads a test or
validation split (the callers refuse one).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from .base import StagedGenerator

__all__ = ["train_gan", "sample_grid", "load_checkpoint", "save_checkpoint"]


def save_checkpoint(path: Path, state: dict, half: bool = False) -> None:
    """Write ``state`` atomically; ``half`` stores floating tensors in fp16, except scalars (Adam's step count)."""

    def shrink(obj):
        if isinstance(obj, torch.Tensor) and obj.is_floating_point() and obj.dim() and half:
            return obj.half()
        if isinstance(obj, dict):
            return {k: shrink(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [shrink(v) for v in obj]
        return obj

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".partial")
    torch.save({k: (v if k == "rng" else shrink(v)) for k, v in state.items()}, tmp)
    tmp.replace(path)


def load_checkpoint(path: Path) -> dict:
    """A checkpoint written by :func:`save_checkpoint` (``weights_only``: never unpickles code); fp16 tensors
    are returned as fp32."""

    def grow(obj):
        if isinstance(obj, torch.Tensor) and obj.dtype == torch.float16:
            return obj.float()
        if isinstance(obj, dict):
            return {k: grow(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [grow(v) for v in obj]
        return obj

    state = torch.load(path, weights_only=True)
    return {k: (v if k == "rng" else grow(v)) for k, v in state.items()}


def sample_grid(G: StagedGenerator, path: Path, classes: list[int], per_class: int = 8, seed: int = 0,
                names: list[str] | None = None) -> None:  # fmt: skip
    """Save a grid of samples: one row per class in ``classes`` (EMA generator in eval mode)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = torch.tensor(classes).repeat_interleave(per_class)
    was = G.training
    G.eval()
    with torch.no_grad():
        imgs = G.render(0, G.initial_state(labels, torch.Generator().manual_seed(seed)))
    G.train(was)
    c, h, w = imgs.shape[1:]
    imgs = ((imgs + 1) / 2).clamp(0, 1).view(len(classes), per_class, c, h, w)
    grid = imgs.permute(0, 3, 1, 4, 2).reshape(len(classes) * h, per_class * w, c)
    fig = plt.figure(figsize=(per_class * 0.6 + (1.5 if names else 0), len(classes) * 0.6))
    plt.imshow(grid.numpy())
    if names:
        plt.yticks([h * (i + 0.5) for i in range(len(classes))], [names[k][:18] for k in classes], fontsize=6)
        plt.xticks([])
    else:
        plt.axis("off")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def train_gan(G: StagedGenerator, D: nn.Module, G_ema: StagedGenerator, x_all: torch.Tensor, y_all: torch.Tensor,
              out: Path, iterations: int, *, batch_size: int = 64, every: int = 500, ema_decay: float = 0.999,
              lr: float = 2e-4, copy: Path | None = None, grid_every: int | None = None,
              on_grid: Callable[[StagedGenerator, int], None] | None = None, tag: str = "gan",
              channels_last: bool = False) -> Path:  # fmt: skip
    """Train (or resume from ``out/checkpoint.pt``) ``G`` against ``D`` on uint8 images ``x_all`` with labels
    ``y_all``; a checkpoint every ``every`` iterations (and its fp16 ``copy``), ``on_grid(G_ema, iteration)``
    every ``grid_every``. ``channels_last``: the memory layout oneDNN's CPU convolutions prefer (about 1.3x
    faster at 64x64 here; the weights it saves are the same)."""
    if channels_last:
        for m in (G, D, G_ema):
            m.to(memory_format=torch.channels_last)
    G_ema.load_state_dict(G.state_dict())
    opt_g = torch.optim.Adam(G.parameters(), lr=lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=lr, betas=(0.5, 0.999))
    start, seconds = 0, 0.0
    ckpt = out / "checkpoint.pt"
    resume = ckpt if ckpt.is_file() else copy if copy is not None and copy.is_file() else None
    if resume is not None:
        state = load_checkpoint(resume)
        G.load_state_dict(state["G"])
        D.load_state_dict(state["D"])
        G_ema.load_state_dict(state["G_ema"])
        if "opt_g" in state:  # a committed copy has none: Adam restarts
            opt_g.load_state_dict(state["opt_g"])
            opt_d.load_state_dict(state["opt_d"])
        start, seconds = int(state["iteration"]), float(state["seconds"])
        torch.set_rng_state(state["rng"])
        fresh = "" if "opt_g" in state else " (networks only: Adam restarts)"
        print(f"[{tag}] resumed at iteration {start} from {resume}{fresh}", flush=True)
    bce = nn.BCEWithLogitsLoss()
    n = x_all.shape[0]
    grid_every = grid_every or every * 10
    t0 = time.perf_counter()
    for it in range(start, iterations):
        idx = torch.randint(0, n, (batch_size,))
        real = x_all[idx].float().div(127.5).sub(1)
        flip = torch.rand(batch_size) < 0.5
        real[flip] = real[flip].flip(-1)
        if channels_last:
            real = real.contiguous(memory_format=torch.channels_last)
        y = y_all[idx]
        fake = G.render(0, G.initial_state(y))
        ones, zeros = torch.ones(batch_size), torch.zeros(batch_size)
        loss_d = bce(D(real, y), ones) + bce(D(fake.detach(), y), zeros)
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        loss_g = bce(D(fake, y), ones)
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        with torch.no_grad():
            for pe, p in zip(G_ema.parameters(), G.parameters()):
                pe.lerp_(p, 1 - ema_decay)
            for be, b in zip(G_ema.buffers(), G.buffers()):
                be.copy_(b)
        done = it + 1
        if done % every == 0 or done == iterations:
            elapsed = seconds + time.perf_counter() - t0
            state = {"G": G.state_dict(), "D": D.state_dict(), "G_ema": G_ema.state_dict(),
                     "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(), "iteration": done, "seconds": elapsed,
                     "rng": torch.get_rng_state()}  # fmt: skip
            save_checkpoint(ckpt, state)
            if copy is not None:
                save_checkpoint(copy, {k: v for k, v in state.items() if not k.startswith("opt_")}, half=True)
            print(f"[{tag}] {done}/{iterations} loss_d {loss_d.item():.3f} loss_g {loss_g.item():.3f} "
                  f"{elapsed:.0f} s", flush=True)  # fmt: skip
            if on_grid is not None and (done % grid_every == 0 or done == iterations):
                on_grid(G_ema, done)
    return ckpt
