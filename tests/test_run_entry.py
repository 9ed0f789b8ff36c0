"""tools/run_entry.py: a runs.json entry run without papermill; it takes the two run parameters that split a run
between processes (batch_order, cache_dir) and refuses any other parameter its notebook does not define."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("run_entry", ROOT / "tools" / "run_entry.py")
run_entry = importlib.util.module_from_spec(spec)
spec.loader.exec_module(run_entry)


def test_a_second_process_fills_the_first_ones_cache_and_unknown_parameters_are_refused(tmp_path, monkeypatch):
    tiny = {"notebook": "01_in_distribution.ipynb", "parameters": dict(
        dataset="samples", indices=[0, 1], budget=8, methods=["ig"], model="convnet", restarts=2, lpips=False,
        out_dir=str(tmp_path / "run"))}  # fmt: skip
    monkeypatch.setattr(run_entry, "load_runs", lambda: {"figures": {"tiny": tiny}, "data": {}})
    cache = tmp_path / "run" / "attacks"
    run_entry.run_entry("tiny", {"batch_order": "reverse", "out_dir": str(tmp_path / "second"),
                                 "cache_dir": str(cache)})  # fmt: skip
    assert len(list(cache.glob("ig-*.pt"))) == 2 and not (tmp_path / "second" / "attacks").exists()
    first = sorted(p.stat().st_mtime_ns for p in cache.glob("*.pt"))
    run_entry.run_entry("tiny", {})  # the first process finds both attacks: nothing rewritten
    assert sorted(p.stat().st_mtime_ns for p in cache.glob("*.pt")) == first
    with pytest.raises(SystemExit, match="unknown parameter 'batch_ordre'"):
        run_entry.run_entry("tiny", {"batch_ordre": "reverse"})
