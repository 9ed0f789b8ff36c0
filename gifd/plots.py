"""Figures and tables. Every PNG carries, in its metadata, the notebook and parameters that made it."""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

__all__ = ["reconstruction_grid", "results_table", "save_figure"]


def save_figure(fig, path: str | Path, provenance: dict | None = None) -> Path:
    """Save ``fig`` as PNG with ``provenance`` (notebook, parameters, git commit) in its text metadata, and close
    it, so that a notebook cell that also returns ``fig`` shows it once (not again by the inline backend)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"Software": "gifd"}
    if provenance:
        meta["Description"] = json.dumps(provenance, default=str)
    fig.savefig(path, dpi=150, bbox_inches="tight", metadata=meta)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def _show(ax, img: torch.Tensor) -> None:
    img = img.detach().cpu().clamp(0, 1)
    if img.shape[0] == 1:
        ax.imshow(img[0].numpy(), cmap="gray", vmin=0, vmax=1)
    else:
        ax.imshow(img.permute(1, 2, 0).numpy())
    ax.set_xticks([])
    ax.set_yticks([])


def reconstruction_grid(
    truth: torch.Tensor,
    recons: dict[str, torch.Tensor],
    *,
    captions: dict[str, list[str]] | None = None,
    column_titles: list[str] | None = None,
    title: str | None = None,
):
    """One column per image; the first row is the ground truth, then one row per method."""
    import matplotlib.pyplot as plt

    n = truth.shape[0]
    rows = ["ground truth", *recons]
    fig, axes = plt.subplots(len(rows), n, figsize=(1.3 * n + 1.2, 1.35 * len(rows) + 0.4), squeeze=False)
    for r, name in enumerate(rows):
        imgs = truth if r == 0 else recons[name]
        for c in range(n):
            ax = axes[r, c]
            _show(ax, imgs[c])
            if r == 0 and column_titles:
                ax.set_title(column_titles[c], fontsize=7)
            if captions and name in captions:
                ax.set_xlabel(captions[name][c], fontsize=6)
        axes[r, 0].set_ylabel(name, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def _fmt(mean, std, digits):
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    if std is None:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def results_table(results: dict) -> str:
    """Markdown table of mean ± std per method from a ``results.json`` dictionary."""
    cols = [("psnr", "PSNR ↑", 2), ("ssim", "SSIM ↑", 3), ("lpips", "LPIPS ↓", 3), ("label_acc", "label acc", 2),
            ("seconds", "seconds", 1)]  # fmt: skip
    lines = ["| method | n | " + " | ".join(c[1] for c in cols) + " |", "|---|---|" + "---|" * len(cols)]
    for method, stats in results["mean"].items():
        std = results.get("std", {}).get(method, {})
        cells = [_fmt(stats.get(k), std.get(k), d) for k, _, d in cols]
        lines.append(f"| {method} | {stats.get('n', '')} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def image_grid(rows: list[torch.Tensor], row_titles: list[str] | None = None, title: str | None = None,
               col_titles: list[str] | None = None):  # fmt: skip
    """A grid of ``[0, 1]`` images: one row per tensor ``(N, C, H, W)``."""
    import matplotlib.pyplot as plt

    n = max(r.shape[0] for r in rows)
    fig, axes = plt.subplots(len(rows), n, figsize=(1.1 * n + 1, 1.15 * len(rows) + 0.4), squeeze=False)
    for i, imgs in enumerate(rows):
        for j in range(n):
            ax = axes[i, j]
            if j < imgs.shape[0]:
                _show(ax, imgs[j])
            else:
                ax.axis("off")
            if i == 0 and col_titles:
                ax.set_title(col_titles[j], fontsize=7)
        if row_titles:
            axes[i, 0].set_ylabel(row_titles[i], fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


#: axis labels with units for the metrics of a results.json
METRIC_LABELS = {"psnr": "PSNR (dB)", "ssim": "SSIM", "lpips": "LPIPS (AlexNet)", "label_acc": "label accuracy"}
#: what a defense's strength is, for the x axis
STRENGTH_LABELS = {"gaussian": "noise std σ", "laplacian": "noise scale b", "clipping": "clipping norm C",
                   "pruning": "share pruned p", "soteria": "share of features pruned", "dpsgd": "noise multiplier σ",
                   "quantize": "bits"}  # fmt: skip
#: axis labels of the settings a sweep varies (:data:`gifd.variants.SWEEPABLE`), with their units
SETTING_LABELS = {"budget": "budget (loss evaluations)", "gifd_last_stage": "K (last GIFD stage)",
                  "local_steps": "local steps E", "batch_size": "batch size B", "restarts": "restarts R"}  # fmt: skip


def strength_curves(results: dict, metric: str = "psnr"):
    """One panel per defense: mean ``metric`` against strength (log axis where the strengths span a factor of 10
    or more), one line per attack with a ± std band, the attack's undefended level as a dashed line, from a
    defenses ``results.json``."""
    import matplotlib.pyplot as plt

    rows = results["rows"]
    defenses = list(dict.fromkeys(r["defense"] for r in rows if r["defense"] is not None))
    attacks = list(dict.fromkeys(r["attack"] for r in rows))
    fig, axes = plt.subplots(1, max(1, len(defenses)), figsize=(3.4 * max(1, len(defenses)), 3.0), squeeze=False)
    for ax, d in zip(axes[0], defenses):
        for a in attacks:
            pts = sorted({r["strength"] for r in rows if r["defense"] == d and r["attack"] == a})
            vals = [[r[metric] for r in rows if r["attack"] == a and r["defense"] == d and r["strength"] == s
                     and r[metric] is not None] for s in pts]  # fmt: skip
            means = [sum(v) / len(v) if v else float("nan") for v in vals]
            stds = [float(torch.tensor(v, dtype=torch.float64).std()) if len(v) > 1 else 0.0 for v in vals]
            line = ax.plot(pts, means, marker="o", label=a)[0]
            ax.fill_between(pts, [m - e for m, e in zip(means, stds)], [m + e for m, e in zip(means, stds)],
                            color=line.get_color(), alpha=0.15, lw=0)  # fmt: skip
            base = _mean(rows, a, None, None, metric)
            if base is not None:
                ax.axhline(base, color=line.get_color(), ls="--", lw=0.8)
        strengths = [r["strength"] for r in rows if r["defense"] == d]
        if min(strengths) > 0 and max(strengths) / min(strengths) >= 10:
            ax.set_xscale("log")
        eps = {r["strength"]: r["epsilon"] for r in rows if r["defense"] == d and r.get("epsilon") is not None}
        if eps:  # DP-SGD: each noise multiplier with the epsilon its updates record
            ax.set_xticks(sorted(eps), [f"{s:g}\nε={eps[s]:.3g}" for s in sorted(eps)], fontsize=7)
            ax.minorticks_off()
        ax.set_title(f"{d} (dashed: undefended)", fontsize=9)
        ax.set_xlabel(STRENGTH_LABELS.get(d, "strength"), fontsize=8)
        ax.set_ylabel(METRIC_LABELS.get(metric, metric), fontsize=8)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def _mean(rows, attack, defense, strength, metric):
    vals = [r[metric] for r in rows if r["attack"] == attack and r["defense"] == defense
            and r["strength"] == strength and r[metric] is not None]  # fmt: skip
    return sum(vals) / len(vals) if vals else None


def sweep_curve(results: dict, setting: str, values: list, *, metric: str = "psnr", log_x: bool = True,
                unit: str = "dB"):  # fmt: skip
    """``metric`` against one varied ``setting`` (a :func:`gifd.variants.compare_variants` run whose variants
    are ``f"{setting}={value}"``): one line per attack (mean ± std band), every image as a faint point."""
    import matplotlib.pyplot as plt

    base = results["params"]["methods"]
    by_attack: dict[str, dict[float, list[float]]] = {}
    for r in results["rows"]:
        if "[" in r["method"] or r.get(metric) is None:
            continue
        attack = r["method"].split("/", 1)[1] if "/" in r["method"] else base[0]
        x = float(r["variant"].split("=", 1)[1])
        by_attack.setdefault(attack, {}).setdefault(x, []).append(r[metric])
    fig, ax = plt.subplots(figsize=(4.6, 3.2))
    for attack, points in by_attack.items():
        xs = sorted(points)
        means = [sum(points[x]) / len(points[x]) for x in xs]
        stds = [float(torch.tensor(points[x], dtype=torch.float32).std()) if len(points[x]) > 1 else 0.0 for x in xs]
        line = ax.plot(xs, means, marker="o", label=attack)[0]
        ax.fill_between(xs, [m - s for m, s in zip(means, stds)], [m + s for m, s in zip(means, stds)],
                        color=line.get_color(), alpha=0.15, lw=0)  # fmt: skip
        for x in xs:
            ax.scatter([x] * len(points[x]), points[x], color=line.get_color(), alpha=0.25, s=8, lw=0)
    if log_x:
        ax.set_xscale("log")
    ax.set_xticks([float(v) for v in values], [str(v) for v in values])  # the swept values, nothing between
    ax.minorticks_off()
    ax.set_xlabel(SETTING_LABELS.get(setting, setting.replace("_", " ")), fontsize=8)
    ax.set_ylabel(METRIC_LABELS.get(metric, metric) if unit == "dB" else f"{metric} ({unit})", fontsize=8)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
