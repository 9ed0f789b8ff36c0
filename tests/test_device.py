"""Device-sensitive behaviour, run on ``$GIFD_TEST_DEVICE`` (``cpu`` by default; ``tools/gpu_check.sh`` runs
these on ``cuda`` when a GPU is lent): attacks, the defenses grid and the benchmark on the device, and the
device's results agreeing with the CPU's."""

import os

import pytest
import torch

DEVICE = os.environ.get("GIFD_TEST_DEVICE", "cpu")
if DEVICE.startswith("cuda") and not torch.cuda.is_available():
    pytest.skip(f"GIFD_TEST_DEVICE={DEVICE} but CUDA is not available", allow_module_level=True)


def test_the_simulated_update_on_the_device_equals_the_cpus():
    from gifd.fl import FLTask, client_update
    from gifd.matching import UpdateSimulator
    from gifd.models import make_model

    task = FLTask()
    model = make_model("resnet18", 10, seed=0)
    images, labels = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)), torch.tensor([1, 2])
    update = client_update(model, task, images, labels)
    x = task.normalize(images).unsqueeze(0).repeat(3, 1, 1, 1, 1)
    cpu = UpdateSimulator(model, update)(x, labels.expand(3, 2))
    dev_model = make_model("resnet18", 10, seed=0).to(DEVICE)
    dev_update = client_update(dev_model, task, images.to(DEVICE), labels.to(DEVICE))
    dev = UpdateSimulator(dev_model, dev_update)(x.to(DEVICE), labels.to(DEVICE).expand(3, 2))
    for a, b, t in zip(cpu, dev, update.tensors):
        assert b.device.type == torch.device(DEVICE).type
        torch.testing.assert_close(b.cpu(), a, rtol=1e-3, atol=1e-5)
        torch.testing.assert_close(a[0], t, rtol=1e-4, atol=1e-6)  # the client's own update, recomputed


def test_a_comparison_runs_on_the_device_and_its_cache_serves_the_cpu(tmp_path):
    from gifd.experiment import run_comparison

    params = dict(dataset="samples", indices=[0], budget=24, methods=["ig", "gifd"], model="convnet", restarts=2,
                  out_dir=str(tmp_path), progress=False, lpips=False)  # fmt: skip
    on_device = run_comparison({**params, "device": DEVICE})
    assert all(a["score"] < 1 for a in on_device.results["attacks"])
    assert all(r.extras["device"].startswith(DEVICE.split(":")[0]) for rs in on_device.attack_results.values()
               for r in rs)  # fmt: skip
    redraw = run_comparison({**params, "device": "cpu"})  # found in the cache: nothing is recomputed
    assert [r["psnr"] for r in redraw.results["rows"]] == [r["psnr"] for r in on_device.results["rows"]]


def test_a_defense_job_runs_on_the_device(tmp_path):
    from gifd.defense_grid import defense_job, make_defense_grid
    from gifd.grid import run_grid

    jobs = make_defense_grid(["ig"], {"pruning": [0.9]}, [0], 1, baseline=False, dataset="samples", model="convnet",
                             budget=8, restarts=2, lpips=False, device=DEVICE)  # fmt: skip
    (record,) = run_grid(jobs, defense_job, tmp_path, progress=False)
    assert record["evaluations"] <= 8 and 0 < record["psnr"][0] < 60


def test_the_benchmark_times_every_case_on_the_device():
    from gifd.bench import time_case

    for case, r in (("minimal", 1), ("ig", 2), ("gifd", 1)):
        assert time_case(case, r, 16, 1, DEVICE, (1, 2)) > 0
