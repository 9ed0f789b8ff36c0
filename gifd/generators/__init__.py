"""Staged generators (GAN priors split into stages for GIFD) and their registry."""

from __future__ import annotations

import torch

from .base import SequentialStaged, StagedGenerator, State
from .biggan import BigGANDeep, load_biggan
from .dcgan import ConditionalDCGAN
from .dcgan64 import ConditionalDCGAN64
from .stylegan2 import StyleGAN2Generator, load_stylegan2

GENERATORS: dict[str, type[StagedGenerator]] = {
    "dcgan": ConditionalDCGAN,
    "dcgan64": ConditionalDCGAN64,
    "biggan": BigGANDeep,
    "stylegan2": StyleGAN2Generator,
}


def load_generator(spec: str, *, num_classes: int | None = None, output_size: int | None = None) -> StagedGenerator:
    """A generator from a short spec: ``bundled`` (our CIFAR-10 prior, shipped in ``gifd/priors``),
    ``tinyimagenet64`` (our 64x64 Tiny-ImageNet prior, shipped there too), ``biggan:<path>``,
    ``stylegan2:<path>``, ``dcgan:<path>`` / ``dcgan64:<path>`` (safetensors of :class:`ConditionalDCGAN` /
    :class:`ConditionalDCGAN64`), or ``random-dcgan`` / ``random-dcgan64`` (random weights: tests only).
    Returned in eval mode. A generator read from a path carries ``source_sha256`` (of its weights), which the
    attack cache keys on."""
    from pathlib import Path

    from .dcgan import load_bundled, load_checked
    from .dcgan64 import PRIOR64_FILE, load_prior64

    kind, _, path = spec.partition(":")
    if spec == "bundled":
        return load_bundled()
    if spec == "tinyimagenet64":  # may be trained further: its weights' sha256 enters the attack cache's keys
        G = load_prior64()
        G.source_sha256 = _sha256(PRIOR64_FILE)
        return G
    if spec in ("random-dcgan", "random-dcgan64"):
        torch.manual_seed(0)
        cls = ConditionalDCGAN if spec == "random-dcgan" else ConditionalDCGAN64
        return cls(num_classes=num_classes or 10).eval()
    loaders = {"dcgan": lambda p: load_checked(Path(p), ConditionalDCGAN),
               "dcgan64": lambda p: load_checked(Path(p), ConditionalDCGAN64),
               "biggan": lambda p: load_biggan(p, output_size=output_size),
               "stylegan2": lambda p: load_stylegan2(p, output_size=output_size)}  # fmt: skip
    if kind in loaders and path:
        G = loaders[kind](path)
        G.source_sha256 = _sha256(Path(path).expanduser())
        return G
    raise ValueError(
        f"unknown generator {spec!r}; use 'bundled', 'tinyimagenet64', 'random-dcgan', 'dcgan:<path>', "
        "'dcgan64:<path>', 'biggan:<path>' or 'stylegan2:<path>'"
    )


def prior_manifest(spec: str) -> dict:
    """The manifest of a shipped or exported prior (``bundled``, ``tinyimagenet64``, ``dcgan:<path>``,
    ``dcgan64:<path>``: the ``.json`` beside the weights), or ``{}`` when it has none."""
    import json
    from pathlib import Path

    from .dcgan import PRIOR_DIR
    from .dcgan64 import PRIOR64_FILE

    files = {"bundled": PRIOR_DIR / "cifar10_dcgan.safetensors", "tinyimagenet64": PRIOR64_FILE}
    kind, _, path = spec.partition(":")
    weights = files.get(spec) or (Path(path) if kind in ("dcgan", "dcgan64") and path else None)
    manifest = weights.with_suffix(".json") if weights is not None else None
    return json.loads(manifest.read_text()) if manifest is not None and manifest.is_file() else {}


def _sha256(path) -> str:
    """sha256 of a weights file, or of every file of a weights folder (sorted by name)."""
    import hashlib

    h = hashlib.sha256()
    for f in [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file()):
        with open(f, "rb") as fh:
            for chunk in iter(lambda fh=fh: fh.read(1 << 22), b""):
                h.update(chunk)
    return h.hexdigest()[:16]


def make_generator(name: str, **config) -> StagedGenerator:
    """A generator with random weights by registry name (``dcgan``, ``biggan``, ``stylegan2``)."""
    if name not in GENERATORS:
        raise ValueError(f"unknown generator {name!r}; choose from {sorted(GENERATORS)}")
    return GENERATORS[name](**config)


__all__ = [
    "GENERATORS",
    "BigGANDeep",
    "ConditionalDCGAN",
    "ConditionalDCGAN64",
    "SequentialStaged",
    "StagedGenerator",
    "State",
    "StyleGAN2Generator",
    "load_biggan",
    "load_generator",
    "load_stylegan2",
    "make_generator",
    "prior_manifest",
]
