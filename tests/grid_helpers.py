"""Job functions for the grid tests (importable by subprocesses and Ray workers)."""

import os
import time
from pathlib import Path


def slow_job(job):
    time.sleep(float(job.settings().get("sleep", 0)))
    marker = job.settings().get("marker")
    if marker:
        with open(marker, "a") as f:
            f.write(job.key + "\n")
    return {"value": job.seed * 10 + job.images[0], "pid": os.getpid()}


def main():
    import sys

    from gifd.grid import make_grid, run_grid

    out_dir, marker, sleep = sys.argv[1], sys.argv[2], float(sys.argv[3])
    jobs = make_grid(["ig"], None, list(range(6)), 1, marker=marker, sleep=sleep)
    run_grid(jobs, slow_job, out_dir, progress=False)
    Path(out_dir, "finished").touch()


if __name__ == "__main__":
    main()
