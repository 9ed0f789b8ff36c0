"""Label accuracy of each label-inference rule on CIFAR-10 test batches: the measurement behind ``auto``.

    python tools/label_accuracy.py --data ../shared/gifd_data/cifar10_yoongikim/cifar10_jpg_q75_train_test.tar.gz

The victim is the untrained CIFAR ResNet-18 of every comparison (``make_model("resnet18", 10, seed=123)``,
eval-mode BatchNorm). For each batch the client's update is computed (FedSGD, and FedAvg as in
``05_fedavg_cifar10`` at E = 5: five full-batch local steps at lr 0.01) and each rule infers the batch's labels
from it alone; accuracy counts the labels recovered as a multiset (order carries no information). Batches: the
consecutive batches of 4 and 8 of ``05_batch_size_cifar10``'s images (two per class, so labels repeat), and
``--random`` batches of 4 and 8 drawn from the 10,000 test images (seed 0). Yin et al.'s rule names distinct
labels only.
Writes ``<out>/table.md`` and ``<out>/results.json`` (per batch: indices, true and inferred labels).
"""

from __future__ import annotations

import argparse
import random
import shlex
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gifd.provenance import versions, write_json  # noqa: E402

FEDSGD = ("yin", "llg", "bias_counts", "auto")
FEDAVG = ("yin", "llg", "auto")  # bias counts needs a FedSGD gradient


def recovered(pred: list[int], true: list[int]) -> float:
    """Share of the true labels recovered, as multisets."""
    return sum((Counter(pred) & Counter(true)).values()) / len(true)


def batches(random_batches: int, seed: int = 0) -> dict[str, list[list[int]]]:
    images = [0, 500, 1000, 1500, 2000, 2500, 3000, 3500]  # 05_batch_size_cifar10
    out = {"05 images, B=4": [images[:4], images[4:]], "05 images, B=8": [images]}
    rng = random.Random(seed)
    for b in (4, 8):
        out[f"random, B={b}"] = [rng.sample(range(10000), b) for _ in range(random_batches)]
    return out


def measure(data_root: str, random_batches: int) -> dict:

    from gifd.data import load_images
    from gifd.fl import LocalTraining, client_update
    from gifd.labels import infer_labels
    from gifd.models import make_model

    groups = batches(random_batches)
    wanted = sorted({i for group in groups.values() for batch in group for i in batch})
    data = load_images("cifar10", data_root, wanted)
    row = {index: n for n, index in enumerate(wanted)}
    model = make_model("resnet18", 10, seed=123).eval()
    results = {}
    for name, group in groups.items():
        per = []
        for batch in group:
            x, y = data.images[[row[i] for i in batch]], data.labels[[row[i] for i in batch]]
            entry = {"indices": batch, "labels": y.tolist()}
            for protocol, rules in (("fedsgd", FEDSGD), ("fedavg", FEDAVG)):
                local = LocalTraining(steps=5, lr=0.01) if protocol == "fedavg" else None
                update = client_update(model, data.task, x, y, protocol=protocol, local=local)
                for rule in rules:
                    try:
                        pred = infer_labels(update, 10, len(batch), rule).tolist()
                    except ValueError:  # Yin et al.: more images than distinct classes
                        pred = []
                    entry[f"{protocol}:{rule}"] = pred
            per.append(entry)
        mean = {k: sum(recovered(e[k], e["labels"]) for e in per) / len(per) for k in per[0] if ":" in k}
        results[name] = {"batches": per, "accuracy": mean}
        print(name, {k: round(v, 3) for k, v in mean.items()}, flush=True)
    return results


def table(results: dict, command: str) -> str:
    columns = [f"fedsgd:{r}" for r in FEDSGD] + [f"fedavg:{r}" for r in FEDAVG]
    lines = [f"<!-- made by `{command}` -->",
             "Label accuracy (share of each batch's labels recovered, as multisets; mean over batches) of each rule "
             "on CIFAR-10 test batches, untrained ResNet-18 (seed 123, eval-mode BatchNorm). `auto` is what the "
             "attacks use unless told otherwise.", "",
             "| batches | n | " + " | ".join(c.replace(":", " ") for c in columns) + " |",
             "|---|---|" + "---|" * len(columns)]  # fmt: skip
    for name, r in results.items():
        cells = [f"{r['accuracy'][c]:.3f}" for c in columns]
        lines.append(f"| {name} | {len(r['batches'])} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="the CIFAR-10 folder or .tar.gz (its test split is used)")
    ap.add_argument("--random", type=int, default=10, help="random batches of each size")
    ap.add_argument("--out", type=Path, default=Path("figures/labels_cifar10"))
    args = ap.parse_args(argv)
    command = "python tools/label_accuracy.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    start = time.perf_counter()
    results = measure(args.data, args.random)
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "results.json", {"groups": results, "command": command, "versions": versions(),
                                           "timing": {"total_seconds": time.perf_counter() - start}})  # fmt: skip
    (args.out / "table.md").write_text(table(results, command))
    print(table(results, command))
    return 0


if __name__ == "__main__":
    sys.exit(main())
