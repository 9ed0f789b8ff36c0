"""One-command reproduction: run the notebooks headlessly with papermill.

    python -m gifd.reproduce figures                 # every figure on the embedded default
    python -m gifd.reproduce figures --committed     # then every committed data run redrawn (make figures)
    python -m gifd.reproduce figures --only 01_in_distribution_cifar10 --set data_root=/path/to/cifar
    python -m gifd.reproduce figures --set budget=4000 --set device=cuda   # paper-scale reruns
    python -m gifd.reproduce figures --only 01_k_ablation --redraw-only   # from the committed cache, or an error
    python -m gifd.reproduce nbval-prepare build/nbval  # parameterised copies that nbval executes
    python -m gifd.reproduce strip                     # strip notebook outputs (kept diff-friendly)
    python -m gifd.reproduce table figures/run_a figures/run_b --out figures/a_and_b.md   # one table, two runs

Runs are listed in ``notebooks/runs.json``; executed notebooks go to ``build/executed/``, results and
figures to each run's ``out_dir`` (under ``figures/``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from .cache import REDRAW_ONLY

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"


def load_runs() -> dict:
    return json.loads((NOTEBOOKS / "runs.json").read_text())


def _parse_sets(items: list[str]) -> dict:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set expects KEY=VALUE, got {item!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def check_parameters(notebook: str, params: dict, run: str = "") -> None:
    """Refuse a parameter the notebook's parameters cell does not define (papermill would only warn)."""
    import papermill as pm

    known = pm.inspect_notebook(str(NOTEBOOKS / notebook))
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise SystemExit(f"error: unknown parameter {unknown[0]!r} for {notebook}" + (f" (run {run!r})" if run else "")
                         + f"; its parameters are {sorted(known)}")  # fmt: skip


def run_figures(only: list[str] | None, overrides: dict, include_data: bool = False) -> None:
    runs = load_runs()
    table = dict(runs["figures"])
    if include_data or only:
        table.update(runs["data"])
    names = only or list(runs["figures"])
    unknown = [n for n in names if n not in table]
    if unknown:
        raise SystemExit(f"unknown run {unknown[0]!r}; known: {sorted(table)}")
    for name in names:  # every parameter is checked against its notebook before the first run starts
        check_parameters(table[name]["notebook"], {**table[name]["parameters"], **overrides}, name)
    for name in names:
        _execute(name, table[name], overrides)


def committed_runs() -> list[str]:
    """The data runs of ``notebooks/runs.json`` whose ``results.json`` is committed (tracked by git), in order;
    outside a git checkout (an image without git), those whose ``results.json`` is there."""
    import subprocess

    data = load_runs()["data"]
    files = {name: f"{spec['parameters'].get('out_dir')}/results.json" for name, spec in data.items()}
    try:
        listed = subprocess.run(["git", "ls-files", "figures"], cwd=ROOT, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return [name for name, file in files.items() if (ROOT / file).is_file()]
    tracked = set(listed.stdout.split())
    return [name for name, file in files.items() if file in tracked]


def redraw_committed() -> tuple[list[str], list[str]]:
    """Redraw every committed data run from its committed caches (redraw-only: no attack is computed; the prior
    figures recompute their projections, a minute or two). A run whose
    data is not here (``data_root``, e.g. ``../shared`` on a reader's machine) is skipped, and one whose cache lacks
    an attack (made by an older revision) or fails otherwise is reported, each in one line; returns (redrawn, not
    redrawn)."""
    import papermill as pm

    runs = load_runs()["data"]
    done, left = [], []
    os.environ[REDRAW_ONLY] = "1"  # the notebooks' kernels inherit it (gifd.cache.refuse_if_redraw_only)
    try:
        for name in committed_runs():
            root = runs[name]["parameters"].get("data_root")
            if root and not (ROOT / root).exists():
                print(f"[gifd] {name}: skipped, its data {root} is not here", flush=True)
                left.append(name)
                continue
            try:
                _execute(name, runs[name], {})
                done.append(name)
            except SystemExit as err:  # NotCached: the message names the missing result
                print(f"[gifd] {name}: not redrawn: {err}", flush=True)
                left.append(name)
            except pm.PapermillExecutionError as err:  # any other error of the notebook, in one line
                print(f"[gifd] {name}: not redrawn: {err.ename}: {err.evalue}", flush=True)
                left.append(name)
    finally:
        os.environ.pop(REDRAW_ONLY, None)
    print(f"[gifd] committed data runs: {len(done)} redrawn, {len(left)} not ({', '.join(left) or 'none'})")
    return done, left


def _execute(name: str, spec: dict, overrides: dict) -> None:
    import papermill as pm

    executed = ROOT / "build" / "executed"
    executed.mkdir(parents=True, exist_ok=True)
    params = {**spec["parameters"], **overrides}
    start = time.perf_counter()
    print(f"[gifd] {name}: {spec['notebook']} with {json.dumps(params)}", flush=True)
    try:
        pm.execute_notebook(
            str(NOTEBOOKS / spec["notebook"]), str(executed / f"{name}.ipynb"), parameters=params, cwd=str(ROOT),
            progress_bar=False,
        )  # fmt: skip
    except pm.PapermillExecutionError as err:
        if err.ename == "NotCached":  # one line, not the kernel's traceback: the message names the result
            raise SystemExit(f"error: {name}: {err.evalue}") from None
        raise
    print(f"[gifd] {name}: done in {time.perf_counter() - start:.0f} s -> {params.get('out_dir')}", flush=True)


def nbval_prepare(dest: Path) -> None:
    """Write every notebook with its small test parameters injected (papermill's parameterisation, no run)."""
    import nbformat
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    tests = load_runs()["test"]
    dest.mkdir(parents=True, exist_ok=True)
    notebooks = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))
    missing = [n for n in notebooks if n not in tests]
    if missing:
        raise SystemExit(f"notebook {missing[0]} has no test parameters in notebooks/runs.json")
    for name in notebooks:
        check_parameters(name, tests[name])
        nb = load_notebook_node(str(NOTEBOOKS / name))
        nb = parameterize_notebook(nb, tests[name])
        nbformat.write(nb, dest / name)
    print(f"[gifd] {len(notebooks)} notebooks with test parameters in {dest}")


def strip_outputs() -> None:
    """Remove outputs and execution counts from every notebook (they are kept diff-friendly)."""
    import nbformat

    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = [], None
            cell.source = "\n".join(line.rstrip() for line in cell.source.splitlines())
        nbformat.write(nb, path)


def merged_table(runs: list[str], out: Path | None) -> str:
    from .merge import merge_results
    from .plots import results_table
    from .provenance import write_json

    merged = merge_results(runs)
    table = results_table(merged)
    if "paired" in merged:
        from .stats import paired_sections

        table += paired_sections(merged, "gifd")
    print(table)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        command = "python -m gifd.reproduce table " + " ".join(runs) + f" --out {out}"
        out.write_text(f"<!-- made by `{command}` -->\n{table}\n")
        write_json(out.with_suffix(".json"), {**merged, "command": command})
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gifd.reproduce", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    fig = sub.add_parser("figures", help="run notebooks with papermill to regenerate figures")
    fig.add_argument("--only", action="append", help="a run name from notebooks/runs.json (repeatable)")
    fig.add_argument("--set", action="append", default=[], help="override a parameter: KEY=JSON_VALUE")
    fig.add_argument("--all", action="store_true", help="also the runs that need a data set")
    fig.add_argument(
        "--committed",
        action="store_true",
        help="then redraw every committed data run from its cache (redraw-only; skipped where its data is not here)",
    )
    fig.add_argument(
        "--redraw-only",
        action="store_true",
        help="draw from the committed caches only: a result missing there is an error, never computed",
    )
    prep = sub.add_parser("nbval-prepare", help="parameterised notebook copies for nbval")
    prep.add_argument("dest", type=Path)
    sub.add_parser("strip", help="strip outputs from the notebooks")
    tab = sub.add_parser("table", help="one table from several runs on the same images and settings")
    tab.add_argument("runs", nargs="+", help="run directories (or results.json files)")
    tab.add_argument("--out", type=Path, help="also write the markdown table (and merged results beside it)")
    args = parser.parse_args(argv)
    if args.cmd == "figures":
        if args.redraw_only:  # the notebooks' kernels inherit it (gifd.cache.refuse_if_redraw_only)
            os.environ[REDRAW_ONLY] = "1"
        run_figures(args.only, _parse_sets(args.set), include_data=args.all)
        if args.committed:
            redraw_committed()
    elif args.cmd == "strip":
        strip_outputs()
    elif args.cmd == "table":
        try:
            merged_table(args.runs, args.out)
        except (ValueError, FileNotFoundError) as err:
            raise SystemExit(f"error: {err}") from None
    else:
        nbval_prepare(args.dest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
