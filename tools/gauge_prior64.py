"""A cheap progress gauge of a 64x64 prior during training (not the manifest's measure): latent-only projection
of 32 Tiny-ImageNet val images (``PROJECTION_INDICES[::8]``), 200 Adam steps, best of 2 starts, one thread.

    python -m gifd.generators.dcgan64 export --checkpoint build/prior64/checkpoint.pt --dest /tmp/p64/prior.safetensors
    python tools/gauge_prior64.py /tmp/p64/prior.safetensors \\
        --data ../shared/gifd_data/tinyimagenet_rangeetpan/tiny_imagenet_val_wnids_words.tar.gz
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gifd.data import load_images  # noqa: E402
from gifd.generators.dcgan64 import PROJECTION_INDICES, load_prior64  # noqa: E402
from gifd.generators.projection import project  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("prior", type=Path, help="exported safetensors (with its manifest beside it)")
    ap.add_argument("--data", required=True, help="Tiny-ImageNet val archive or root")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    G = load_prior64(args.prior)
    indices = PROJECTION_INDICES[::8]
    data = load_images("tinyimagenet", args.data, indices)
    start = time.perf_counter()
    r = project(G, data.images, steps=200, starts=2)
    print(f"{len(indices)} images: projection PSNR {r.psnr.mean():.2f} ± {r.psnr.std():.2f} dB "
          f"({time.perf_counter() - start:.0f} s)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
