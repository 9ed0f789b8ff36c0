"""One tuning protocol for every attack, on *training* images at the comparison's budget (CIFAR-10; Tiny-ImageNet).

    python tools/tune.py ig --data ../shared/gifd_data/cifar10_yoongikim/cifar10_jpg_q75_train_test.tar.gz
    python tools/tune.py gifd --data ...            # generative methods: per generator (--generator bundled)
    python tools/tune.py gifd --dataset tinyimagenet --generator tinyimagenet64 \
        --data ../shared/gifd_data/tinyimagenet_rangeetpan/tiny_imagenet_train_wnids_words.tar.gz  # 64x64

The protocol (the same for IG, GI, GGL, GIAS and GIFD: six configurations each):

1. **restarts** 1, 2 and 4, every other setting at the paper's default (``preset="paper"``);
2. **three other knobs** of the method (:data:`KNOBS`), one at a time, at the best restart count of step 1.

Every configuration attacks the same training images (default 0 and 25000: an airplane and a dog) with batch 1,
the untrained ResNet-18 (seed 123, eval-mode BN) and the same budget (default 1,000 loss evaluations); the
best mean PSNR wins. Nothing here sees a test image. Each configuration is a run in ``<out>/<name>/`` with its
attack cache, so a killed tuning resumes where it stopped; ``<out>/table.md`` and ``<out>/results.json`` list
every configuration, the winner and the command. The winner is copied by hand into ``gifd/presets.py``
(``TUNED``), citing the table.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gifd.experiment import run_comparison  # noqa: E402
from gifd.provenance import versions, write_json  # noqa: E402

RESTARTS = (1, 2, 4)
NAMES = {"cifar10": "CIFAR-10", "tinyimagenet": "Tiny-ImageNet"}
MODELS = {"resnet18": "ResNet-18"}
PROTOCOL = ("restarts 1, 2, 4 at the paper's other settings; then three knobs one at a time at the best restart "
            "count; the best mean PSNR of the six wins")  # fmt: skip

#: per method, the three knobs tried around the best restart count (name -> config overrides)
KNOBS: dict[str, dict[str, dict]] = {
    "ig": {"lr=0.03": {"lr": 0.03}, "tv=1e-3": {"total_variation": 1e-3}, "l2=1e-4": {"image_l2": 1e-4}},
    "gi": {"bn=0": {"bn_statistics": 0.0}, "lr=0.03": {"lr": 0.03}, "tv=1e-3": {"total_variation": 1e-3}},
    "ggl": {"pop=50": {"popsize": 50}, "sigma=1": {"sigma0": 1.0}, "sigma=0.25": {"sigma0": 0.25}},
    "gias": {"share=1/3": {"latent_share": 1 / 3}, "wlr=1e-3": {"weight_lr": 1e-3}, "wlr=1e-5": {"weight_lr": 1e-5}},
    "gifd": {"r=3000": {"radii": [0, 3000]}, "K=2": {"last_stage": 2}, "lr=0.03": {"lr": 0.03}},
    "dlg": {"lr=0.1": {"lr": 0.1}, "lr=0.3": {"lr": 0.3}, "tv=1e-4": {"total_variation": 1e-4}},
}


def settings(params: dict) -> str:
    """The key (:func:`gifd.keys.result_key`) of a recorded run's settings, with the defaults of today filled in (a
    record older than a new parameter reads as the default): parameters no result depends on do not enter it."""
    from dataclasses import asdict

    from gifd.experiment import ExperimentParams
    from gifd.keys import result_key

    return result_key(asdict(ExperimentParams(**params)))


def close(a, b, rel: float = 1e-5) -> bool:
    """``a == b`` up to floating-point noise: numbers within ``rel`` of each other (LPIPS and logit MSE redrawn on
    another CPU move at about 1e-7), everything else exactly."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k], rel) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(close(x, y, rel) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) or isinstance(b, float):
        numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (a, b))
        return numbers and math.isclose(a, b, rel_tol=rel, abs_tol=1e-9)
    return a == b


def unchanged(before: dict, after: dict) -> bool:
    """Whether a configuration's rerun reproduced its recorded run: same settings, attacks and rows (a redraw
    from the attack cache, up to float noise), so the first record, with its commit and its seconds, stands."""
    return settings(before["params"]) == settings(after["params"]) and all(
        close(before.get(k), after.get(k)) for k in ("attacks", "rows"))  # fmt: skip


def tune(method: str, data: str, indices: list[int], budget: int, out: Path, generator: str, command: str,
         dataset: str = "cifar10", settings: dict | None = None) -> dict:  # fmt: skip
    """Tune ``method`` (the protocol above); ``settings`` changes run settings of every configuration (tests run
    it on the bundled samples with a small victim)."""
    start = time.perf_counter()
    base = {**dict(dataset=dataset, data_root=data, split="train", indices=indices, batch_size=1, budget=budget,
                   methods=[method], seed=123, preset="paper", generator=generator, lpips=True, progress=False),
            **(settings or {})}  # fmt: skip
    rows, configs = [], {}

    def run(name: str, overrides: dict) -> float:
        path = out / name / "results.json"
        config = {**base, "out_dir": str(out / name), "attack_config": {method: overrides}}
        if not path.exists():
            res = run_comparison(config).results
        else:  # a resumed tuning: redraw from the cache in a scratch folder, so that the configuration's own record
            # (commit, seconds) stays untouched when the redraw reproduces it, and is rewritten when it does not
            with tempfile.TemporaryDirectory() as scratch:
                res = run_comparison({**config, "out_dir": scratch, "cache_dir": str(out / name / "attacks")}).results
            if not unchanged(json.loads(path.read_text()), res):
                res = run_comparison(config).results  # from the cache the scratch run filled: seconds
        configs[name] = overrides
        mine = [r for r in res["rows"] if r["method"] == method]
        rows.extend({**r, "method": name, "config": overrides} for r in mine)
        psnr = sum(r["psnr"] for r in mine) / len(mine)
        print(f"[tune] {method} {name}: {psnr:.2f} dB", flush=True)
        return psnr

    scores = {f"R={r}": run(f"R={r}", {"restarts": r}) for r in RESTARTS}
    best_r = RESTARTS[max(range(len(RESTARTS)), key=lambda i: scores[f"R={RESTARTS[i]}"])]
    for name, knob in KNOBS[method].items():
        scores[f"R={best_r},{name}"] = run(f"R={best_r},{name}", {"restarts": best_r, **knob})
    winner = max(scores, key=scores.get)
    from gifd.experiment import summarise

    mean, std = summarise(rows, list(scores))
    results = {"method": method, "generator": generator if method in ("ggl", "gias", "gifd") else None,
               "protocol": PROTOCOL, "dataset": dataset, "indices": indices, "split": "train", "budget": budget,
               "rows": rows, "mean": mean, "std": std, "configs": configs, "winner": winner,
               "winner_config": configs[winner], "command": command, "versions": versions(),
               "timing": {"total_seconds": time.perf_counter() - start}}  # fmt: skip
    kept = out / "results.json"
    if kept.exists():  # a resumed tuning that reproduced every record keeps the first summary (commit, seconds)
        old = json.loads(kept.read_text())
        drop = ("versions", "timing")
        if close({k: v for k, v in old.items() if k not in drop},
                 json.loads(json.dumps({k: v for k, v in results.items() if k not in drop}))):  # fmt: skip
            results = old
    write_json(kept, results)
    split = "training" if base["split"] == "train" else base["split"]
    victim = MODELS.get(base.get("model", "resnet18"), base.get("model"))
    lines = [f"<!-- made by `{command}` -->",
             f"Tuning of **{method}** on {NAMES.get(dataset, dataset)} {split} images {indices} (batch 1, "
             f"untrained {victim}, "
             f"budget {budget}); step 1: restarts, step 2: one knob at a time at R={best_r}.", "",
             "| configuration | overrides | PSNR (dB) | SSIM | LPIPS | per image (dB) |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for name in scores:
        per = [f"{r['psnr']:.2f}" for r in rows if r["method"] == name]
        m = mean[name]
        mark = " **(winner)**" if name == winner else ""
        lines.append(f"| {name}{mark} | `{json.dumps(configs[name])}` | {m['psnr']:.2f} | {m['ssim']:.3f} | "
                     f"{m['lpips']:.3f} | {', '.join(per)} |" if m["lpips"] is not None else
                     f"| {name}{mark} | `{json.dumps(configs[name])}` | {m['psnr']:.2f} | {m['ssim']:.3f} | – | "
                     f"{', '.join(per)} |")  # fmt: skip
    (out / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("method", choices=sorted(KNOBS))
    ap.add_argument("--data", required=True, help="the data set's folder or .tar.gz (its training split is used)")
    ap.add_argument("--dataset", choices=sorted(NAMES), default="cifar10")
    ap.add_argument("--indices", type=int, nargs="+", default=[0, 25000], help="training-split indices")
    ap.add_argument("--budget", type=int, default=1000)
    ap.add_argument("--generator", default="bundled", help="prior of ggl/gias/gifd")
    ap.add_argument(
        "--out", type=Path, default=None, help="default figures/tuning_<method>[_<generator family> | _<data set>]"
    )
    args = ap.parse_args(argv)
    out = args.out
    if out is None:
        suffix = ""
        if args.method in ("ggl", "gias", "gifd"):
            from gifd.generators import load_generator
            from gifd.presets import family

            suffix = "_" + (family(load_generator(args.generator, num_classes=10)) or "generator")
        elif args.dataset != "cifar10":  # a pixel method's table per data set (the generator names it otherwise)
            suffix = f"_{args.dataset}"
        out = Path("figures") / f"tuning_{args.method}{suffix}"  # relative: run from the repository root
    command = "python tools/tune.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    tune(args.method, args.data, args.indices, args.budget, out, args.generator, command, args.dataset)
    return 0


if __name__ == "__main__":
    sys.exit(main())
