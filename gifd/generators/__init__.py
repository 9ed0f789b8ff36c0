"""Staged generators (GAN priors split into stages for GIFD) and their registry."""

from __future__ import annotations

from .base import SequentialStaged, StagedGenerator, State
from .biggan import BigGANDeep, load_biggan
from .dcgan import ConditionalDCGAN
from .stylegan2 import StyleGAN2Generator, load_stylegan2

GENERATORS: dict[str, type[StagedGenerator]] = {
    "dcgan": ConditionalDCGAN,
    "biggan": BigGANDeep,
    "stylegan2": StyleGAN2Generator,
}


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
    "load_stylegan2",
    "make_generator",
]
