import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gifd.grid import defense_job, load_records, make_grid, run_grid

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import grid_helpers  # noqa: E402


def test_grid_is_the_cross_product_with_an_undefended_baseline():
    jobs = make_grid(["ig", "gifd"], {"pruning": [0.5, 0.9], "clipping": [1.0]}, [0, 1, 2, 3], 2, seeds=[0, 1])
    assert len(jobs) == 2 * (1 + 3) * 2 * 2
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

    jobs = make_grid(["ig"], None, list(range(6)), 1, marker=str(marker), sleep=0.0)
    records = run_grid(jobs, grid_helpers.slow_job, out, progress=False)
    assert [r["value"] for r in records] == [0, 1, 2, 3, 4, 5]
    ran_after = marker.read_text().splitlines()[len(ran_before) :]
    assert not set(ran_after) & finished_before  # finished jobs were not run again
    assert set(ran_after) | finished_before == {j.key for j in jobs}
    assert run_grid(jobs, grid_helpers.slow_job, out, progress=False) == records  # nothing left to run
    assert len(marker.read_text().splitlines()) == len(ran_before) + len(ran_after)


def _strip(records):
    return [{k: v for k, v in r.items() if k not in ("seconds", "job_seconds", "pid")} for r in records]


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
    assert _strip(remote) == _strip(local)
    lines = (tmp_path / "ray" / "records.jsonl").read_text().splitlines()
    assert len(lines) == 4 and all(json.loads(x)["key"] for x in lines)
    assert {r["defense"] for r in local} == {None, "pruning"}
