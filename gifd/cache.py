"""The attack cache: every finished (method, batch) attack of a run is kept in ``out_dir/attacks/`` (or
``cache_dir``), so an interrupted run resumes, several processes can share one run (each given a subset of the
methods), and redrawing a figure costs nothing.

Files are ``<method>-<first index>-<key>.pt`` (the key from :func:`gifd.keys.result_key`), written atomically
and read back with ``torch.load(weights_only=True)``. A file that cannot be read (a truncated copy, a disk that
filled up) is reported by name and recomputed, never half-used.
"""

from __future__ import annotations

import os
import shutil
import warnings
from dataclasses import asdict
from pathlib import Path

import torch

from .keys import attack_parts, label_parts, result_key

__all__ = ["attack_cache_path", "mapping_cache_path", "save_attack", "load_attack", "save_mapping", "load_mapping",
           "adopt", "plain", "REDRAW_ONLY", "NotCached", "refuse_if_redraw_only"]  # fmt: skip

#: the environment variable that ``python -m gifd.reproduce figures --redraw-only`` sets for its notebooks: every
#: result must then come from a cache (attack files, grid records, Flower settings), and a missing one is an error
REDRAW_ONLY = "GIFD_REDRAW_ONLY"

# GIFD's radii and K, the preset and the attack_config overrides reach the key through the attack's own resolved
# configuration (attack_parts); the mapping does not depend on them
_RUN_ONLY = frozenset({"gifd_radii", "gifd_last_stage", "lpips", "preset", "attack_config"})
_GENERATOR_SETTINGS = frozenset({"generator", "label_mapping", "mapping_probes"})


def attack_cache_path(out_dir: Path, params, attack, indices: list[int]) -> Path:
    """Where the result of ``attack`` on the batch ``indices`` of the run ``params`` (an
    :class:`~gifd.experiment.ExperimentParams`) is kept."""
    from .attacks import GENERATIVE

    skip = _RUN_ONLY | (frozenset() if attack.name in GENERATIVE else _GENERATOR_SETTINGS)
    parts = {**attack_parts(attack), **label_parts(attack.config.label_strategy, len(indices))}
    return _path(out_dir, params, attack.name, indices, skip, **parts)


def mapping_cache_path(out_dir: Path, params, indices: list[int]) -> Path:
    """Where the ``search`` label mapping chosen for the batch ``indices`` is kept (it costs gradient-matching
    evaluations, so a redraw from the attack cache should not repeat it; the other mappings are free)."""
    return _path(out_dir, params, "mapping", indices, _RUN_ONLY, kind="label_mapping")


def _path(out_dir: Path, params, prefix: str, indices: list[int], skip: frozenset, **parts) -> Path:
    # the device is not a setting of the result (like the thread count it only changes rounding): a result made on
    # a GPU is found by a CPU run of the same settings; every key has the "cpu" the earliest keys were made with
    key = result_key(asdict(params), skip=skip | {"device"}, indices=list(indices), device="cpu", **parts)
    folder = Path(params.cache_dir) if params.cache_dir else Path(out_dir) / "attacks"
    return folder / f"{prefix}-{indices[0]}-{key}.pt"


class NotCached(RuntimeError):
    """A redraw-only run met a result that is not in its cache."""


def refuse_if_redraw_only(what: str, where) -> None:
    """Raise :class:`NotCached` naming ``what`` (the result about to be computed) and ``where`` (the cache file or
    folder it was looked up in) when :data:`REDRAW_ONLY` is set: a redraw then stops before it computes anything
    or writes a results file, instead of quietly starting hours of attacks (a key that changed, a cache that was
    not committed or not unpacked)."""
    if os.environ.get(REDRAW_ONLY, "") not in ("", "0"):
        raise NotCached(f"redraw only: {what} is not in the cache ({where}); a redraw computes nothing, so either "
                        "the cache was not committed or unpacked there, or a setting or key changed since it was "
                        f"made (run without --redraw-only, or unset {REDRAW_ONLY}, to compute it)")  # fmt: skip


def plain(obj):
    """``obj`` reduced to what ``torch.load(weights_only=True)`` reads back (tensors, numbers, strings,
    lists, dicts); anything else (callables, modules) becomes ``None``."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    for kind in (bool, int, float, str):  # subclasses (torch's TorchVersion is a str) become their base
        if isinstance(obj, kind):
            return kind(obj)
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    return None


def _save(path: Path, record) -> None:
    """Write a dataclass record atomically (a killed run never leaves a half-written file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # two processes sharing a cache never share a tmp
    torch.save({k: plain(v) for k, v in asdict(record).items()}, tmp)
    tmp.replace(path)


def _load(path: Path | None, cls):
    """The ``cls`` record cached at ``path``, or ``None`` when there is none or it cannot be read (a warning
    names the file; the caller recomputes and overwrites it)."""
    if path is None or not path.is_file():
        return None
    try:
        return cls(**torch.load(path, weights_only=True))
    except Exception as err:  # a truncated or foreign file: zip, pickle and field errors alike
        warnings.warn(f"cached result {path} cannot be read ({type(err).__name__}: {err}); recomputing it",
                      stacklevel=3)  # fmt: skip
        return None


def save_attack(path: Path, result) -> None:
    """Write one attack's :class:`~gifd.attacks.base.AttackResult` atomically."""
    _save(path, result)


def load_attack(path: Path | None):
    """The cached :class:`~gifd.attacks.base.AttackResult` at ``path``, or ``None``."""
    from .attacks.base import AttackResult

    return _load(path, AttackResult)


def adopt(path: Path | None, reuse_from: list[str] | None) -> None:
    """Copy into this run's cache, when ``path`` is missing there, the file of the same name from the first of the
    attack caches ``reuse_from`` (other runs' ``attacks`` folders) that has it: the name holds the key, which
    covers every setting, so the file is the result this run would compute (e.g. a sweep's budget-1000 point from
    the comparison run at budget 1000). The copy is read back like any cached file."""
    if path is None or path.is_file():
        return
    for folder in reuse_from or []:
        other = Path(folder) / path.name
        if other.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(".partial")
            shutil.copyfile(other, partial)
            partial.replace(path)
            return


def save_mapping(path: Path, mapping) -> None:
    _save(path, mapping)


def load_mapping(path: Path | None):
    """The cached :class:`~gifd.label_mapping.LabelMap` at ``path``, or ``None``."""
    from .label_mapping import LabelMap

    return _load(path, LabelMap)
