"""The committed figures are what their committed attack caches give with today's code. Each run below is redrawn
redraw-only (``GIFD_REDRAW_ONLY``: a missing attack is an error, nothing is computed) from ``figures/<run>/attacks``
into a scratch folder, and its per-image metrics must equal the committed ``results.json``. It fails when a key
changes (the attacks would be missing), when an evaluation changes (PSNR, SSIM, LPIPS, Hungarian matching) and
when a committed result and its cache disagree. Needs ``../shared`` (CI has it)."""

import json
from dataclasses import fields
from pathlib import Path

import pytest

from gifd.cache import REDRAW_ONLY
from gifd.experiment import ExperimentParams, run_comparison
from gifd.reproduce import ROOT, load_runs
from gifd.variants import compare_variants, sweep_variants

#: the headline comparison, and the sweeps once their attack files are all committed
RUNS = ["01_in_distribution_cifar10_16", "01_k_ablation"]


def _redraw(run: str, out_dir: Path) -> dict:
    spec = load_runs()["data"][run]
    params = dict(spec["parameters"])
    committed = ROOT / params["out_dir"]
    params["data_root"] = str(ROOT / params["data_root"])
    params.update(out_dir=str(out_dir), cache_dir=str(committed / "attacks"), progress=False)
    known = {f.name for f in fields(ExperimentParams)}
    if spec["notebook"] == "01_sweep.ipynb":
        variants = sweep_variants(params["vary"], params["values"])
        return compare_variants({k: v for k, v in params.items() if k in known}, variants).results
    assert spec["notebook"] == "01_in_distribution.ipynb", spec["notebook"]
    return run_comparison({k: v for k, v in params.items() if k in known}).results


@pytest.mark.parametrize("run", RUNS)
def test_a_committed_run_redraws_from_its_cache(run, shared_data, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv(REDRAW_ONLY, "1")
    old = json.loads((ROOT / load_runs()["data"][run]["parameters"]["out_dir"] / "results.json").read_text())
    new = _redraw(run, tmp_path / run)
    assert [(r["method"], r["image"]) for r in new["rows"]] == [(r["method"], r["image"]) for r in old["rows"]]
    for a, b in zip(new["rows"], old["rows"]):
        for metric in ("psnr", "ssim", "lpips", "label_acc"):
            assert a[metric] == pytest.approx(b[metric], abs=1e-5), (run, a["method"], a["image"], metric)
