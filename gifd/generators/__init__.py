"""Staged generators (GAN priors split into stages for GIFD)."""

from .base import SequentialStaged, StagedGenerator, State
from .dcgan import ConditionalDCGAN

__all__ = ["ConditionalDCGAN", "SequentialStaged", "StagedGenerator", "State"]
