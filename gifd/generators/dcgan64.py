"""A 64x64 class-conditional prior for ImageNet classes, trained by us on the Tiny-ImageNet *training* split.

The paper attacks 64x64 ImageNet images with BigGAN; no such checkpoint can be downloaded here, so this is our
stand-in: a DCGAN generator (Radford et al. 2016) conditioned at its input as the bundled CIFAR-10 prior (the
one-hot class concatenated to ``z``), against a projection discriminator (Miyato & Koyama 2018: the inner
product of a class embedding with the discriminator's pooled features, plus a linear term), trained with the
non-saturating loss of :mod:`gifd.generators.training`.

Stages (GIFD splits here): 0 = ``z`` (128-d, with the fixed one-hot class); 1 = 8w x 4 x 4; 2 = 4w x 8 x 8;
3 = 2w x 16 x 16; 4 = w x 32 x 32 (the outputs of blocks 0-3; the last block makes the RGB image).

Classes are Tiny-ImageNet's wnids in sorted order (202 of them in the shipped archives), the order
:func:`gifd.data.load_images` gives ``tinyimagenet`` labels, so in-distribution attacks use the FL labels as
they are. Train with::

    python -m gifd.generators.dcgan64 train --data <tiny_imagenet_train_wnids_words.tar.gz or its root> \\
        --out build/prior64 --iterations 20000 --width 48 --copy training/prior_tinyimagenet64/checkpoint_fp16.pt

``export`` writes ``gifd/priors/tinyimagenet64_dcgan.safetensors`` and its manifest; ``quality`` adds the
projection PSNR on 256 Tiny-ImageNet val images.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from torch import nn

from .base import SequentialStaged
from .dcgan import PRIOR_DIR, _init, _Input, _up

__all__ = ["ConditionalDCGAN64", "ProjectionDiscriminator", "train", "load_prior64", "PRIOR64_FILE"]

LATENT = 128
NUM_CLASSES = 202
WIDTH = 48
PRIOR64_FILE = PRIOR_DIR / "tinyimagenet64_dcgan.safetensors"


class ConditionalDCGAN64(SequentialStaged):
    """Class-conditional DCGAN generator, 64x64 RGB in [-1, 1], five GIFD stages."""

    def __init__(self, num_classes: int = NUM_CLASSES, latent_dim: int = LATENT, width: int = WIDTH) -> None:
        w = width
        blocks = [
            nn.Sequential(nn.ConvTranspose2d(latent_dim + num_classes, 8 * w, 4, 1, 0, bias=False),
                          nn.BatchNorm2d(8 * w), nn.ReLU(True)),
            _up(8 * w, 4 * w),
            _up(4 * w, 2 * w),
            _up(2 * w, w),
            nn.ConvTranspose2d(w, 3, 4, 2, 1),
        ]  # fmt: skip
        super().__init__(_Input(), blocks, nn.Tanh(), latent_dim=latent_dim, num_classes=num_classes,
                         image_shape=(3, 64, 64))  # fmt: skip
        self.width = width
        self.apply(_init)


class ProjectionDiscriminator(nn.Module):
    """DCGAN discriminator for 64x64 images with a projection head for the class."""

    def __init__(self, num_classes: int = NUM_CLASSES, width: int = WIDTH) -> None:
        super().__init__()
        w = width
        self.net = nn.Sequential(
            nn.Conv2d(3, w, 4, 2, 1), nn.LeakyReLU(0.2, True),
            nn.Conv2d(w, 2 * w, 4, 2, 1, bias=False), nn.BatchNorm2d(2 * w), nn.LeakyReLU(0.2, True),
            nn.Conv2d(2 * w, 4 * w, 4, 2, 1, bias=False), nn.BatchNorm2d(4 * w), nn.LeakyReLU(0.2, True),
            nn.Conv2d(4 * w, 8 * w, 4, 2, 1, bias=False), nn.BatchNorm2d(8 * w), nn.LeakyReLU(0.2, True),
        )  # fmt: skip
        self.linear = nn.Linear(8 * w, 1)
        self.embed = nn.Embedding(num_classes, 8 * w)
        self.apply(_init)
        nn.init.normal_(self.embed.weight, 0.0, 0.02)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.net(x).sum((2, 3))
        return (self.linear(h).squeeze(1) + (self.embed(y) * h).sum(1)).flatten()


# ----------------------------------------------------------------------------------------------------------
# data: the training split only


def training_split(data: str | Path) -> Path:
    """The ``train/`` folder of a Tiny-ImageNet root or archive; anything without one is refused (the prior is
    never trained on the val split we attack)."""
    from ..data import _root

    root = _root(data, "tinyimagenet")
    base = root / "tiny-imagenet-200" if (root / "tiny-imagenet-200").is_dir() else root
    train = base / "train"
    if not train.is_dir() or not any(train.glob("*/images")):
        hint = " (this is the validation split)" if (base / "val").is_dir() else ""
        raise FileNotFoundError(f"no Tiny-ImageNet training split (train/<wnid>/images/) under {root}{hint}; "
                                "the 64x64 prior trains on the training split only")  # fmt: skip
    return train


def _training_images(data: str | Path, cache: Path) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Every training image as uint8 ``(N, 3, 64, 64)`` (greyscale replicated), labels indexing the sorted
    wnids, and the wnids; decoded once and cached in ``cache``."""
    cached = cache / "tinyimagenet_train_uint8.pt"
    if cached.is_file():
        blob = torch.load(cached, weights_only=True)
        return blob["x"], blob["y"], blob["wnids"].split(",")
    import numpy as np
    from PIL import Image

    train = training_split(data)
    wnids = sorted(d.name for d in train.iterdir() if (d / "images").is_dir())
    xs, ys = [], []
    for k, wnid in enumerate(wnids):
        for path in sorted((train / wnid / "images").glob("*.JPEG")):
            with Image.open(path) as im:
                arr = np.asarray(im.convert("RGB").resize((64, 64)) if im.size != (64, 64) else im.convert("RGB"))
            xs.append(arr)
            ys.append(k)
    x = torch.from_numpy(np.stack(xs)).permute(0, 3, 1, 2).contiguous()
    y = torch.tensor(ys)
    cache.mkdir(parents=True, exist_ok=True)
    torch.save({"x": x, "y": y, "wnids": ",".join(wnids)}, cached)
    return x, y, wnids


def _names(data: str | Path, wnids: list[str]) -> list[str]:
    words = training_split(data).parent / "words.txt"
    table = {}
    if words.is_file():
        for line in words.read_text().splitlines():
            k, _, v = line.partition("\t")
            table[k] = v.split(",")[0]
    return [table.get(w, w) for w in wnids]


#: classes shown in the sample grids written during training (evenly spread over the 202)
GRID_CLASSES = list(range(0, NUM_CLASSES, 20))


def train(data: str, out: Path, iterations: int, batch_size: int = 64, seed: int = 0, every: int = 500,
          width: int = WIDTH, copy: Path | None = None) -> Path:  # fmt: skip
    """Train (or resume) the 64x64 prior; checkpoints in ``out/checkpoint.pt`` (and the fp16 ``copy``)."""
    from .training import sample_grid, train_gan

    out.mkdir(parents=True, exist_ok=True)
    x_all, y_all, wnids = _training_images(data, out)
    if len(wnids) != NUM_CLASSES:
        raise ValueError(f"expected {NUM_CLASSES} Tiny-ImageNet classes in the training split, found {len(wnids)}")
    names = _names(data, wnids)
    torch.manual_seed(seed)
    G, D = ConditionalDCGAN64(width=width), ProjectionDiscriminator(width=width)
    G_ema = ConditionalDCGAN64(width=width)

    def grid(G_ema: ConditionalDCGAN64, done: int) -> None:
        sample_grid(G_ema, out / f"samples_{done:06d}.png", GRID_CLASSES, names=names)

    return train_gan(G, D, G_ema, x_all, y_all, out, iterations, batch_size=batch_size, every=every, copy=copy,
                     grid_every=every * 4, on_grid=grid, tag="dcgan64", channels_last=True)  # fmt: skip


def load_prior64(path: Path | None = None) -> ConditionalDCGAN64:
    """The 64x64 Tiny-ImageNet prior (eval mode), checked against its manifest's sha256."""
    from .dcgan import load_checked

    return load_checked(path or PRIOR64_FILE, ConditionalDCGAN64)


#: Tiny-ImageNet val images used for the projection PSNR: 256 evenly spaced indices
PROJECTION_INDICES = list(range(0, 10100, 39))[:256]


def main(argv: list[str] | None = None) -> int:
    from .dcgan import export, projection_quality

    p = argparse.ArgumentParser(prog="python -m gifd.generators.dcgan64")
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--data", required=True, help="Tiny-ImageNet training archive (.tar.gz) or root with train/")
    t.add_argument("--out", type=Path, required=True)
    t.add_argument("--iterations", type=int, default=20000)
    t.add_argument("--batch-size", type=int, default=64)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--every", type=int, default=250)
    t.add_argument("--width", type=int, default=WIDTH)
    t.add_argument("--copy", type=Path, default=None, help="also write an fp16 checkpoint here (to commit)")
    e = sub.add_parser("export")
    e.add_argument("--checkpoint", type=Path, required=True)
    e.add_argument("--dest", type=Path, default=PRIOR64_FILE)
    e.add_argument("--command", default="", help="the training command, recorded in the manifest")
    e.add_argument("--data", default="Tiny-ImageNet training split (101,000 JPEG images, 202 wnids, ../shared)")
    e.add_argument("--train-data", default=None, help="the training archive or root: class names for the manifest")
    q = sub.add_parser("quality", help="projection PSNR on 256 Tiny-ImageNet val images, into the manifest")
    q.add_argument("--data", required=True, help="Tiny-ImageNet val archive (.tar.gz) or root")
    q.add_argument("--prior", type=Path, default=PRIOR64_FILE)
    q.add_argument("--steps", type=int, default=500)
    q.add_argument("--starts", type=int, default=4)
    args = p.parse_args(argv)
    start = time.perf_counter()
    if args.cmd == "train":
        train(args.data, args.out, args.iterations, args.batch_size, args.seed, args.every, args.width, args.copy)
    elif args.cmd == "quality":
        quality = projection_quality(args.prior, args.data, args.steps, args.starts, dataset="tinyimagenet",
                                     indices=PROJECTION_INDICES, load=load_prior64,
                                     description="Tiny-ImageNet val, indices range(0, 10100, 39)[:256]")  # fmt: skip
        print(json.dumps(quality, indent=2))
    else:
        arch = "gifd.generators.dcgan64.ConditionalDCGAN64(num_classes=202, latent_dim=128, width=48)"
        extra = {"command": args.command, "data": args.data}
        if args.train_data:
            split = training_split(args.train_data)
            wnids = sorted(d.name for d in split.iterdir() if (d / "images").is_dir())
            extra.update(wnids=wnids, classes=_names(args.train_data, wnids))
        print(json.dumps(export(args.checkpoint, args.dest, extra, architecture=arch), indent=2))
    print(f"[dcgan64] {args.cmd} took {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
