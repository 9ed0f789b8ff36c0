"""Which committed runs redraw from their committed caches with today's code, and give the same numbers.

Each run (default: every data run of ``notebooks/runs.json`` whose ``results.json`` is committed) is copied, with
its caches (``attacks/``, ``records.jsonl``, ``settings/``), into ``build/redraw_check/<run>`` and redrawn there by
``python -m gifd.reproduce figures --only <run> --redraw-only --set out_dir=...``: nothing is computed, nothing
under ``figures/`` is written. Its per-image PSNR, SSIM, LPIPS and label accuracy are then compared with the
committed ``results.json``. Needs ``../shared`` (the data the runs were made from, for the ground truth).

    python tools/check_redraws.py                      # every committed data run (minutes each on a busy machine)
    python tools/check_redraws.py 01_k_ablation        # one run

Exit status 1 if a run that redrew gives other numbers (a run that stops, naming the missing result, is reported
but is not an error: the README lists those).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gifd.reproduce import committed_runs, load_runs  # noqa: E402

METRICS = ("psnr", "ssim", "lpips", "label_acc")


def differences(new: dict, old: dict, tol: float = 1e-5) -> list[str]:
    """What differs between two results' rows: their (method, image) order, or a metric beyond ``tol``."""
    if [(r["method"], r["image"]) for r in new["rows"]] != [(r["method"], r["image"]) for r in old["rows"]]:
        return ["the rows (method, image) differ"]
    out = []
    for a, b in zip(new["rows"], old["rows"]):
        for m in METRICS:
            x, y = a.get(m), b.get(m)
            if (x is None) != (y is None) or (x is not None and abs(x - y) > tol):
                out.append(f"{a['method']} image {a['image']} {m}: {x} (now) against {y} (committed)")
    return out


def check(run: str, scratch_root: Path = ROOT / "build" / "redraw_check") -> tuple[str, str]:
    """``("equal" | "differs" | "stops", detail)`` for the committed run ``run``, redrawn in ``scratch_root/run``."""
    spec = load_runs()["data"][run]
    committed = ROOT / spec["parameters"]["out_dir"]
    scratch = Path(scratch_root) / run
    shutil.rmtree(scratch, ignore_errors=True)
    shutil.copytree(committed, scratch)
    cmd = [sys.executable, "-m", "gifd.reproduce", "figures", "--only", run, "--redraw-only", "--set",
           f"out_dir={json.dumps(str(scratch))}"]  # fmt: skip
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip() or done.stdout.strip()).splitlines()[-1:] or ["no output"]
        return "stops", last[0][:300]
    old = json.loads((committed / "results.json").read_text())
    diff = differences(json.loads((scratch / "results.json").read_text()), old)
    if diff:
        return "differs", "; ".join(diff[:3]) + (f" (and {len(diff) - 3} more)" if len(diff) > 3 else "")
    return "equal", f"{len(old['rows'])} rows"


def main(argv: list[str]) -> int:
    runs = argv or committed_runs()
    unknown = [r for r in runs if r not in load_runs()["data"]]
    if unknown:
        raise SystemExit(f"unknown run {unknown[0]!r}; the data runs are {sorted(load_runs()['data'])}")
    print("| run | redraw | detail | seconds |\n|---|---|---|---|", flush=True)
    bad = 0
    for run in runs:
        start = time.perf_counter()
        status, detail = check(run)
        bad += status == "differs"
        print(f"| {run} | {status} | {detail} | {time.perf_counter() - start:.0f} |", flush=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
