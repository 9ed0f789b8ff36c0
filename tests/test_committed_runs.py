"""The committed figures are what their committed attack caches give with today's code. Each run below goes through
``tools/check_redraws.py``: copied with its caches into a scratch folder, its notebook redrawn there redraw-only
(``GIFD_REDRAW_ONLY``: a missing attack is an error, nothing is computed), and its per-image PSNR, SSIM, LPIPS and
label accuracy compared with the committed ``results.json``. It fails when a key changes (the attacks would be
missing), when an evaluation changes (PSNR, SSIM, LPIPS, Hungarian matching) and when a committed result and its
cache disagree. Needs ``../shared`` (CI has it)."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("check_redraws", ROOT / "tools" / "check_redraws.py")
check_redraws = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check_redraws)

#: the headline comparison, the two sweeps (the K ablation and the budget curve) and the batch sizes
RUNS = ["01_in_distribution_cifar10_16", "01_k_ablation", "01_budget_curve", "05_batch_size_cifar10"]


@pytest.mark.parametrize("run", RUNS)
def test_a_committed_run_redraws_from_its_cache(run, shared_data, tmp_path):
    status, detail = check_redraws.check(run, tmp_path)
    assert status == "equal", f"{run}: {status}: {detail}"
