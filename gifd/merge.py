"""One table from several runs: ``python -m gifd.reproduce table run_a run_b --out merged.md``.

Runs may only share a table when they attacked the same images under the same settings (:data:`COMPARABLE`);
a mismatch is an error naming the setting.
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
    the first. ``sources`` records each run's directory, commit and methods."""
    runs = []
    for path in paths:
        file = Path(path) / "results.json" if Path(path).is_dir() else Path(path)
        if not file.is_file():
            raise FileNotFoundError(f"no results.json at {file}")
        runs.append((file, json.loads(file.read_text())))
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
