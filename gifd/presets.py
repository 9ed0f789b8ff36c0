"""Attack presets: the papers' defaults, or the settings our tuning protocol chose.

Every method is tuned alike (``tools/tune.py``, tables in ``figures/tuning_<method>/``): on CIFAR-10 *training*
images only, at the budget of the comparison (1,000 loss evaluations), first the number of restarts (1, 2, 4)
with the paper's other settings, then three other knobs one at a time around the best restart count; the best
of those six configurations by mean PSNR becomes the method's entry in :data:`TUNED`. Generative methods are
tuned per generator (``method@family``); a pixel method tuned on another data set's training images too has a
``method@dataset`` entry (``tools/tune.py --dataset``). Runs use ``preset="tuned"`` by default and fall back to
the paper's settings for a method (or generator) that has no tuned entry; ``preset="paper"`` always uses the
papers'.

Rule for other budgets: the presets tuned at 1,000 evaluations are used at every budget (the budget curve in
``figures/01_budget_curve`` shows each method at 250, 1,000 and 4,000 with them); they are not re-tuned per run.
"""

from __future__ import annotations

__all__ = ["PRESETS", "TUNED", "tuned", "attack_overrides", "check_preset", "family"]

PRESETS = ("tuned", "paper")

#: method (or ``method@generator family``) -> config overrides chosen by ``tools/tune.py``; the comment names
#: the table that chose it
TUNED: dict[str, dict] = {
    "ig": {"restarts": 1, "total_variation": 1e-3},  # figures/tuning_ig/table.md: 23.87 dB (paper's R=4: 12.35)
    "gifd@dcgan": {"restarts": 2},  # figures/tuning_gifd_dcgan/table.md: 28.72 dB (paper's R=4: 27.11)
    "gias@dcgan": {"restarts": 1, "weight_lr": 1e-3},  # figures/tuning_gias_dcgan/table.md: 27.31 dB (R=4: 16.49)
    "ggl@dcgan": {"restarts": 4},  # figures/tuning_ggl_dcgan/table.md: 13.48 dB, the paper's setting won
    "gias@dcgan64": {"restarts": 4, "weight_lr": 1e-3},  # figures/tuning_gias_dcgan64/table.md: 16.65 dB (R=4: 16.36)
    "gifd@dcgan64": {"restarts": 2, "lr": 0.03},  # figures/tuning_gifd_dcgan64/table.md: 17.68 dB (R=4: 15.97)
    "ggl@dcgan64": {"restarts": 4, "sigma0": 0.25},  # figures/tuning_ggl_dcgan64/table.md: 14.53 dB (R=4: 13.96)
    "ig@tinyimagenet": {"restarts": 1, "total_variation": 1e-3},  # figures/tuning_ig_tinyimagenet/table.md: 18.01 dB
    "gi": {"restarts": 1, "bn_statistics": 0.0},  # figures/tuning_gi/table.md: 16.27 dB (paper's R=4: 9.64)
}


def check_preset(preset: str) -> None:
    """Refuse a preset name that is not one of :data:`PRESETS`."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose from {PRESETS}")


def family(generator) -> str:
    """The generator family a preset is tuned for (``dcgan``, ``dcgan64``, ``biggan``, ``stylegan2``; ``""``
    when unknown): the longest registry name its class name contains."""
    if generator is None:
        return ""
    from .generators import GENERATORS

    name = type(generator).__name__.lower()
    return max((key for key in GENERATORS if key in name), key=len, default="")


def tuned(method: str, generator=None, dataset: str | None = None) -> dict:
    """The tuned overrides of ``method``, or ``{}``: a generative method's for ``generator``'s family
    (``method@family``); a pixel method's for ``dataset`` where it was tuned on that data set (``method@dataset``,
    e.g. ``ig@tinyimagenet``), else its CIFAR-10 entry (``method``)."""
    fam = family(generator)
    if fam:
        return dict(TUNED.get(f"{method}@{fam}", {}))
    if dataset and f"{method}@{dataset}" in TUNED:
        return dict(TUNED[f"{method}@{dataset}"])
    return dict(TUNED.get(method, {}))


def attack_overrides(method: str, *, preset: str = "tuned", generator=None, restarts: int | None = None,
                     attack_config: dict | None = None, dataset: str | None = None) -> dict:  # fmt: skip
    """The configuration overrides of ``method`` in a run on ``dataset``: the preset's (:func:`tuned`), then the
    run's ``restarts`` (when given), then the run's own ``attack_config[method]`` (each later one wins)."""
    check_preset(preset)
    out = tuned(method, generator, dataset) if preset == "tuned" else {}
    if restarts is not None:
        out["restarts"] = restarts
    out.update((attack_config or {}).get(method, {}))
    return out
