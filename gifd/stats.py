"""Paired statistics for claims such as "GIFD beats IG": on the same images, the mean per-image difference, its
95 % bootstrap confidence interval, and the win count. A claim whose interval includes 0 is not a win."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["Paired", "paired", "paired_against", "paired_table", "pairs_table", "paired_sections"]


@dataclass
class Paired:
    """``a`` minus ``b`` on the ``n`` images both were run on (``metric``, e.g. PSNR in dB)."""

    a: str
    b: str
    metric: str
    n: int
    mean: float
    ci_low: float
    ci_high: float
    wins: int  # images where a is better than b (higher, or lower for LPIPS)
    resamples: int

    @property
    def significant(self) -> bool:
        return self.ci_low > 0 or self.ci_high < 0


def paired(rows: list[dict], a: str, b: str, metric: str = "psnr", *, resamples: int = 10000,
           seed: int = 0) -> Paired:  # fmt: skip
    """Paired comparison of methods ``a`` and ``b`` over the images both have a ``metric`` for (rows of a
    ``results.json``); the interval is the percentile bootstrap over images (``resamples``, fixed ``seed``)."""
    va = {r["image"]: r[metric] for r in rows if r["method"] == a and r.get(metric) is not None}
    vb = {r["image"]: r[metric] for r in rows if r["method"] == b and r.get(metric) is not None}
    common = sorted(set(va) & set(vb))
    if not common:
        raise ValueError(f"methods {a!r} and {b!r} share no image with a {metric!r} value")
    diff = np.array([va[i] - vb[i] for i in common], dtype=np.float64)
    rng = np.random.default_rng(seed)
    boot = diff[rng.integers(0, len(diff), size=(resamples, len(diff)))].mean(1)
    lower_is_better = metric == "lpips"
    wins = int((diff < 0).sum() if lower_is_better else (diff > 0).sum())
    return Paired(a, b, metric, len(common), float(diff.mean()), float(np.percentile(boot, 2.5)),
                  float(np.percentile(boot, 97.5)), wins, resamples)  # fmt: skip


def paired_against(results: dict, reference: str, metric: str = "psnr") -> dict[str, dict]:
    """``reference`` against every other method of a ``results.json`` dictionary (as plain dictionaries)."""
    others = [m for m in results["mean"] if m != reference]
    return {m: asdict(paired(results["rows"], reference, m, metric)) for m in others}


def paired_table(results: dict, reference: str, metric: str = "psnr", unit: str = "dB", digits: int = 2) -> str:
    """Markdown: the reference's paired difference with each other method, its 95 % CI and the wins."""
    pairs = [(reference, m, m) for m in results["mean"] if m != reference]
    return pairs_table(results, pairs, f"{reference} against", metric, unit, digits)


def paired_sections(results: dict, reference: str = "gifd") -> str:
    """What a ``table.md`` carries under its results table when ``reference`` ran beside other methods: the paired
    PSNR table, and the paired LPIPS table when every method has LPIPS values."""
    text = "\n\nPaired per image (PSNR):\n\n" + paired_table(results, reference)
    methods = {r["method"] for r in results["rows"] if r.get("lpips") is not None}
    if set(results["mean"]) <= methods:
        text += (f"\n\nPaired per image (LPIPS, lower is better: a negative difference favours {reference}, a win is "
                 f"an image where {reference}'s LPIPS is lower):\n\n" + paired_table(results, reference, "lpips",
                 "LPIPS", digits=3))  # fmt: skip
    return text


def pairs_table(results: dict, pairs: list[tuple[str, str, str]], header: str = "a − b", metric: str = "psnr",
                unit: str = "dB", digits: int = 2) -> str:  # fmt: skip
    """Markdown: for each ``(a, b, label)`` of ``pairs`` (methods of a ``results.json`` dictionary), the paired
    difference ``a − b`` over their common images, its 95 % bootstrap CI and the images where ``a`` is better;
    the first column holds ``label`` under ``header``; numbers to ``digits`` decimals."""
    lines = [f"| {header} | mean difference ({unit}) | 95 % CI (bootstrap) | wins | CI excludes 0 |",
             "|---|---|---|---|---|"]  # fmt: skip
    for a, b, label in pairs:
        p = paired(results["rows"], a, b, metric)
        sig = "yes" if p.significant else "**no**"
        sig = f"({sig}: only {p.n} image{'s' if p.n > 1 else ''})" if p.n < 5 else sig
        d = digits
        lines.append(
            f"| {label} | {p.mean:+.{d}f} | [{p.ci_low:+.{d}f}, {p.ci_high:+.{d}f}] | {p.wins}/{p.n} | {sig} |"
        )
    return "\n".join(lines)
