"""Gradient-inversion attacks, one per paper. Each is ``Attack(model, task, **config)(update) -> AttackResult``."""

from .base import Attack, AttackConfig, AttackResult
from .dlg import DLG, DLGConfig
from .gradinversion import GIConfig, GradInversion
from .inverting_gradients import IGConfig, InvertingGradients

ATTACKS: dict[str, type[Attack]] = {"dlg": DLG, "ig": InvertingGradients, "gi": GradInversion}


def make_attack(method: str, model, task, **config) -> Attack:
    """Build an attack by its short name (``dlg``, ``ig``, ``gi``)."""
    if method not in ATTACKS:
        raise ValueError(f"unknown method {method!r}; choose from {sorted(ATTACKS)}")
    return ATTACKS[method](model, task, **config)


__all__ = [
    "ATTACKS",
    "Attack",
    "AttackConfig",
    "AttackResult",
    "DLG",
    "DLGConfig",
    "GIConfig",
    "GradInversion",
    "IGConfig",
    "InvertingGradients",
    "make_attack",
]
