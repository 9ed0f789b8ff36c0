"""Tune the l1-ball radii of GIFD for the bundled CIFAR-10 prior on CIFAR-10 *training* images.

    python tools/tune_gifd_radii.py --data ../shared/gifd_data/cifar10_yoongikim/cifar10_jpg_q75_train_test.tar.gz
    python tools/tune_gifd_radii.py --data ... --radii 0 100   # a subset (run several processes on one out dir)

Each variant runs GIFD (batch 1, untrained ResNet-18 seed 123, eval BN, the given budget) with one radius for
the feature stages 1..3, or one per stage (stage 0, the latent, is kept on its sphere instead); it records the per-stage
rows (``gifd[K=k]``). Finished attacks are cached in the out dir, so processes given different ``--radii`` can
share it and a final call with every radius assembles the table (``results.json``, ``table.md``).
"""

from __future__ import annotations

import argparse

from gifd.plots import results_table
from gifd.variants import compare_variants


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="CIFAR-10 folder or .tar.gz")
    ap.add_argument("--indices", type=int, nargs="+", default=[0, 25000], help="training-split indices")
    ap.add_argument(
        "--radii",
        nargs="+",
        default=["0", "100", "300", "1000", "1000,2000,3000"],
        help="radius of stages 1..3 (0: no l1 ball), or a comma-separated radius per stage",
    )
    ap.add_argument("--budget", type=int, default=1000)
    ap.add_argument("--out", default="figures/tuning_gifd_radii_dcgan")
    args = ap.parse_args()
    params = dict(dataset="cifar10", data_root=args.data, split="train", indices=args.indices, budget=args.budget,
                  methods=["gifd"], seed=123, out_dir=args.out, stage_rows=True)  # fmt: skip
    variants = {}
    for text in args.radii:
        radii = [float(r) for r in text.split(",")]
        variants["r=" + ",".join(f"{r:g}" for r in radii)] = {"gifd_radii": [0.0, *radii]}
    comparison = compare_variants(params, variants)
    table = results_table(comparison.results)
    (comparison.out_dir / "table.md").write_text(f"<!-- made by tools/tune_gifd_radii.py -->\n{table}\n")
    print(table)


if __name__ == "__main__":
    main()
