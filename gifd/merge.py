"""One table from several runs: ``python -m gifd.reproduce table run_a run_b --out merged.md``.

Runs may only share a table when they attacked the same images under the same settings (:data:`COMPARABLE`);
a mismatch is an error naming the setting. ``run_b:gifd=gifd/cifar10`` renames a run's method (and its stage rows
``gifd[K=k]``), so that the same attack under two priors or generators sits in one table, paired image by image.
"""

from __future__ import annotations

import json
from pathlib import Path

from .experiment import summarise

__all__ = ["COMPARABLE", "merge_results"]

#: Settings two runs must share for their rows to sit in one table.
COMPARABLE = ("dataset", "indices", "batch_size", "budget", "seed", "model", "bn_mode", "protocol", "local_steps",
              "local_lr", "local_batch_size", "label_strategy", "image_size", "split")  # fmt: skip


def merge_results(paths: list[str | Path]) -> dict:
    """One results dictionary from several runs' ``results.json`` on the same images and settings
    (:data:`COMPARABLE`; a mismatch is an error naming the setting). A method in several runs is kept from
    the first; ``path:old=new[,old2=new2]`` renames a run's methods first. ``sources`` records each run's
    directory, commit and methods (as renamed)."""
    runs = []
    for spec in paths:
        path, renames = _run_spec(str(spec))
        file = Path(path) / "results.json" if Path(path).is_dir() else Path(path)
        if not file.is_file():
            raise FileNotFoundError(f"no results.json at {file}")
        runs.append((file, _renamed(json.loads(file.read_text()), renames, file)))
    if not runs:
        raise ValueError("no runs to merge")
    first_file, first = runs[0]
    for file, res in runs[1:]:
        for key in COMPARABLE:
            a, b = first["params"].get(key), res["params"].get(key)
            if a != b:
                raise ValueError(f"{file} differs from {first_file} in {key!r}: {b!r} vs {a!r}; not comparable")
    rows, methods, sources = [], [], []
    for file, res in runs:
        mine = [m for m in res["mean"] if m not in methods]
        rows += [r for r in res["rows"] if r["method"] in mine]
        methods += mine
        sources.append({"results": str(file), "methods": mine, "git_commit": res["versions"].get("git_commit")})
    mean, std = summarise(rows, methods)
    params = {k: first["params"].get(k) for k in COMPARABLE}
    merged = {"rows": rows, "mean": mean, "std": std, "params": params, "sources": sources}
    if "gifd" in mean and len(mean) > 1:
        from .stats import paired_against

        merged["paired"] = paired_against(merged, "gifd")
    return merged


def _run_spec(spec: str) -> tuple[str, dict[str, str]]:
    """``path`` or ``path:old=new[,old2=new2]`` -> (path, renames)."""
    path, sep, tail = spec.rpartition(":")
    if not sep or "=" not in tail:
        return spec, {}
    renames = dict(pair.split("=", 1) for pair in tail.split(","))
    if not all(old and new for old, new in renames.items()):
        raise ValueError(f"{spec!r}: a rename is old=new, both non-empty")
    return path, renames


def _renamed(res: dict, renames: dict[str, str], file: Path) -> dict:
    """``res`` with its methods renamed (``old`` and its stage rows ``old[K=k]``)."""
    if not renames:
        return res
    missing = [old for old in renames if old not in res["mean"]]
    if missing:
        raise ValueError(f"{file} has no method {missing[0]!r} to rename; it has {list(res['mean'])}")

    def name(method: str) -> str:
        base, bracket, rest = method.partition("[")
        return renames[base] + bracket + rest if base in renames else method

    return {**res, "rows": [{**r, "method": name(r["method"])} for r in res["rows"]],
            "mean": {name(m): v for m, v in res["mean"].items()}}  # fmt: skip
