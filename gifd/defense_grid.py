"""The defenses experiment (notebook 04) as a grid: client update, defense, adaptive attack, evaluation.

Each job (:func:`defense_job`) is one attack on one batch under one defense at one strength; the grid
(:mod:`gifd.grid`) runs them resumably, in-process or on Ray, keyed by every setting and by each attack's
resolved configuration (:func:`attack_config`), so changing a preset or the budget never reuses an old record.
The undefended cells can come from earlier comparison runs (:func:`undefended_rows`) when those made the same
updates and attacks.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

from .attacks import GENERATIVE, make_attack
from .grid import Job, image_path, make_grid

__all__ = ["attack_config", "make_defense_grid", "defense_job", "undefended_rows", "defense_results", "defense_pairs",
           "privacy_table", "plan_defenses",
           "DefensePlan"]  # fmt: skip

#: the 04 notebook's parameters that reach the jobs' settings (every one of them enters the jobs' keys)
JOB_SETTINGS = (
    "dataset",
    "data_root",
    "model",
    "budget",
    "generator",
    "restarts",
    "lpips",
    "device",
    "preset",
    "attack_config",
)


@dataclass
class DefensePlan:
    """What :func:`plan_defenses` checked and built: the jobs, the undefended rows from earlier runs, and where
    the jobs keep their reconstructions."""

    jobs: list[Job]
    undefended: tuple[list[dict], list[dict]]
    image_dir: str


def plan_defenses(params: dict) -> DefensePlan:
    """Check the 04 notebook's ``params`` and build its grid before any job runs: ``out_dir`` must be writable,
    the batches whole, the attacks known, the undefended references (``undefended_from``) made with the same
    settings and resolved attack configurations."""
    from .checks import writable_dir

    out_dir = writable_dir(params["out_dir"])
    settings = {k: params[k] for k in JOB_SETTINGS if k in params}
    image_dir = str(out_dir.resolve() / "images")
    jobs = make_defense_grid(params["methods"], params.get("defenses"), params["indices"], params["batch_size"],
                             seeds=[params["seed"]], baseline=params.get("baseline", True), model_seed=params["seed"],
                             image_dir=image_dir, **settings)  # fmt: skip
    configs = {j.attack: json.loads(j.config) for j in jobs}
    undefended = undefended_rows(params.get("undefended_from") or [], params, configs)
    return DefensePlan(jobs, undefended, image_dir)


@functools.lru_cache(maxsize=4)
def _generator(spec: str, num_classes: int, device: str):
    """The generator of ``spec`` (loaded once per process: in-process grids reuse it across jobs)."""
    from .generators import load_generator

    return load_generator(spec, num_classes=num_classes).to(device)


@functools.lru_cache(maxsize=2)
def _victim(name: str, num_classes: int, channels: int, seed: int, device: str):
    """The global model (built once per process: in-process grids reuse it; no job changes it)."""
    from .models import make_model

    return make_model(name, num_classes, in_channels=channels, seed=seed).to(device)


def grid_attack(name: str, settings: dict, model, task, seed: int, device: str = "cpu"):
    """The attack a defenses job runs, configured as :func:`gifd.experiment.run_comparison` configures it:
    ``settings`` give ``budget``, ``preset``, ``restarts``, ``attack_config``, ``label_strategy`` and, for
    generative attacks, ``generator``."""
    from .presets import attack_overrides

    generator = None
    if name in GENERATIVE:
        generator = _generator(settings.get("generator", "bundled"), task.num_classes, str(device))
    kw = {"budget": settings.get("budget", 200), "seed": seed, "progress": False,
          "label_strategy": settings.get("label_strategy", "auto")}  # fmt: skip
    kw.update(
        attack_overrides(
            name,
            preset=settings.get("preset", "tuned"),
            generator=generator,
            restarts=settings.get("restarts"),
            attack_config=settings.get("attack_config"),
            dataset=settings.get("dataset"),
        )
    )
    return make_attack(name, model, task, **({"generator": generator} if generator is not None else {}), **kw)


def attack_config(name: str, settings: dict) -> dict:
    """What identifies attack ``name`` under the grid's ``settings`` beyond the job's own fields:
    :func:`gifd.keys.attack_parts` of the attack a job would build (its seed left out: the job has its own)."""
    from .data import load_images
    from .keys import attack_parts

    task = load_images(settings.get("dataset", "samples"), settings.get("data_root"), [0]).task
    parts = attack_parts(grid_attack(name, settings, None, task, 0))
    parts["config"].pop("seed", None)
    return parts


def make_defense_grid(attacks: list[str], defenses: dict[str, list[float]] | None, images: list[int],
                      batch_size: int, seeds=(0,), baseline: bool = True, **settings) -> list[Job]:  # fmt: skip
    """:func:`gifd.grid.make_grid` with each attack's resolved configuration in its jobs' keys."""
    from .attacks import ATTACKS

    unknown = [a for a in attacks if a not in ATTACKS]
    if unknown:
        raise ValueError(f"unknown method {unknown[0]!r}; choose from {sorted(ATTACKS)}")
    configs = {a: attack_config(a, settings) for a in attacks}
    return make_grid(attacks, defenses, images, batch_size, seeds=seeds, baseline=baseline, configs=configs,
                     **settings)  # fmt: skip


def defense_job(job: Job) -> dict:
    """The defenses experiment's job: client update on ``job.images``, the defense, the attack, evaluation.

    Settings (``job.context``): ``dataset``, ``data_root``, ``model``, ``model_seed``, ``budget``, ``restarts``,
    ``generator``, ``label_strategy``, ``lpips``, ``image_dir``, ``device`` (``auto``, the default: the worker's
    GPU when it has one). Returns the metrics per image (lists) and their means."""
    import torch

    from .data import load_images
    from .defenses import Defense, defend
    from .fl import client_update
    from .metrics import evaluate_batch

    s = job.settings()
    device = s.get("device", "auto")
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device)
    data = load_images(s.get("dataset", "samples"), s.get("data_root"), list(job.images))
    task = data.task
    model = _victim(s.get("model", "resnet18"), task.num_classes, task.image_shape[0], s.get("model_seed", 123),
                    str(device))  # fmt: skip
    images, labels = data.images.to(device), data.labels.to(device)
    update = client_update(model, task, images, labels)
    if job.defense is not None:
        update = defend(update, Defense(job.defense, job.strength), model=model, task=task, images01=images,
                        labels=labels, seed=job.seed)  # fmt: skip
    torch.manual_seed(job.seed)
    result = grid_attack(job.attack, s, model, task, job.seed, str(device))(update)
    lp = None
    if s.get("lpips", True):
        from .perceptual import load_lpips

        lp = load_lpips("alex")
    rows = evaluate_batch(
        result.images.cpu(), result.labels.cpu(), data.images, data.labels, model=model, task=task, lpips=lp
    )
    if s.get("image_dir"):
        path = image_path(s["image_dir"], job)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save((result.images.cpu() * 255).round().to(torch.uint8), path)
    out = {k: [r[k] for r in rows] for k in ("psnr", "ssim", "lpips", "label_acc")}
    out.update({f"mean_{k}": (sum(v) / len(v) if None not in v else None) for k, v in out.items()})
    out.update(score=result.score, evaluations=result.evaluations, seconds=result.seconds)
    if update.defense and "epsilon" in update.defense:  # DP-SGD: its privacy guarantee
        out.update(epsilon=update.defense["epsilon"], delta=update.defense["delta"])
    return out


def _same_attack(file: Path, ref: dict, attack: str, parts: dict) -> None:
    """Refuse a reference run whose ``attack`` ran with another resolved configuration than the grid's."""
    recorded = [a.get("config") for a in ref.get("attacks", []) if a.get("method") == attack]
    if not recorded or recorded[0] is None:
        raise ValueError(f"undefended_from {file}: no resolved configuration of {attack!r} recorded (a run made "
                         "before configurations were recorded); rerun it")  # fmt: skip
    # the seed is the job's; gen_labels is the reference's identity mapping (label_mapping is checked above)
    mine = json.loads(json.dumps(parts, default=str))
    mine["config"] = {k: v for k, v in mine["config"].items() if k != "gen_labels"}
    theirs = {
        **recorded[0],
        "config": {k: v for k, v in recorded[0]["config"].items() if k not in ("seed", "gen_labels")},
    }
    for field in sorted(set(mine) | set(theirs)):
        if mine.get(field) != theirs.get(field):
            raise ValueError(f"undefended_from {file}: {attack!r} ran with {field} {theirs.get(field)!r}, the grid "
                             f"has {mine.get(field)!r}")  # fmt: skip


REFERENCE_KEYS = ("dataset", "data_root", "indices", "batch_size", "budget", "seed", "model", "restarts")
# settings a defenses-grid job does not vary: a reference run must have kept them at their defaults
REFERENCE_DEFAULTS = ("bn_mode", "protocol", "label_strategy", "image_size", "split", "label_mapping")


def undefended_rows(paths: list[str | Path], params: dict, configs: dict[str, dict] | None = None,
                    ) -> tuple[list[dict], list[dict]]:  # fmt: skip
    """The undefended cells of a defenses grid taken from earlier comparison runs (``results.json`` of
    :func:`run_comparison`) instead of recomputing them: rows ``attack@none`` for the grid's attacks, and one
    source entry per run. A run is accepted only if it made the same client updates and attacks as the grid's
    undefended jobs would (:data:`REFERENCE_KEYS` equal to ``params``, :data:`REFERENCE_DEFAULTS`, the same
    generator for generative attacks, and, given ``configs`` (attack -> :func:`attack_config`), the same resolved
    attack configuration); otherwise the error names the differing setting. Call it before the grid runs, so
    that a wrong reference fails before hours of attacks."""
    if paths and params.get("baseline", True):
        raise ValueError("undefended_from is given and baseline=True: the undefended cells would come twice")
    rows, sources = [], []
    for path in paths:
        file = Path(path) / "results.json" if Path(path).is_dir() else Path(path)
        if not file.is_file():
            raise FileNotFoundError(f"undefended_from: no results.json at {file}")
        ref = json.loads(file.read_text())
        rp = ref["params"]
        from .experiment import ExperimentParams
        from .keys import data_key

        defaults = ExperimentParams()
        expected = {
            **{k: params.get(k) for k in REFERENCE_KEYS},
            **{k: getattr(defaults, k) for k in REFERENCE_DEFAULTS},
        }
        for key, want in expected.items():
            # a setting the reference run does not record is newer than that run, which ran its default
            got = rp.get(key, getattr(defaults, key, None))
            if key == "indices" and isinstance(got, list) and got[: len(want or [])] == want:
                continue  # the grid's images are the reference's first ones: same batches, same seeds
            if key == "data_root" and data_key(got) == data_key(want):
                continue  # the same data at another path (as in the attack cache's keys)
            if got != want:
                raise ValueError(f"undefended_from {file}: {key!r} is {got!r}, the grid has {want!r}")
        mine = []
        for attack in params.get("methods", []):
            if attack in ref["mean"] and attack not in {r["attack"] for r in rows}:
                if attack in GENERATIVE and rp.get("generator") != params.get("generator", "bundled"):
                    raise ValueError(f"undefended_from {file}: generator {rp.get('generator')!r} differs")
                if configs is not None:
                    _same_attack(file, ref, attack, configs[attack])
                mine.append(attack)
                rows += [{**{k: r[k] for k in ("image", "psnr", "ssim", "lpips", "label_acc", "seconds", "score")},
                          "method": f"{attack}@none", "attack": attack, "defense": None, "strength": None,
                          "seed": rp["seed"], "source": str(file)}
                         for r in ref["rows"] if r["method"] == attack and r["image"] in params["indices"]]  # fmt: skip
        sources.append({"results": str(file), "attacks": mine, "git_commit": ref["versions"].get("git_commit")})
    return rows, sources


def defense_results(records: list[dict], params: dict, start: float, out_dir: str | Path,
                    undefended: tuple[list[dict], list[dict]] = ([], [])) -> dict:  # fmt: skip
    """``results.json`` of a defenses grid: one row per (attack, defense, strength, image), whose ``method``
    is ``attack@defense=strength`` (``attack@none`` undefended), plus ``attack``, ``defense``, ``strength``.
    ``undefended``: the undefended rows and their sources taken from earlier runs (:func:`undefended_rows`)."""
    rows, sources = list(undefended[0]), undefended[1]
    both = {r["attack"] for r in rows} & {rec["attack"] for rec in records if rec["defense"] is None}
    if both:
        raise ValueError(f"undefended cells of {sorted(both)} both in the grid and in undefended_from; pick one")
    for rec in records:
        method = rec["attack"] + ("@none" if rec["defense"] is None else f"@{rec['defense']}={rec['strength']:g}")
        for i, image in enumerate(rec["images"]):
            rows.append({"method": method, "image": image, "attack": rec["attack"], "defense": rec["defense"],
                         "strength": rec["strength"], "seed": rec["seed"], "psnr": rec["psnr"][i],
                         "ssim": rec["ssim"][i], "lpips": rec["lpips"][i], "label_acc": rec["label_acc"][i],
                         "seconds": rec["seconds"] / len(rec["images"]), "score": rec["score"],
                         **{k: rec[k] for k in ("epsilon", "delta") if k in rec}})  # fmt: skip
    methods = list(dict.fromkeys(r["method"] for r in rows))
    from .experiment import write_results

    return write_results(Path(out_dir), rows, methods, params, start, **({"sources": sources} if sources else {}))


def defense_pairs(results: dict) -> list[tuple[str, str, str]]:
    """What each defense costs each attack: ``(attack@defense=strength, attack@none, label)`` for every defended
    cell whose attack has undefended rows, for :func:`gifd.stats.pairs_table` (the paired difference over the
    images both ran on; negative: the defense lowered the attack's score)."""
    methods = list(dict.fromkeys(r["method"] for r in results["rows"]))
    cells = {r["method"]: r for r in results["rows"] if r.get("defense") is not None}
    return [(m, f"{r['attack']}@none", f"{r['attack']}: {r['defense']} {r['strength']:g}") for m, r in cells.items()
            if f"{r['attack']}@none" in methods]  # fmt: skip


def privacy_table(results: dict, metric: str = "psnr") -> str:
    """Markdown: per DP-SGD noise multiplier, the (ε, δ) guarantee its updates record and each attack's mean
    ``metric`` ± std over the images (undefended first, ε = ∞); ``""`` when no DP-SGD cell ran."""
    import statistics

    dp = [r for r in results["rows"] if r.get("defense") == "dpsgd"]
    if not dp:
        return ""
    attacks = list(dict.fromkeys(r["attack"] for r in dp))

    def cell(rows: list[dict], attack: str) -> str:
        vals = [r[metric] for r in rows if r["attack"] == attack and r.get(metric) is not None]
        if not vals:
            return "–"
        return f"{statistics.fmean(vals):.2f}" + (f" ± {statistics.stdev(vals):.2f}" if len(vals) > 1 else "")

    delta = dp[0].get("delta")
    lines = [f"| noise multiplier | ε (δ = {delta:g}) | " + " | ".join(f"{a} {metric}" for a in attacks) + " |",
             "|---|---|" + "---|" * len(attacks)]  # fmt: skip
    undefended = [r for r in results["rows"] if r.get("defense") is None]
    if undefended:
        lines.append("| none (undefended) | ∞ | " + " | ".join(cell(undefended, a) for a in attacks) + " |")
    for s in sorted({r["strength"] for r in dp}):
        rows = [r for r in dp if r["strength"] == s]
        eps = rows[0].get("epsilon")
        lines.append(f"| {s:g} | {eps:.3g} | " + " | ".join(cell(rows, a) for a in attacks) + " |")
    return "\n".join(lines)
