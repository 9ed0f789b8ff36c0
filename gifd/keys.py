"""One key for every stored result: the attack cache (``out_dir/attacks``) and the grid records
(``records.jsonl``) are both keyed by :func:`result_key`, so a rerun with any setting changed never reuses a
result made under another.

A key covers the run's settings (every parameter but those that only say where or how to report:
:data:`NOT_IN_KEY`) and the attack's *resolved* configuration (:func:`attack_parts`): its config dataclass, the
values it resolved from presets (GIFD's radii, K and steps; GIAS's weight lr), its algorithm ``revision``
(raised when an attack's code changes its results; keys of revision 1 are those made before revisions existed,
so their caches stay valid) and, for a generator read from a file, the sha256 of that file's weights.

The data enter a key by what they hold, not where they lie (:func:`data_key`): the committed caches, made from
``../shared``, serve a reader whose copy of the same archive is anywhere else.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict

__all__ = ["NOT_IN_KEY", "result_key", "attack_parts", "attack_record", "label_parts", "digest", "data_key",
           "KNOWN_DATA"]  # fmt: skip

#: parameters that never change a result: outputs, display, caching switches, and the device (like the number of
#: threads, it changes rounding only: a result made on a GPU serves a CPU redraw of the same settings)
NOT_IN_KEY = frozenset({"methods", "out_dir", "progress", "stage_rows", "resume", "cache_dir", "reuse_from",
                        "image_dir", "device", "batch_order"})  # fmt: skip


#: the data roots the committed results were made from (``../shared``, beside the repository), by content
#: (:func:`gifd.data.data_fingerprint`): the same data at any other path keys as these paths did when they were made
KNOWN_DATA = {
    "5374c5cdf53a": "../shared/gifd_data/cifar10_yoongikim/cifar10_jpg_q75_train_test.tar.gz",
    "a0f5ad326e13": "../shared/gifd_data/mnist",
    "e895814db347": "../shared/gifd_data/tinyimagenet_rangeetpan/tiny_imagenet_train_wnids_words.tar.gz",
    "fcf068df1e1b": "../shared/gifd_data/tinyimagenet_rangeetpan/tiny_imagenet_val_wnids_words.tar.gz",
}
_DATA_KEYS: dict[tuple, str] = {}  # (resolved file, size, mtime) -> key: the fingerprint reads 2 MiB per archive


def data_key(data_root) -> str | None:
    """What a run's ``data_root`` adds to its key: one of :data:`KNOWN_DATA`'s paths for data of that content,
    ``"data:<fingerprint>"`` for other data, wherever it lies; the path as given when nothing is there (loading
    will name it) and ``None`` for the embedded samples."""
    if data_root is None:
        return None
    from pathlib import Path

    from .data import data_fingerprint

    def known(fingerprint: str) -> str:
        return KNOWN_DATA.get(fingerprint, f"data:{fingerprint}")

    path = Path(data_root).expanduser()
    if not path.exists():
        return str(data_root)
    if path.is_dir():  # a folder's fingerprint is its listing (no file is read): taken afresh every time
        return known(data_fingerprint(path))
    stat = path.stat()
    mark = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if mark not in _DATA_KEYS:
        _DATA_KEYS[mark] = known(data_fingerprint(path))
    return _DATA_KEYS[mark]


def digest(obj) -> str:
    """16 hex digits of the sha256 of ``obj`` as canonical JSON."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def result_key(settings: dict, *, skip: frozenset | set = frozenset(), **parts) -> str:
    """The key of a result made under ``settings`` (minus :data:`NOT_IN_KEY` and ``skip``) and ``parts`` (what
    the result is: the attack's :func:`attack_parts`, the images, the defense, ...)."""
    key = {k: v for k, v in settings.items() if k not in NOT_IN_KEY and k not in skip}
    if key.get("data_root") is not None:
        key["data_root"] = data_key(key["data_root"])
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
