"""Runs that vary one setting: several :func:`~gifd.experiment.run_comparison` runs on the same images merged into
one ``results.json`` (:func:`compare_variants`): the sweeps of ``01_sweep`` over one setting (:func:`sweep_variants`)
with the paired comparisons a sweep supports (:func:`sweep_pairs`), and ``03_label_mapping``'s variants
(:func:`mapping_variants`)."""

from __future__ import annotations

import time
from dataclasses import asdict

from .experiment import Comparison, ExperimentParams, run_comparison, write_results

__all__ = ["SWEEPABLE", "sweep_variants", "mapping_variants", "compare_variants", "sweep_pairs"]

#: settings a sweep may vary (:func:`sweep_variants`)
SWEEPABLE = ("budget", "gifd_last_stage", "restarts", "batch_size", "local_steps")


def sweep_variants(setting: str, values: list) -> dict[str, dict]:
    """The :func:`compare_variants` variants of a sweep over one ``setting``: ``{"setting=value": {setting:
    value}}``."""
    if setting not in SWEEPABLE:
        raise ValueError(f"cannot sweep {setting!r}; choose from {SWEEPABLE}")
    if not values:
        raise ValueError("values is empty")
    return {f"{setting}={v}": {setting: v} for v in values}


def mapping_variants(mappings: list[str], ablation: bool = True, only: list[str] | None = None) -> dict[str, dict]:
    """The variants of ``03_label_mapping``: ``map:<m>`` per label mapping; with ``ablation`` the last mapping
    also reports its stage rows (``map:<m>[K=k]``: best over stages 0..k) and ``no-l1`` is GIFD without l1 balls
    under that mapping; ``only`` keeps the named variants (to split one run over processes sharing out_dir)."""
    from .label_mapping import MAPPINGS

    unknown = [m for m in mappings if m not in MAPPINGS]
    if unknown or not mappings:
        raise ValueError(f"unknown label mapping {unknown[0] if unknown else None!r}; choose from {MAPPINGS}")
    variants = {f"map:{m}": {"label_mapping": m} for m in mappings}
    if ablation:
        variants[f"map:{mappings[-1]}"]["stage_rows"] = True
        variants["no-l1"] = {"label_mapping": mappings[-1], "gifd_radii": [0.0]}
    if only is not None:
        if set(only) - set(variants):
            raise ValueError(f"unknown variant in only={only}; the variants are {list(variants)}")
        variants = {name: variants[name] for name in only}
    return variants


def compare_variants(params: dict, variants: dict[str, dict], *, lpips_model=None) -> Comparison:
    """Run the methods under several settings (``variants``: name -> parameter overrides) on the same images
    and merge them into one ``results.json`` whose methods are the variant names (``variant/method`` for
    several methods; sub-runs in ``out_dir/<variant>/``, one attack cache in ``out_dir/attacks``)."""
    if not variants:
        raise ValueError("variants is empty")
    base = ExperimentParams.from_dict(params)
    single = len(base.methods) == 1
    if lpips_model is None and base.lpips:
        from .perceptual import load_lpips

        lpips_model = load_lpips("alex")
    from .checks import writable_dir

    start = time.perf_counter()
    out_dir = writable_dir(base.out_dir)
    # one attack cache for all variants: variants that amount to the same attack share its result
    subs_params = {name: {**asdict(base), **overrides, "out_dir": str(out_dir / name),
                          "cache_dir": base.cache_dir or str(out_dir / "attacks")}
                   for name, overrides in variants.items()}  # fmt: skip
    for name, sub in subs_params.items():  # every variant is checked before the first attack runs
        try:
            ExperimentParams.from_dict(sub)
        except (ValueError, TypeError) as err:
            raise type(err)(f"variant {name!r}: {err}") from None
    rows, recon, data, subs, attacks = [], {}, None, {}, []
    for name, overrides in variants.items():
        sub = subs_params[name]
        comp = run_comparison(sub, lpips_model=lpips_model)
        data = comp.data
        subs[name] = overrides

        def label(m: str, name: str = name) -> str:  # "variant" for one method (keeps "[K=k]" rows), else v/m
            return name + m[len(base.methods[0]) :] if single else f"{name}/{m}"

        rows += [{**r, "method": label(r["method"]), "variant": name} for r in comp.results["rows"]]
        attacks += [{**a, "variant": name} for a in comp.results.get("attacks", [])]
        recon.update({label(m): imgs for m, imgs in comp.reconstructions.items()})
    names = list(variants) if single else [f"{v}/{m}" for v in variants for m in base.methods]
    results = write_results(out_dir, rows, names, {**asdict(base), "variants": subs}, start, attacks=attacks)
    return Comparison(results, data, recon, out_dir)


def sweep_pairs(results: dict, reference: str = "gifd") -> list[tuple[str, str, str]]:
    """The paired comparisons of a :func:`compare_variants` run, as ``(a, b, label)`` for
    :func:`gifd.stats.pairs_table`: with several methods, ``reference`` against each other method within each
    variant (does its lead grow or shrink along the sweep?), then each method in every later variant against
    itself in the first (what the setting costs or buys each attack: batch sizes, budgets); with one method, each
    variant against the one before it (what each step of the setting adds) and, over three or more variants, the
    last against the first (what all the steps add together)."""
    names = list(results["params"]["variants"])
    methods = results["params"]["methods"]
    if len(methods) == 1:
        steps = [(b, a, f"{b} vs {a}") for a, b in zip(names, names[1:])]
        return steps + ([(names[-1], names[0], f"{names[-1]} vs {names[0]}")] if len(names) > 2 else [])
    within = [(f"{v}/{reference}", f"{v}/{m}", f"{v}: {reference} vs {m}") for v in names for m in methods
              if m != reference] if reference in methods else []  # fmt: skip
    along = [(f"{v}/{m}", f"{names[0]}/{m}", f"{m}: {v} vs {names[0]}") for m in methods for v in names[1:]]
    return within + along
