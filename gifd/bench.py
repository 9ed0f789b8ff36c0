"""How fast is a loss evaluation? Our attacks against a minimal hand-written gradient-matching loop.

    python -m gifd.bench                       # CPU defaults (make bench): 32x32 and 64x64, B = 1 (and 4 at 32)
    python -m gifd.bench --device cuda         # a lent GPU: restarts 1, 4, 16 and images 1, 4 at both sizes

Every case is timed in one process, the cases alternating within each repetition (the machine is noisy), on the CPU
in CPU time (the process's, so that other work on the machine does not count), on a GPU in wall time after
synchronising, as the *marginal* cost of a loss evaluation: the time of a run with ``long`` optimisation steps
minus that of a run with ``short`` steps, divided by the evaluations between them, so set-up (building the attack,
the simulator) and the final scoring pass are left out alike for every case. ``minimal`` is plain PyTorch, written
here with no ``gifd`` code in its loop: Inverting Gradients' step (cosine distance of ``torch.autograd.grad`` with
``create_graph``, total variation, Adam on the gradient's sign, clamping to the image box) for one candidate. The
victim is the CIFAR ResNet-18 (untrained, eval-mode BatchNorm). Reported per case: min and median seconds per
evaluation over the repetitions, the ratio to ``minimal`` (medians), and evaluations per second; for batched
restarts the speed-up over ``R`` sequential chains (``R`` times the one-chain time).
Writes ``--out`` (JSON) and ``--table`` (markdown).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

__all__ = ["minimal_ig", "time_case", "run_bench"]


def minimal_ig(model, target, images_shape, labels, steps: int, lo, hi, seed: int = 0) -> torch.Tensor:
    """``steps`` of Inverting Gradients in plain PyTorch (the reference the overhead is measured against)."""
    params = [p for p in model.parameters() if p.requires_grad]
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(images_shape, generator=g).to(lo.device).requires_grad_(True)
    opt = torch.optim.Adam([x], lr=0.1)
    target_norm = torch.sqrt(sum(t.pow(2).sum() for t in target))
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), labels)
        grads = torch.autograd.grad(loss, params, create_graph=True)
        dot = sum((a * b).sum() for a, b in zip(grads, target))
        norm = torch.sqrt(sum(a.pow(2).sum() for a in grads))
        tv = (x[..., 1:] - x[..., :-1]).abs().mean() + (x[..., 1:, :] - x[..., :-1, :]).abs().mean()
        (1 - dot / (norm * target_norm) + 1e-4 * tv).backward()
        x.grad.sign_()
        opt.step()
        with torch.no_grad():
            x.copy_(torch.max(torch.min(x, hi), lo))
    return x.detach()


def _setup(size: int, batch: int, device: str):
    from .fl import FLTask, client_update
    from .models import make_model

    task = FLTask(image_shape=(3, size, size))
    model = make_model("resnet18", 10, seed=123).to(device)
    g = torch.Generator().manual_seed(1)
    images = torch.rand(batch, 3, size, size, generator=g).to(device)
    labels = torch.arange(batch, device=device) % 10
    return task, model, images, labels, client_update(model, task, images, labels)


def _generator(size: int, device: str):
    from .generators import load_generator

    return load_generator("bundled" if size <= 32 else "random-dcgan64", num_classes=10).to(device)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _clock(device: str):
    """The clock of a case: on the CPU the process's CPU time (what the work costs, whatever else the machine
    runs; with one thread it is that thread's), on a GPU the wall time after synchronising."""
    return time.perf_counter if device.startswith("cuda") else time.process_time


def time_case(case: str, restarts: int, size: int, batch: int, device: str, steps: tuple[int, int]) -> float:
    """Marginal seconds per loss evaluation of ``case`` (``minimal``, ``ig``, ``gi``, ``gias``, ``gifd``)."""
    clock = _clock(device)
    from .attacks import make_attack

    task, model, images, labels, update = _setup(size, batch, device)
    times, evals = [], []
    # the short run goes twice and its first, cold timing is dropped: first-call costs (oneDNN primitives, CUDA
    # kernels, allocator growth) would otherwise count against the short run and can make the difference negative
    for n in (steps[0], *steps):
        if case == "minimal":
            lo, hi = task.box(images[0])
            target = [t.detach() for t in update.tensors]
            _sync(device)
            start = clock()
            minimal_ig(model, target, images.shape, labels, n, lo, hi)
            _sync(device)
            times.append(clock() - start)
            evals.append(n)
            continue
        kw: dict = {"restarts": restarts, "progress": False, "seed": 0}
        if case == "gifd":
            kw.update(generator=_generator(size, device), steps_per_stage=n, last_stage=1,
                      budget=restarts * 2 * (n + 1))  # fmt: skip
        elif case in ("gias", "ggl"):
            kw.update(generator=_generator(size, device), budget=restarts * (n + 1) + restarts)
            if case == "gias":
                kw["latent_share"] = 0.5
        else:
            kw["budget"] = restarts * (n + 1)
        attack = make_attack(case, model, task, **kw)
        _sync(device)
        start = clock()
        result = attack(update, labels)
        _sync(device)
        times.append(clock() - start)
        evals.append(result.evaluations)
    return (times[2] - times[1]) / (evals[2] - evals[1])


def _cases(device: str, sizes, batches, restarts, methods) -> list[tuple[str, int, int, int]]:
    out = []
    for size in sizes:
        for b in batches:
            out.append(("minimal", 1, size, b))
            out += [("ig", r, size, b) for r in restarts]
            out += [(m, 1, size, b) for m in methods]
    return out


def run_bench(device: str = "cpu", sizes=(32, 64), batches=(1,), restarts=(1, 4), methods=("gi", "gias", "gifd"),
              reps: int = 3, steps: tuple[int, int] = (1, 4), extra: list | None = None) -> dict:  # fmt: skip
    """Time every case ``reps`` times, alternating; return the records (see the module docstring)."""
    from .provenance import versions

    cases = _cases(device, sizes, batches, restarts, methods) + list(extra or [])
    samples: dict[tuple, list[float]] = {c: [] for c in cases}
    start, cpu_start = time.perf_counter(), time.process_time()
    for rep in range(reps):
        for case in cases:
            samples[case].append(time_case(*case, device=device, steps=steps))
        print(f"[bench] repetition {rep + 1}/{reps} done after {time.perf_counter() - start:.0f} s", flush=True)
    rows = []
    for (case, r, size, b), vals in samples.items():
        med = statistics.median(vals)
        base = statistics.median(samples[("minimal", 1, size, b)]) if ("minimal", 1, size, b) in samples else None
        one = samples.get(("ig", 1, size, b)) if case == "ig" else None
        rows.append({"case": case, "restarts": r, "size": size, "batch": b, "seconds_min": min(vals),
                     "seconds_median": med, "samples": vals, "ratio_to_minimal": med / base if base else None,
                     "evaluations_per_second": 1 / med,
                     "speedup_over_sequential": statistics.median(one) / med if one and r > 1 else None})  # fmt: skip
    name = torch.cuda.get_device_name() if device.startswith("cuda") else f"{platform.processor() or 'cpu'}"
    return {"device": device, "device_name": name, "threads": torch.get_num_threads(), "reps": reps,
            "steps": list(steps), "rows": rows, "versions": versions(),
            "seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - cpu_start}  # fmt: skip


def table(bench: dict) -> str:
    clock = "wall-clock" if bench["device"].startswith("cuda") else "CPU-time"
    lines = [f"{clock} seconds per loss evaluation on {bench['device']} ({bench['device_name']}, {bench['threads']} "
             f"threads), {bench['reps']} alternating repetitions, marginal cost between {bench['steps'][0]} and "
             f"{bench['steps'][1]} steps (`python -m gifd.bench`).", "",
             "| size | B | case | R | s/eval min | s/eval median | ratio to minimal | evals/s | vs R sequential |",
             "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in bench["rows"]:
        ratio = f"{r['ratio_to_minimal']:.3f}" if r["ratio_to_minimal"] else "–"
        speed = f"{r['speedup_over_sequential']:.2f}x" if r["speedup_over_sequential"] else "–"
        lines.append(f"| {r['size']} | {r['batch']} | {r['case']} | {r['restarts']} | {r['seconds_min']:.4f} | "
                     f"{r['seconds_median']:.4f} | {ratio} | {r['evaluations_per_second']:.1f} | "
                     f"{speed} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m gifd.bench", description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--sizes", type=int, nargs="+", default=[32, 64])
    ap.add_argument("--batches", type=int, nargs="+", default=None, help="default: 1 on the CPU, 1 4 on a GPU")
    ap.add_argument("--restarts", type=int, nargs="+", default=None, help="IG restarts; default 1 4 (GPU: 1 4 16)")
    ap.add_argument("--methods", nargs="*", default=["gi", "gias", "gifd"])
    ap.add_argument("--reps", type=int, default=None, help="repetitions (default 2 on the CPU, 3 on a GPU)")
    ap.add_argument("--steps", type=int, nargs=2, default=[1, 4])
    ap.add_argument("--out", type=Path, default=Path("build/bench.json"))
    ap.add_argument("--table", type=Path, default=None, help="also write the markdown table here")
    args = ap.parse_args(argv)
    gpu = args.device.startswith("cuda")
    if gpu and not torch.cuda.is_available():
        raise SystemExit(f"error: device {args.device!r} requested but CUDA is not available")
    batches = args.batches or ([1, 4] if gpu else [1])
    restarts = args.restarts or ([1, 4, 16] if gpu else [1, 4])
    extra = [] if gpu or args.batches else [("minimal", 1, 32, 4), ("ig", 1, 32, 4), ("ig", 4, 32, 4)]
    reps = args.reps or (3 if gpu else 2)
    bench = run_bench(args.device, args.sizes, batches, restarts, args.methods, reps, tuple(args.steps), extra)
    text = table(bench)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(bench, indent=2) + "\n")
    if args.table:
        args.table.parent.mkdir(parents=True, exist_ok=True)
        args.table.write_text(f"<!-- made by `python -m gifd.bench {' '.join(argv or sys.argv[1:])}` -->\n{text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
