"""gifd — GIFD (Gradient Inversion over Feature Domains, Fang et al., ICCV 2023) and its baselines.

A thin module behind a notebook compendium: victim models and client updates (:mod:`gifd.fl`,
:mod:`gifd.models`), label inference (:mod:`gifd.labels`), gradient matching (:mod:`gifd.matching`),
the attacks (:mod:`gifd.attacks`), evaluation (:mod:`gifd.metrics`, :mod:`gifd.perceptual`), data
(:mod:`gifd.data`) and the experiment runner the notebooks call (:mod:`gifd.experiment`).
"""

__version__ = "0.1.0"

from .attacks import ATTACKS, DLG, AttackResult, GradInversion, InvertingGradients, make_attack
from .data import ImageSet, load_images
from .fl import FLTask, LocalTraining, SharedUpdate, ThreatModel, client_update
from .labels import infer_labels
from .models import make_model

__all__ = [
    "ATTACKS",
    "AttackResult",
    "DLG",
    "FLTask",
    "GradInversion",
    "ImageSet",
    "InvertingGradients",
    "LocalTraining",
    "SharedUpdate",
    "ThreatModel",
    "client_update",
    "infer_labels",
    "load_images",
    "make_attack",
    "make_model",
]
