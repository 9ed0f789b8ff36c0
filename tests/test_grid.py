import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gifd.defense_grid import defense_job, defense_results, make_defense_grid, undefended_rows
from gifd.grid import cell_strips, load_records, make_grid, run_grid

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import grid_helpers  # noqa: E402


def test_grid_is_the_cross_product_with_an_undefended_baseline():
    jobs = make_grid(["ig", "gifd"], {"pruning": [0.5, 0.9], "clipping": [1.0]}, [0, 1, 2, 3], 2, seeds=[0, 1])
    assert len(jobs) == 2 * (1 + 3) * 2 * 2
    assert sorted({(j.images, j.seed) for j in jobs}) == [((0, 1), 0), ((0, 1), 1), ((2, 3), 1), ((2, 3), 2)]
    assert len({j.key for j in jobs}) == len(jobs)
    assert sum(j.defense is None for j in jobs) == 2 * 2 * 2
    with pytest.raises(ValueError, match="unknown defense 'mixup'"):
        make_grid(["ig"], {"mixup": [0.1]}, [0], 1)
    with pytest.raises(ValueError, match="unknown backend"):
        run_grid(jobs[:1], grid_helpers.slow_job, "/tmp/never", backend="slurm")


def test_resume_skips_finished_jobs_and_completes_the_rest_after_a_kill(tmp_path):
    out, marker = tmp_path / "grid", tmp_path / "ran.txt"
    env = {**os.environ, "PYTHONPATH": str(HERE) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-m", "grid_helpers", str(out), str(marker), "1.0"], env=env)
    deadline = time.time() + 120
    while time.time() < deadline and len(load_records(out)) < 2:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished_before = set(load_records(out))
    assert 2 <= len(finished_before) < 6 and not (out / "finished").exists()
    ran_before = marker.read_text().splitlines()

    jobs = make_grid(["ig"], None, list(range(6)), 1, marker=str(marker))
    records = run_grid(jobs, grid_helpers.slow_job, out, progress=False)
    assert [r["value"] for r in records] == [11 * i for i in range(6)]  # seed 0 + batch index, image i
    ran_after = marker.read_text().splitlines()[len(ran_before) :]
    assert not set(ran_after) & finished_before  # finished jobs were not run again
    assert set(ran_after) | finished_before == {j.key for j in jobs}
    assert run_grid(jobs, grid_helpers.slow_job, out, progress=False) == records  # nothing left to run
    assert len(marker.read_text().splitlines()) == len(ran_before) + len(ran_after)


def _strip(records):
    return [{k: v for k, v in r.items() if k not in ("seconds", "job_seconds", "pid")} for r in records]


def _same(a, b) -> bool:
    """Equal records up to float32 rounding: a Ray worker runs torch with another thread count, which changes the
    reduction order and so the last digits of losses and metrics (never the keys, labels or evaluations)."""
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-7)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


def test_ray_and_inprocess_backends_give_the_same_records(tmp_path):
    ray = pytest.importorskip("ray")
    jobs = make_grid(["ig"], {"pruning": [0.5]}, [0, 1], 1, seeds=[3], dataset="samples", model="convnet",
                     budget=8, restarts=2, lpips=False)  # fmt: skip
    assert len(jobs) == 4
    local = run_grid(jobs, defense_job, tmp_path / "local", progress=False)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        remote = run_grid(jobs, defense_job, tmp_path / "ray", backend="ray", progress=False)
    finally:
        ray.shutdown()
    assert _same(_strip(remote), _strip(local)), (_strip(remote), _strip(local))
    lines = (tmp_path / "ray" / "records.jsonl").read_text().splitlines()
    assert len(lines) == 4 and all(json.loads(x)["key"] for x in lines)
    assert {r["defense"] for r in local} == {None, "pruning"}


def test_undefended_cells_can_come_from_a_comparison_run_with_the_same_settings(tmp_path):
    """The defenses grid may take its undefended cells from an earlier 01 run instead of recomputing them.
    That is only sound if a grid job makes the same update and attack as run_comparison: checked here."""
    from gifd.experiment import run_comparison

    settings = dict(dataset="samples", data_root=None, indices=[0, 1], batch_size=1, budget=16, seed=5,
                    model="convnet", restarts=2)  # fmt: skip
    ref = run_comparison({**settings, "methods": ["ig", "gifd"], "out_dir": str(tmp_path / "ref"),
                          "progress": False, "lpips": False})  # fmt: skip
    grid = dict(settings, methods=["ig", "gifd"], generator="bundled", baseline=False)
    jobs = make_defense_grid(["ig", "gifd"], None, [0, 1], 1, seeds=[5], dataset="samples", model="convnet",
                             model_seed=5, budget=16, restarts=2, lpips=False,
                             image_dir=str(tmp_path / "img"))  # fmt: skip
    configs = {j.attack: json.loads(j.config) for j in jobs}
    rows, sources = undefended_rows([tmp_path / "ref"], grid, configs)
    records = run_grid(jobs, defense_job, tmp_path / "grid", progress=False)
    strips = cell_strips(tmp_path / "img", jobs)
    assert [t for t, _ in strips] == ["ig none", "gifd none"] and strips[1][1].shape == (2, 3, 32, 32)
    recomputed = {(r["attack"], r["images"][0]): r["psnr"][0] for r in records}
    assert len(rows) == 4 and sources[0]["attacks"] == ["ig", "gifd"]
    for row in rows:
        assert row["psnr"] == pytest.approx(recomputed[(row["attack"], row["image"])], rel=1e-5)
    assert {r["method"] for r in ref.results["rows"]} == {"ig", "gifd"}

    other = json.loads(json.dumps(configs))
    other["gifd"]["resolved"]["radii"] = [0, 5, 5, 5]  # another GIFD preset than the reference ran with
    with pytest.raises(ValueError, match="'gifd' ran with resolved"):
        undefended_rows([tmp_path / "ref"], grid, other)
    # a grid on the reference's first images takes their rows (same batches, same seeds); others are refused
    first, _ = undefended_rows([tmp_path / "ref"], {**grid, "indices": [0]}, configs)
    assert {r["image"] for r in first} == {0} and len(first) == 2
    with pytest.raises(ValueError, match="'indices' is \\[0, 1\\], the grid has \\[1\\]"):
        undefended_rows([tmp_path / "ref"], {**grid, "indices": [1]}, configs)
    with pytest.raises(ValueError, match="'budget' is 16, the grid has 17"):
        undefended_rows([tmp_path / "ref"], {**grid, "budget": 17})
    with pytest.raises(ValueError, match="baseline=True"):
        undefended_rows([tmp_path / "ref"], {**grid, "baseline": True})
    with pytest.raises(FileNotFoundError, match="no results.json"):
        undefended_rows([tmp_path / "nowhere"], grid)
    # a reference made before a setting existed ran its default: accepted while the grid keeps the default
    older = json.loads((tmp_path / "ref" / "results.json").read_text())
    del older["params"]["label_mapping"]
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "results.json").write_text(json.dumps(older))
    assert [r["psnr"] for r in undefended_rows([tmp_path / "old"], grid, configs)[0]] == [r["psnr"] for r in rows]
    older["params"]["label_mapping"] = None  # but a recorded value that differs is refused
    (tmp_path / "old" / "results.json").write_text(json.dumps(older))
    with pytest.raises(ValueError, match="'label_mapping' is None"):
        undefended_rows([tmp_path / "old"], grid, configs)
    # the data are compared by content, as the keys do: the same archive at another path is the same data
    made, copy, other = (tmp_path / f"{n}.tar.gz" for n in "xyz")
    for path, payload in ((made, b"abc"), (copy, b"abc"), (other, b"abd")):
        path.write_bytes(payload)
    older["params"].update(label_mapping="identity", data_root=str(made))
    (tmp_path / "old" / "results.json").write_text(json.dumps(older))
    assert len(undefended_rows([tmp_path / "old"], {**grid, "data_root": str(copy)}, configs)[0]) == 4
    with pytest.raises(ValueError, match="'data_root' is '.*x.tar.gz', the grid has '.*z.tar.gz'"):
        undefended_rows([tmp_path / "old"], {**grid, "data_root": str(other)}, configs)
    with pytest.raises(ValueError, match="both in the grid"):
        defense_results(records, grid, 0.0, tmp_path / "out", (rows, sources))
    res = defense_results([], grid, 0.0, tmp_path / "out", (rows, sources))
    assert set(res["mean"]) == {"ig@none", "gifd@none"} and res["sources"] == sources


def test_an_empty_grid_is_an_error():
    with pytest.raises(ValueError, match="grid is empty"):
        make_grid(["ig"], None, [0], 1, baseline=False)


def test_a_dpsgd_record_carries_its_privacy_guarantee(tmp_path):
    from gifd.defenses import dp_epsilon

    jobs = make_grid(["ig"], {"dpsgd": [2.0]}, [0], 1, baseline=False, dataset="samples", model="convnet", budget=8,
                     restarts=2, lpips=False)  # fmt: skip
    records = run_grid(jobs, defense_job, tmp_path, progress=False)
    assert records[0]["epsilon"] == pytest.approx(dp_epsilon(2.0)) and records[0]["delta"] == 1e-5
    rows = defense_results(records, {}, 0.0, tmp_path)["rows"]
    assert rows[0]["method"] == "ig@dpsgd=2" and rows[0]["epsilon"] == records[0]["epsilon"]
