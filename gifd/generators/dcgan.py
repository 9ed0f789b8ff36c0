"""The bundled prior: a class-conditional DCGAN for 32x32 images, trained by us on CIFAR-10.

Architecture (Radford et al. 2016, conditioned as in Mirza & Osindero 2014): the one-hot label is
concatenated to ``z`` at the generator's input and given to the discriminator as extra constant input
channels; BatchNorm; non-saturating loss; Adam 2e-4, betas (0.5, 0.999); N(0, 0.02) initialisation.

Stages (GIFD splits here): 0 = ``z`` (100-d, with the fixed one-hot class); 1 = 256x4x4; 2 = 128x8x8;
3 = 64x16x16 (the outputs of blocks 0, 1, 2).

Train it with ``python -m gifd.generators.dcgan train --data <CIFAR-10 root or .tar.gz> --out <dir>``
(resumable checkpoints, progress lines, sample grids); ``export`` writes the safetensors file and manifest
that ship in ``gifd/priors/``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import torch
from torch import nn

from .base import SequentialStaged

__all__ = ["ConditionalDCGAN", "Discriminator", "train", "PRIOR_DIR"]

PRIOR_DIR = Path(__file__).resolve().parent.parent / "priors"
LATENT = 100


def _up(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True))


class _Input(nn.Module):
    def forward(self, z: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        return torch.cat([z, y], 1)[..., None, None]


class ConditionalDCGAN(SequentialStaged):
    """Class-conditional DCGAN generator, 32x32 RGB in [-1, 1], four GIFD stages."""

    def __init__(self, num_classes: int = 10, latent_dim: int = LATENT, width: int = 64) -> None:
        w = width
        blocks = [
            nn.Sequential(nn.ConvTranspose2d(latent_dim + num_classes, 4 * w, 4, 1, 0, bias=False),
                          nn.BatchNorm2d(4 * w), nn.ReLU(True)),
            _up(4 * w, 2 * w),
            _up(2 * w, w),
            nn.ConvTranspose2d(w, 3, 4, 2, 1),
        ]  # fmt: skip
        super().__init__(_Input(), blocks, nn.Tanh(), latent_dim=latent_dim, num_classes=num_classes)
        self.apply(_init)


class Discriminator(nn.Module):
    """Conditional DCGAN discriminator: image plus one constant channel per class."""

    def __init__(self, num_classes: int = 10, width: int = 64) -> None:
        super().__init__()
        w = width
        self.num_classes = num_classes
        self.net = nn.Sequential(
            nn.Conv2d(3 + num_classes, w, 4, 2, 1), nn.LeakyReLU(0.2, True),
            nn.Conv2d(w, 2 * w, 4, 2, 1, bias=False), nn.BatchNorm2d(2 * w), nn.LeakyReLU(0.2, True),
            nn.Conv2d(2 * w, 4 * w, 4, 2, 1, bias=False), nn.BatchNorm2d(4 * w), nn.LeakyReLU(0.2, True),
            nn.Conv2d(4 * w, 1, 4, 1, 0),
        )  # fmt: skip
        self.apply(_init)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        onehot = nn.functional.one_hot(y, self.num_classes).float()[..., None, None]
        return self.net(torch.cat([x, onehot.expand(-1, -1, *x.shape[-2:])], 1)).flatten()


def _init(m: nn.Module) -> None:
    if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
        nn.init.normal_(m.weight, 0.0, 0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


# ----------------------------------------------------------------------------------------------------------
# training


def _training_images(data: str, cache: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """All CIFAR-10 training images as uint8 (N, 3, 32, 32) plus labels, decoded once and cached."""
    cached = cache / "cifar10_train_uint8.pt"
    if cached.is_file():
        blob = torch.load(cached, weights_only=True)
        return blob["x"], blob["y"]
    import numpy as np
    from PIL import Image
    from torchvision.datasets import ImageFolder

    from ..data import _root

    root = _root(data, "cifar10")
    tree = root / "train" if (root / "train").is_dir() else root
    ds = ImageFolder(str(tree))
    xs = np.stack([np.asarray(Image.open(p).convert("RGB")) for p, _ in ds.samples])
    x = torch.from_numpy(xs).permute(0, 3, 1, 2).contiguous()
    y = torch.tensor([t for _, t in ds.samples])
    cache.mkdir(parents=True, exist_ok=True)
    torch.save({"x": x, "y": y}, cached)
    return x, y


def _grid(G: ConditionalDCGAN, path: Path, per_class: int = 8, seed: int = 0) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = torch.arange(G.num_classes).repeat_interleave(per_class)
    was = G.training
    G.eval()
    with torch.no_grad():
        imgs = G.render(0, G.initial_state(labels, torch.Generator().manual_seed(seed)))
    G.train(was)
    imgs = ((imgs + 1) / 2).clamp(0, 1).view(G.num_classes, per_class, 3, 32, 32)
    grid = imgs.permute(0, 3, 1, 4, 2).reshape(G.num_classes * 32, per_class * 32, 3)
    fig = plt.figure(figsize=(per_class * 0.5, G.num_classes * 0.5))
    plt.imshow(grid.numpy())
    plt.axis("off")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def train(data: str, out: Path, iterations: int, batch_size: int = 64, seed: int = 0, every: int = 500,
          ema_decay: float = 0.999) -> Path:  # fmt: skip
    """Train (or resume) the conditional DCGAN; checkpoints in ``out/checkpoint.pt`` every ``every`` steps."""
    out.mkdir(parents=True, exist_ok=True)
    x_all, y_all = _training_images(data, out)
    torch.manual_seed(seed)
    G, D = ConditionalDCGAN(), Discriminator()
    G_ema = ConditionalDCGAN()
    G_ema.load_state_dict(G.state_dict())
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    start, seconds = 0, 0.0
    ckpt = out / "checkpoint.pt"
    if ckpt.is_file():
        state = torch.load(ckpt, weights_only=True)
        G.load_state_dict(state["G"])
        D.load_state_dict(state["D"])
        G_ema.load_state_dict(state["G_ema"])
        opt_g.load_state_dict(state["opt_g"])
        opt_d.load_state_dict(state["opt_d"])
        start, seconds = int(state["iteration"]), float(state["seconds"])
        torch.set_rng_state(state["rng"])
        print(f"[dcgan] resumed at iteration {start}", flush=True)
    bce = nn.BCEWithLogitsLoss()
    n = x_all.shape[0]
    t0 = time.perf_counter()
    for it in range(start, iterations):
        idx = torch.randint(0, n, (batch_size,))
        real = x_all[idx].float().div(127.5).sub(1)
        flip = torch.rand(batch_size) < 0.5
        real[flip] = real[flip].flip(-1)
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
            torch.save({"G": G.state_dict(), "D": D.state_dict(), "G_ema": G_ema.state_dict(),
                        "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(), "iteration": done,
                        "seconds": elapsed, "rng": torch.get_rng_state()}, out / "checkpoint.partial")  # fmt: skip
            (out / "checkpoint.partial").replace(ckpt)
            print(f"[dcgan] {done}/{iterations} loss_d {loss_d.item():.3f} loss_g {loss_g.item():.3f} "
                  f"{elapsed:.0f} s", flush=True)  # fmt: skip
            if done % (every * 10) == 0 or done == iterations:
                _grid(G_ema, out / f"samples_{done:06d}.png")
    return ckpt


def export(checkpoint: Path, dest: Path, manifest_extra: dict) -> dict:
    """Write the EMA generator as safetensors plus a manifest (sha256, command, data, iterations, seconds)."""
    from safetensors.torch import save_file

    state = torch.load(checkpoint, weights_only=True)
    dest.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state["G_ema"].items()}, str(dest))
    digest = hashlib.sha256(dest.read_bytes()).hexdigest()
    manifest = {
        "file": dest.name,
        "sha256": digest,
        "architecture": "gifd.generators.dcgan.ConditionalDCGAN(num_classes=10, latent_dim=100, width=64)",
        "iterations": int(state["iteration"]),
        "training_seconds": round(float(state["seconds"]), 1),
        **manifest_extra,
    }
    (dest.with_suffix(".json")).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def load_bundled(path: Path | None = None) -> ConditionalDCGAN:
    """The bundled CIFAR-10 prior (eval mode), checked against its manifest's sha256."""
    from safetensors.torch import load_file

    from ..models import load_state_dict_checked

    path = path or PRIOR_DIR / "cifar10_dcgan.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"bundled prior not found: {path}")
    manifest = path.with_suffix(".json")
    if manifest.is_file():
        want = json.loads(manifest.read_text())["sha256"]
        got = hashlib.sha256(path.read_bytes()).hexdigest()
        if got != want:
            raise ValueError(f"{path}: sha256 {got} does not match its manifest ({want})")
    G = ConditionalDCGAN()
    load_state_dict_checked(G, load_file(str(path)), what=str(path))
    return G.eval()


#: CIFAR-10 test images used for the projection PSNR: 256 evenly spaced indices (ImageFolder order)
PROJECTION_INDICES = list(range(0, 10000, 39))[:256]


def projection_quality(path: Path, data: str, steps: int = 500, starts: int = 4) -> dict:
    """Mean projection PSNR of the prior at ``path`` on :data:`PROJECTION_INDICES`; recorded in its manifest."""
    from ..data import load_images
    from .projection import project

    G = load_bundled(path)
    images = load_images("cifar10", data, PROJECTION_INDICES).images
    start = time.perf_counter()
    result = project(G, images, steps=steps, starts=starts)
    key = f"projection_psnr_cifar10_test_{len(PROJECTION_INDICES)}"
    quality = {
        key: round(float(result.psnr.mean()), 3),
        "projection": {"images": "CIFAR-10 test, indices range(0, 10000, 39)[:256]", "steps": steps,
                       "starts": starts, "optimised": "z and softmax class conditioning, pixel MSE, Adam 0.05",
                       "seconds": round(time.perf_counter() - start, 1),
                       "psnr_std": round(float(result.psnr.std()), 3)},
    }  # fmt: skip
    manifest_path = path.with_suffix(".json")
    manifest = json.loads(manifest_path.read_text())
    if manifest["sha256"] != hashlib.sha256(path.read_bytes()).hexdigest():
        raise ValueError(f"{manifest_path} does not describe {path}")
    manifest.update(quality)
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    return quality


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m gifd.generators.dcgan")
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--data", required=True, help="CIFAR-10 root (train/<class>/) or its .tar.gz")
    t.add_argument("--out", type=Path, required=True)
    t.add_argument("--iterations", type=int, default=30000)
    t.add_argument("--batch-size", type=int, default=64)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--every", type=int, default=500)
    e = sub.add_parser("export")
    e.add_argument("--checkpoint", type=Path, required=True)
    e.add_argument("--dest", type=Path, default=PRIOR_DIR / "cifar10_dcgan.safetensors")
    e.add_argument("--command", default="", help="the training command, recorded in the manifest")
    e.add_argument("--data", default="CIFAR-10 training set (50,000 JPEG images, ../shared/gifd_data)")
    q = sub.add_parser("quality", help="projection PSNR on 256 CIFAR-10 test images, into the manifest")
    q.add_argument("--data", required=True, help="CIFAR-10 root or its .tar.gz")
    q.add_argument("--prior", type=Path, default=PRIOR_DIR / "cifar10_dcgan.safetensors")
    q.add_argument("--steps", type=int, default=500)
    q.add_argument("--starts", type=int, default=4)
    args = p.parse_args(argv)
    if args.cmd == "train":
        train(args.data, args.out, args.iterations, args.batch_size, args.seed, args.every)
    elif args.cmd == "quality":
        print(json.dumps(projection_quality(args.prior, args.data, args.steps, args.starts), indent=2))
    else:
        print(json.dumps(export(args.checkpoint, args.dest, {"command": args.command, "data": args.data}), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
