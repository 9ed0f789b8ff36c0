"""Staged generators (GAN priors split into stages for GIFD) and their registry."""

from __future__ import annotations

import torch

from .base import SequentialStaged, StagedGenerator, State
from .biggan import BigGANDeep, load_biggan
from .dcgan import ConditionalDCGAN
from .stylegan2 import StyleGAN2Generator, load_stylegan2

GENERATORS: dict[str, type[StagedGenerator]] = {
    "dcgan": ConditionalDCGAN,
    "biggan": BigGANDeep,
    "stylegan2": StyleGAN2Generator,
}


def load_generator(spec: str, *, num_classes: int | None = None, output_size: int | None = None) -> StagedGenerator:
    """A generator from a short spec: ``bundled`` (our CIFAR-10 prior, shipped in ``gifd/priors``),
    ``biggan:<path>``, ``stylegan2:<path>``, ``dcgan:<path>`` (a state dict of :class:`ConditionalDCGAN`),
    or ``random-dcgan`` (random weights: tests only). Returned in eval mode."""
    from pathlib import Path

    from .dcgan import load_bundled

    kind, _, path = spec.partition(":")
    if spec == "bundled":
        return load_bundled()
    if spec == "random-dcgan":
        torch.manual_seed(0)
        return ConditionalDCGAN(num_classes=num_classes or 10).eval()
    if kind == "dcgan" and path:
        return load_bundled(Path(path))
    if kind == "biggan" and path:
        return load_biggan(path, output_size=output_size)
    if kind == "stylegan2" and path:
        return load_stylegan2(path, output_size=output_size)
    raise ValueError(
        f"unknown generator {spec!r}; use 'bundled', 'random-dcgan', 'dcgan:<path>', 'biggan:<path>' or "
        "'stylegan2:<path>'"
    )


def make_generator(name: str, **config) -> StagedGenerator:
    """A generator with random weights by registry name (``dcgan``, ``biggan``, ``stylegan2``)."""
    if name not in GENERATORS:
        raise ValueError(f"unknown generator {name!r}; choose from {sorted(GENERATORS)}")
    return GENERATORS[name](**config)


__all__ = [
    "GENERATORS",
    "BigGANDeep",
    "ConditionalDCGAN",
    "SequentialStaged",
    "StagedGenerator",
    "State",
    "StyleGAN2Generator",
    "load_biggan",
    "load_generator",
    "load_stylegan2",
    "make_generator",
]
