"""Job functions for the grid tests (importable by subprocesses and Ray workers)."""

import os
import time
from pathlib import Path


def slow_job(job):
    # the delay is not a setting of the job (settings enter its key): the killed run and its resumption share keys
    time.sleep(float(os.environ.get("GRID_TEST_SLEEP", 0)))
    marker = job.settings().get("marker")
    if marker:
        with open(marker, "a") as f:
            f.write(job.key + "\n")
    return {"value": job.seed * 10 + job.images[0], "pid": os.getpid()}


def main():
    import sys

    from gifd.grid import make_grid, run_grid

    out_dir, marker = sys.argv[1], sys.argv[2]
    os.environ["GRID_TEST_SLEEP"] = sys.argv[3]
    jobs = make_grid(["ig"], None, list(range(6)), 1, marker=marker)
    run_grid(jobs, slow_job, out_dir, progress=False)
    Path(out_dir, "finished").touch()


if __name__ == "__main__":
    main()
