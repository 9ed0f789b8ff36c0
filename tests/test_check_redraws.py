"""tools/check_redraws.py: what it calls a difference between a redraw and the committed results."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("check_redraws", ROOT / "tools" / "check_redraws.py")
check_redraws = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check_redraws)


def test_a_redraw_differs_by_a_metric_beyond_tolerance_a_missing_value_or_the_rows_order():
    rows = [{"method": "ig", "image": 0, "psnr": 20.0, "ssim": 0.5, "lpips": 0.1, "label_acc": 1.0},
            {"method": "gifd", "image": 0, "psnr": 25.0, "ssim": 0.8, "lpips": 0.05, "label_acc": 1.0}]  # fmt: skip
    old = {"rows": rows}
    assert check_redraws.differences({"rows": [dict(r) for r in rows]}, old) == []
    near = [dict(r) for r in rows]
    near[1]["psnr"] += 5e-6  # rounding: not a difference
    assert check_redraws.differences({"rows": near}, old) == []
    moved = [dict(r) for r in rows]
    moved[1]["ssim"] += 1e-3
    moved[0]["lpips"] = None  # LPIPS left out now, present then
    assert check_redraws.differences({"rows": moved}, old) == [
        "ig image 0 lpips: None (now) against 0.1 (committed)",
        "gifd image 0 ssim: 0.801 (now) against 0.8 (committed)",
    ]
    assert check_redraws.differences({"rows": rows[::-1]}, old) == ["the rows (method, image) differ"]
    assert check_redraws.differences({"rows": rows[:1]}, old) == ["the rows (method, image) differ"]
