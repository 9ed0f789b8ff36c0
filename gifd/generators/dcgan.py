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
    """All CIFAR-10 training images as uint8 (N, 3, 32, 32) plus labels, decoded once and cached. Only an
    explicit training split is read: ``root/train/<class>/`` (the JPEG tree) or ``cifar-10-batches-py``'s
    training batches; anything else is refused, so a test split is never trained on."""
    cached = cache / "cifar10_train_uint8.pt"
    if cached.is_file():
        blob = torch.load(cached, weights_only=True)
        return blob["x"], blob["y"]
    import numpy as np
    from PIL import Image
    from torchvision.datasets import ImageFolder

    from ..data import _root

    root = _root(data, "cifar10")
    if (root / "cifar-10-batches-py").is_dir():
        from torchvision.datasets import CIFAR10

        ds = CIFAR10(str(root), train=True, download=False)
        x, y = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous(), torch.tensor(ds.targets)
    else:
        tree = next((t for t in (root / "train", root / "cifar10" / "train") if t.is_dir()), None)
        if tree is None:
            raise FileNotFoundError(f"no CIFAR-10 training split under {root}: expected train/<class>/ or "
                                    "cifar-10-batches-py/ (the prior is never trained on anything else)")  # fmt: skip
        ds = ImageFolder(str(tree))
        xs = np.stack([np.asarray(Image.open(p).convert("RGB")) for p, _ in ds.samples])
        x = torch.from_numpy(xs).permute(0, 3, 1, 2).contiguous()
        y = torch.tensor([t for _, t in ds.samples])
    cache.mkdir(parents=True, exist_ok=True)
    torch.save({"x": x, "y": y}, cached)
    return x, y


def train(data: str, out: Path, iterations: int, batch_size: int = 64, seed: int = 0, every: int = 500,
          ema_decay: float = 0.999) -> Path:  # fmt: skip
    """Train (or resume) the conditional DCGAN; checkpoints in ``out/checkpoint.pt`` every ``every`` steps."""
    from .training import sample_grid, train_gan

    out.mkdir(parents=True, exist_ok=True)
    x_all, y_all = _training_images(data, out)
    torch.manual_seed(seed)
    G, D = ConditionalDCGAN(), Discriminator()
    G_ema = ConditionalDCGAN()

    def grid(G_ema: ConditionalDCGAN, done: int) -> None:
        sample_grid(G_ema, out / f"samples_{done:06d}.png", list(range(G_ema.num_classes)))

    return train_gan(G, D, G_ema, x_all, y_all, out, iterations, batch_size=batch_size, every=every,
                     ema_decay=ema_decay, on_grid=grid, tag="dcgan")  # fmt: skip


def export(checkpoint: Path, dest: Path, manifest_extra: dict,
           architecture: str = "gifd.generators.dcgan.ConditionalDCGAN(num_classes=10, latent_dim=100, width=64)",
           ) -> dict:  # fmt: skip
    """Write the EMA generator as safetensors plus a manifest (sha256, command, data, iterations, seconds)."""
    from safetensors.torch import save_file

    from .training import load_checkpoint

    state = load_checkpoint(checkpoint)
    dest.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state["G_ema"].items()}, str(dest))
    digest = hashlib.sha256(dest.read_bytes()).hexdigest()
    manifest = {
        "file": dest.name,
        "sha256": digest,
        "architecture": architecture,
        "iterations": int(state["iteration"]),
        "training_seconds": round(float(state["seconds"]), 1),
        **manifest_extra,
    }
    (dest.with_suffix(".json")).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def load_checked(path: Path, cls: type[SequentialStaged]) -> SequentialStaged:
    """A ``cls`` generator from the safetensors file ``path`` (eval mode), checked against its manifest's
    sha256 when there is one; a file that is not safetensors, or whose tensors do not fit ``cls``, is refused
    by name."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from ..models import load_state_dict_checked

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"prior not found: {path}")
    manifest = path.with_suffix(".json")
    if manifest.is_file():
        want = json.loads(manifest.read_text())["sha256"]
        got = hashlib.sha256(path.read_bytes()).hexdigest()
        if got != want:
            raise ValueError(f"{path}: sha256 {got} does not match its manifest ({want})")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise ValueError(f"{path} is not a safetensors file of {cls.__name__} weights ({err})") from err
    G = cls()
    load_state_dict_checked(G, tensors, what=str(path))
    return G.eval()


def load_bundled(path: Path | None = None) -> ConditionalDCGAN:
    """The bundled CIFAR-10 prior (eval mode), checked against its manifest's sha256."""
    return load_checked(path or PRIOR_DIR / "cifar10_dcgan.safetensors", ConditionalDCGAN)


#: CIFAR-10 test images used for the projection PSNR: 256 evenly spaced indices (ImageFolder order)
PROJECTION_INDICES = list(range(0, 10000, 39))[:256]


def projection_quality(path: Path, data: str, steps: int = 500, starts: int = 4, *, dataset: str = "cifar10",
                       indices: list[int] = PROJECTION_INDICES, load=load_bundled,
                       description: str = "CIFAR-10 test, indices range(0, 10000, 39)[:256]") -> dict:  # fmt: skip
    """Mean projection PSNR of the prior at ``path`` on ``indices`` of ``dataset`` (default: the CIFAR-10 test
    images :data:`PROJECTION_INDICES`); recorded in its manifest."""
    from ..data import load_images
    from .projection import project

    G = load(path)
    data_set = load_images(dataset, data, indices)
    start = time.perf_counter()
    result = project(G, data_set.images, steps=steps, starts=starts)
    split = "test" if dataset == "cifar10" else "val"
    key = f"projection_psnr_{dataset}_{split}_{len(indices)}"
    quality = {
        key: round(float(result.psnr.mean()), 3),
        "projection": {"images": description, "steps": steps,
                       "starts": starts, "optimised": "z and softmax class conditioning, pixel MSE, Adam 0.05",
                       "seconds": round(time.perf_counter() - start, 1),
                       "psnr_std": round(float(result.psnr.std()), 3)},
    }  # fmt: skip
    manifest_path = Path(path).with_suffix(".json")
    manifest = json.loads(manifest_path.read_text())
    if manifest["sha256"] != hashlib.sha256(Path(path).read_bytes()).hexdigest():
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
