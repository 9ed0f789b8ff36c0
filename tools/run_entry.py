"""Run the attacks of a ``notebooks/runs.json`` entry without papermill or Jupyter (a lent GPU has neither), and
pack its out_dir (results and attack cache) into one archive.

    python tools/run_entry.py 01_budget_curve --set device=cuda --tar $OUT/01_budget_curve.tar.gz

Back on a machine with the notebooks, unpack the archive in the repository root and run the entry as usual
(``python -m gifd.reproduce figures --only 01_budget_curve``): every attack is then found in the cache (keys do
not depend on the device), and the notebook draws the figure and table in seconds. Supported notebooks:
``01_in_distribution`` and ``01_sweep``.

A second core on the same run: while ``python -m gifd.reproduce figures --only <run>`` attacks the batches in
order, a second process attacks them from the last, into the same cache (and its own out_dir); the two meet in
the middle, and the first finds the second's attacks in the cache:

    python tools/run_entry.py <run> --set batch_order='"reverse"' --set out_dir='"build/<run>_reverse"' \
        --set cache_dir='"figures/<run>/attacks"'
"""

from __future__ import annotations

import argparse
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gifd.reproduce import _parse_sets, check_parameters, load_runs  # noqa: E402

#: notebook parameters that only steer the notebook itself, not the run
NOTEBOOK_ONLY = {"interactive", "vary", "values", "log_x"}
#: run parameters the notebooks do not take, for splitting a run between processes that share one attack cache
RUN_ONLY = {"batch_order", "cache_dir"}


def run_entry(name: str, overrides: dict) -> Path:
    runs = load_runs()
    table = {**runs["figures"], **runs["data"]}
    if name not in table:
        raise SystemExit(f"error: unknown run {name!r}; known: {sorted(table)}")
    spec = table[name]
    params = {**spec["parameters"], **overrides}
    check_parameters(spec["notebook"], {k: v for k, v in params.items() if k not in RUN_ONLY}, name)
    from gifd.experiment import run_comparison
    from gifd.variants import compare_variants, sweep_variants

    run = {k: v for k, v in params.items() if k not in NOTEBOOK_ONLY}
    start = time.perf_counter()
    if spec["notebook"] == "01_sweep.ipynb":
        compare_variants(run, sweep_variants(params.get("vary", "budget"), params["values"]))
    elif spec["notebook"] == "01_in_distribution.ipynb":
        run_comparison(run)
    else:
        raise SystemExit(f"error: {spec['notebook']} is not supported here; use python -m gifd.reproduce")
    print(f"[run_entry] {name} done in {time.perf_counter() - start:.0f} s -> {params['out_dir']}", flush=True)
    return Path(params["out_dir"])


def pack(out_dir: Path, archive: Path) -> None:
    """``out_dir`` into a .tar.gz whose members keep their repository paths (unpack in the repository root)."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(out_dir, arcname=str(out_dir))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("name", help="a run of notebooks/runs.json")
    ap.add_argument("--set", action="append", default=[], help="override a parameter: KEY=JSON_VALUE")
    ap.add_argument("--tar", type=Path, default=None, help="pack out_dir into this .tar.gz afterwards")
    args = ap.parse_args(argv)
    out_dir = None
    try:
        out_dir = run_entry(args.name, _parse_sets(args.set))
    finally:  # a run stopped by its time limit still returns what it finished (the cache resumes it)
        if args.tar is not None:
            target = out_dir or Path({**load_runs()["figures"], **load_runs()["data"]}[args.name]["parameters"]
                                     ["out_dir"])  # fmt: skip
            target = Path(_parse_sets(args.set).get("out_dir", target))
            if target.exists():
                pack(target, args.tar)
                print(f"[run_entry] packed {target} into {args.tar}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
