"""One key for every stored result: the attack cache (``out_dir/attacks``) and the grid records
(``records.jsonl``) are both keyed by :func:`result_key`, so a rerun with any setting changed never reuses a
result made under another.

A key covers the run's settings (every parameter but those that only say where or how to report:
:data:`NOT_IN_KEY`) and the attack's *resolved* configuration (:func:`attack_parts`): its config dataclass, the
values it resolved from presets (GIFD's radii, K and steps; GIAS's weight lr), its algorithm ``revision``
(raised when an attack's code changes its results; keys of revision 1 are those made before revisions existed,
so their caches stay valid) and, for a generator read from a file, the sha256 of that file's weights.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict

__all__ = ["NOT_IN_KEY", "result_key", "attack_parts", "attack_record", "label_parts", "digest"]

#: parameters that never change a result: outputs, display, caching switches, and the device (like the number of
#: threads, it changes rounding only: a result made on a GPU serves a CPU redraw of the same settings)
NOT_IN_KEY = frozenset({"methods", "out_dir", "progress", "stage_rows", "resume", "cache_dir", "reuse_from",
                        "image_dir", "device", "batch_order"})  # fmt: skip


def digest(obj) -> str:
    """16 hex digits of the sha256 of ``obj`` as canonical JSON."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def result_key(settings: dict, *, skip: frozenset | set = frozenset(), **parts) -> str:
    """The key of a result made under ``settings`` (minus :data:`NOT_IN_KEY` and ``skip``) and ``parts`` (what
    the result is: the attack's :func:`attack_parts`, the images, the defense, ...)."""
    key = {k: v for k, v in settings.items() if k not in NOT_IN_KEY and k not in skip}
    key.update(parts)
    return digest(key)


def attack_parts(attack) -> dict:
    """What identifies an attack beyond the run's settings: its name, configuration (minus ``progress``),
    resolved presets, revision (when above 1) and generator weights (when read from a file)."""
    from .cache import plain

    resolved = {k: v for k, v in vars(attack).items() if isinstance(v, (bool, int, float, str, tuple, list))}
    config = {k: v for k, v in plain(asdict(attack.config)).items() if k != "progress"}
    parts = {"method": attack.name, "config": config, "resolved": resolved}
    if getattr(attack, "revision", 1) > 1:
        parts["revision"] = attack.revision
    source = getattr(getattr(attack, "G", None), "source_sha256", None)
    if source:
        parts["generator_sha256"] = source
    return parts


def label_parts(label_strategy: str, batch_size: int) -> dict:
    """What a batch's labels add to its key: for ``auto`` on more than one image, the revision of ``auto``'s rule
    (:data:`gifd.labels.AUTO_REVISION`; revision 1, Yin et al.'s rule, adds nothing, so its keys stay as made)."""
    from .labels import AUTO_REVISION

    if label_strategy != "auto" or batch_size < 2 or AUTO_REVISION < 2:
        return {}
    return {"auto_labels": AUTO_REVISION}


def attack_record(attack) -> dict:
    """:func:`attack_parts` as plain JSON values (what a results.json records of each attack; keys made from it
    equal those made from the parts themselves)."""
    return json.loads(json.dumps(attack_parts(attack), default=str))
