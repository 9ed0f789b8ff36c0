"""Gradient-inversion attacks, one per paper. Each is ``Attack(model, task, **config)(update) -> AttackResult``."""

from .base import Attack, AttackConfig, AttackResult
from .dlg import DLG, DLGConfig
from .ggl import GGL, GGLConfig
from .gias import GIAS, GIASConfig
from .gifd import GIFD, GIFD_PRESETS, GIFDConfig
from .gradinversion import GIConfig, GradInversion
from .inverting_gradients import IGConfig, InvertingGradients

ATTACKS: dict[str, type[Attack]] = {
    "dlg": DLG,
    "ig": InvertingGradients,
    "gi": GradInversion,
    "ggl": GGL,
    "gias": GIAS,
    "gifd": GIFD,
}
#: attacks that need a staged generator (``generator=``)
GENERATIVE = ("ggl", "gias", "gifd")


def make_attack(method: str, model, task, *, generator=None, **config) -> Attack:
    """Build an attack by its short name (``dlg``, ``ig``, ``gi``, ``ggl``, ``gias``, ``gifd``)."""
    if method not in ATTACKS:
        raise ValueError(f"unknown method {method!r}; choose from {sorted(ATTACKS)}")
    if method in GENERATIVE:
        if generator is None:
            raise ValueError(f"method {method!r} needs a generator (a gifd.generators.StagedGenerator)")
        return ATTACKS[method](model, task, generator=generator, **config)
    return ATTACKS[method](model, task, **config)


__all__ = [
    "ATTACKS",
    "Attack",
    "AttackConfig",
    "AttackResult",
    "DLG",
    "DLGConfig",
    "GENERATIVE",
    "GGL",
    "GGLConfig",
    "GIAS",
    "GIASConfig",
    "GIFD",
    "GIFDConfig",
    "GIFD_PRESETS",
    "GIConfig",
    "GradInversion",
    "IGConfig",
    "InvertingGradients",
    "make_attack",
]
