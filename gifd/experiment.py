"""The experiment runner behind the notebooks: one function from parameters to ``results.json``.

Contract (external checks depend on it): ``out_dir/results.json`` holds

* ``rows``: one per (method, image): ``method``, ``image`` (dataset index), ``psnr``, ``ssim``, ``lpips``
  (``null`` when LPIPS is unavailable), ``label_acc`` (of the image's batch), ``seconds`` (the attack's wall
  time for the batch divided by its size), plus ``label``, ``mse``, ``logit_mse``, ``score``,
  ``evaluations``;
* ``mean``: per method, the means of ``psnr``, ``ssim``, ``lpips``, ``label_acc``, ``seconds`` (and ``n``);
  ``std``: the standard deviations;
* ``params``: every parameter of the run; ``versions``: interpreter, packages, git commit;
  ``timing``: wall-clock seconds of the whole run.
"""

from __future__ import annotations

import copy
import hashlib
import json
import statistics
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import torch

from .attacks import ATTACKS, GENERATIVE, make_attack
from .data import DATASETS, ImageSet, load_images
from .fl import LocalTraining, ThreatModel, client_update
from .labels import infer_labels
from .metrics import evaluate_batch, hungarian_match
from .models import make_model
from .provenance import versions, write_json

__all__ = ["ExperimentParams", "Comparison", "run_comparison", "summarise"]

METRICS = ("psnr", "ssim", "lpips", "label_acc", "seconds")


@dataclass
class ExperimentParams:
    """Parameters of a comparison run (the notebooks' ``parameters`` cell maps onto these)."""

    dataset: str = "samples"
    data_root: str | None = None
    indices: list[int] = field(default_factory=lambda: [0])
    batch_size: int = 1
    budget: int = 200
    methods: list[str] = field(default_factory=lambda: ["ig"])
    seed: int = 123
    device: str = "cpu"
    out_dir: str = "build/results"
    model: str = "resnet18"
    bn_mode: str = "eval"
    protocol: str = "fedsgd"
    local_steps: int = 1
    local_lr: float = 1e-4
    local_batch_size: int | None = None
    restarts: int | None = None
    label_strategy: str = "auto"
    image_size: int | None = None
    split: str = "test"
    lpips: bool = True
    progress: bool = True
    generator: str = "bundled"
    label_mapping: str = "identity"
    mapping_probes: int = 4
    gifd_radii: list[float] | None = None
    gifd_last_stage: int | None = None
    stage_rows: bool = False
    resume: bool = True
    cache_dir: str | None = None  # where finished attacks are kept (default out_dir/attacks)

    @classmethod
    def from_dict(cls, params: dict) -> ExperimentParams:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(params) - known)
        if unknown:
            raise ValueError(f"unknown parameter {unknown[0]!r}; known parameters: {sorted(known)}")
        return cls(**params).validated()

    def validated(self) -> ExperimentParams:
        if self.dataset not in DATASETS:
            raise ValueError(f"unknown dataset {self.dataset!r}; choose one of {DATASETS}")
        self.methods = [self.methods] if isinstance(self.methods, str) else list(self.methods)
        bad = [m for m in self.methods if m not in ATTACKS]
        if bad:
            raise ValueError(f"unknown method {bad[0]!r}; choose from {sorted(ATTACKS)}")
        if not self.methods:
            raise ValueError("methods is empty")
        self.indices = [int(i) for i in ([self.indices] if isinstance(self.indices, int) else self.indices)]
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.budget < 2:
            raise ValueError(f"budget must be >= 2, got {self.budget}")
        if self.device == "auto":
            self.device = "cuda" if torch.cuda.is_available() else "cpu"
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"device {self.device!r} requested but CUDA is not available")
        from .label_mapping import MAPPINGS

        if self.label_mapping not in MAPPINGS:
            raise ValueError(f"unknown label mapping {self.label_mapping!r}; choose from {MAPPINGS}")
        if self.protocol not in ("fedsgd", "fedavg"):
            raise ValueError(f"unknown protocol {self.protocol!r}; use 'fedsgd' or 'fedavg'")
        return self


@dataclass
class Comparison:
    """What a run produced: the results dictionary, the client images and each method's reconstructions
    (matched to the ground truth's order)."""

    results: dict
    data: ImageSet
    reconstructions: dict[str, torch.Tensor]
    out_dir: Path
    attack_results: dict[str, list] = field(default_factory=dict)  # method -> AttackResult per batch


def summarise(rows: list[dict], methods: list[str]) -> tuple[dict, dict]:
    mean, std = {}, {}
    for m in methods:
        mine = [r for r in rows if r["method"] == m]
        mean[m], std[m] = {"n": len(mine)}, {}
        for k in METRICS:
            vals = [r[k] for r in mine if r.get(k) is not None]
            vals = [v for v in vals if v == v and v not in (float("inf"), float("-inf"))]
            mean[m][k] = statistics.fmean(vals) if vals else None
            std[m][k] = statistics.stdev(vals) if len(vals) > 1 else None
    return mean, std


def result_rows(method: str, indices: list[int], labels: torch.Tensor, scores: list[dict], result) -> list[dict]:
    """The ``results.json`` rows of one attacked batch (``scores`` from :func:`gifd.metrics.evaluate_batch`)."""
    return [
        {
            "method": method,
            "image": index,
            "label": int(labels[i]),
            "psnr": s["psnr"],
            "ssim": s["ssim"],
            "lpips": s["lpips"],
            "label_acc": s["label_acc"],
            "seconds": result.seconds / len(indices),
            "mse": s["mse"],
            "logit_mse": s["logit_mse"],
            "score": result.score,
            "evaluations": result.evaluations,
        }
        for i, (index, s) in enumerate(zip(indices, scores))
    ]


def stage_rows(method, idx, labels, images, result, model, task, lpips_model) -> list[dict]:
    """Rows ``<method>[K=k]``: the best image over stages 0..k by gradient distance (GIFD's choice of K,
    evaluated post hoc from one run, as the reference's ``Best_first_k_layer``)."""
    rows, best, best_score = [], None, float("inf")
    for k, (imgs, scores) in enumerate(zip(result.extras["stage_images"], result.extras["stage_scores"])):
        if scores < best_score:
            best, best_score = imgs, scores
        ev = evaluate_batch(best.cpu(), result.labels.cpu(), images.cpu(), labels.cpu(), model=model, task=task,
                            lpips=lpips_model)  # fmt: skip
        stage_result = replace(result, score=best_score)
        rows += result_rows(f"{method}[K={k}]", idx, labels, ev, stage_result)
    return rows


def write_results(out_dir: Path, rows: list[dict], methods: list[str], params: dict, start: float,
                  started_versions: dict | None = None, **extra) -> dict:  # fmt: skip
    """Summarise ``rows`` and write ``out_dir/results.json`` (the contract above); return the dictionary.
    ``started_versions``: :func:`gifd.provenance.versions` taken when the run started (default: now)."""
    methods = list(dict.fromkeys([*methods, *(r["method"] for r in rows)]))
    mean, std = summarise(rows, methods)
    results = {
        "rows": rows,
        "mean": mean,
        "std": std,
        "params": params,
        "versions": started_versions or versions(),
        "timing": {"total_seconds": time.perf_counter() - start},
        **extra,
    }
    write_json(Path(out_dir) / "results.json", results)
    return results


def run_comparison(params: dict | ExperimentParams, *, lpips_model=None) -> Comparison:
    """Attack every batch of the selected images with every method; write ``out_dir/results.json``."""
    p = params if isinstance(params, ExperimentParams) else ExperimentParams.from_dict(params)
    p.validated()
    start, started_versions = time.perf_counter(), versions()
    device = torch.device(p.device)
    data = load_images(p.dataset, p.data_root, p.indices, image_size=p.image_size, split=p.split)
    task = data.task
    model = make_model(p.model, task.num_classes, in_channels=task.image_shape[0], seed=p.seed, bn_mode=p.bn_mode)
    # evaluation (logit MSE) runs on the CPU beside LPIPS: a CPU copy, so the victim stays on its device
    eval_model = model if device.type == "cpu" else copy.deepcopy(model)
    model = model.to(device)
    if p.lpips and lpips_model is None:
        from .perceptual import load_lpips

        lpips_model = load_lpips("alex")
    local = LocalTraining(p.local_steps, p.local_lr, p.local_batch_size) if p.protocol == "fedavg" else None
    generator = None
    if any(m in GENERATIVE for m in p.methods):
        from .generators import load_generator

        generator = load_generator(p.generator, num_classes=task.num_classes).to(device)
    out_dir = Path(p.out_dir)
    rows: list[dict] = []
    recon: dict[str, list[torch.Tensor]] = {m: [] for m in p.methods}
    kept: dict[str, list] = {m: [] for m in p.methods}
    attack_summaries = []
    for b, (idx, images, labels) in enumerate(data.batches(p.batch_size)):
        images, labels = images.to(device), labels.to(device)
        update = client_update(model, task, images, labels, protocol=p.protocol, local=local, threat=ThreatModel())
        mapping = None
        if generator is not None and generator.num_classes:
            from .label_mapping import make_mapping

            cache = mapping_cache_path(out_dir, p, idx) if p.resume and p.label_mapping == "search" else None
            mapping = load_mapping(cache)
            if mapping is None:
                inferred = infer_labels(update, task.num_classes, strategy=p.label_strategy)
                mapping = make_mapping(p.label_mapping, inferred, generator.num_classes,
                                       num_fl_classes=task.num_classes, seed=p.seed + b, model=model, task=task,
                                       update=update, G=generator, probes=p.mapping_probes)  # fmt: skip
                if cache is not None:
                    save_mapping(cache, mapping)
        for method in p.methods:
            overrides = {"budget": p.budget, "seed": p.seed + b, "label_strategy": p.label_strategy,
                         "progress": p.progress}  # fmt: skip
            if p.restarts is not None:
                overrides["restarts"] = p.restarts
            if method in GENERATIVE:
                overrides["generator"] = generator
                if mapping is not None:
                    overrides["gen_labels"] = mapping
                    overrides["budget"] = p.budget - mapping.evaluations
                if method == "gifd":
                    overrides.update(radii=p.gifd_radii, last_stage=p.gifd_last_stage)
            attack = make_attack(method, model, task, **overrides)
            cache = attack_cache_path(out_dir, p, attack, idx) if p.resume else None
            result = load_attack(cache)
            if result is None:
                result = attack(update)
                if mapping is not None and method in GENERATIVE:
                    result.extras["label_mapping"] = {"name": mapping.name, "evaluations": mapping.evaluations,
                                                      "conditioning": mapping.conditioning.tolist()}  # fmt: skip
                    result.evaluations += mapping.evaluations
                result.extras["versions"] = started_versions
                if cache is not None:
                    save_attack(cache, result)
            scores = evaluate_batch(
                result.images.cpu(), result.labels.cpu(), images.cpu(), labels.cpu(),
                model=eval_model, task=task, lpips=lpips_model,
            )  # fmt: skip
            recon[method].append(result.images.cpu()[hungarian_match(result.images.cpu(), images.cpu())])
            attack_summaries.append({"batch": b, **result.summary(), "versions": result.extras.get("versions")})
            kept[method].append(result)
            rows += result_rows(method, idx, labels, scores, result)
            if p.stage_rows and "stage_images" in result.extras:
                rows += stage_rows(method, idx, labels, images, result, eval_model, task, lpips_model)
    results = write_results(out_dir, rows, p.methods, asdict(p), start, started_versions, attacks=attack_summaries,
                            lpips_net=None if lpips_model is None else "alex")  # fmt: skip
    return Comparison(results, data, {m: torch.cat(v) for m, v in recon.items()}, out_dir, kept)


# Every finished (method, batch) attack is saved under ``out_dir/attacks/``, keyed by the parameters that
# determine it, so an interrupted run resumes, several processes can share one run (each given a subset of the
# methods), and rerunning a notebook to redraw its figure costs nothing. Parameters that do not change the
# attack (methods, out_dir, progress, lpips, stage_rows, resume) are not part of the key; the attack's own
# configuration is. A change to an attack's *code* is not: run with ``resume=False`` (or delete
# ``out_dir/attacks``) after one.
_NOT_IN_KEY = {"methods", "out_dir", "progress", "lpips", "stage_rows", "resume", "cache_dir"}


def attack_cache_path(out_dir: Path, p: ExperimentParams, attack, indices: list[int]) -> Path:
    """Where the result of ``attack`` on the batch ``indices`` is kept; the key covers the run's parameters,
    the attack's full configuration and the settings it resolved from presets (GIFD's radii, K, steps)."""
    skip = set() if attack.name in GENERATIVE else {"generator", "label_mapping", "mapping_probes"}
    resolved = {k: v for k, v in vars(attack).items() if isinstance(v, (bool, int, float, str, tuple, list))}
    config = {k: v for k, v in _plain(asdict(attack.config)).items() if k != "progress"}
    return _cache_path(out_dir, p, attack.name, indices, skip, method=attack.name, config=config, resolved=resolved)


def mapping_cache_path(out_dir: Path, p: ExperimentParams, indices: list[int]) -> Path:
    """Where the ``search`` label mapping chosen for the batch ``indices`` is kept (it costs gradient-matching
    evaluations, so a redraw from the attack cache should not repeat it; the other mappings are free)."""
    return _cache_path(out_dir, p, "mapping", indices, set(), kind="label_mapping")


def _cache_path(out_dir: Path, p: ExperimentParams, prefix: str, indices: list[int], skip: set, **extra) -> Path:
    # GIFD's radii and K are in the attack's own configuration; the mapping does not depend on them
    skip = _NOT_IN_KEY | {"gifd_radii", "gifd_last_stage"} | skip
    key = {k: v for k, v in asdict(p).items() if k not in skip}
    key.update(indices=list(indices), **extra)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]
    folder = Path(p.cache_dir) if p.cache_dir else Path(out_dir) / "attacks"
    return folder / f"{prefix}-{indices[0]}-{digest}.pt"


def _save_cached(path: Path, record) -> None:
    """Write a dataclass record atomically (a killed run never leaves a half-written file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({k: _plain(v) for k, v in asdict(record).items()}, tmp)
    tmp.replace(path)


def _load_cached(path: Path | None, cls):
    """The ``cls`` record cached at ``path`` (read with ``weights_only=True``), or ``None`` when there is none."""
    if path is None or not path.is_file():
        return None
    return cls(**torch.load(path, weights_only=True))


def save_mapping(path: Path, mapping) -> None:
    _save_cached(path, mapping)


def load_mapping(path: Path | None):
    """The cached :class:`~gifd.label_mapping.LabelMap` at ``path``, or ``None`` when there is none."""
    from .label_mapping import LabelMap

    return _load_cached(path, LabelMap)


def _plain(obj):
    """``obj`` reduced to what ``torch.load(weights_only=True)`` reads back (tensors, numbers, strings,
    lists, dicts); anything else (callables, modules) becomes ``None``."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    for kind in (bool, int, float, str):  # subclasses (torch's TorchVersion is a str) become their base
        if isinstance(obj, kind):
            return kind(obj)
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    return None


def save_attack(path: Path, result) -> None:
    """Write one attack's result atomically (a killed run never leaves a half-written file)."""
    _save_cached(path, result)


def load_attack(path: Path | None):
    """The cached :class:`~gifd.attacks.base.AttackResult` at ``path``, or ``None`` when there is none."""
    from .attacks.base import AttackResult

    return _load_cached(path, AttackResult)


#: Settings two runs must share for their rows to sit in one table.
COMPARABLE = ("dataset", "indices", "batch_size", "budget", "seed", "model", "bn_mode", "protocol", "local_steps",
              "local_lr", "local_batch_size", "label_strategy", "image_size", "split")  # fmt: skip


def merge_results(paths: list[str | Path]) -> dict:
    """One results dictionary from several runs' ``results.json`` on the same images and settings
    (:data:`COMPARABLE`; a mismatch is an error naming the setting). A method in several runs is kept from
    the first. ``sources`` records each run's directory, commit and methods."""
    runs = []
    for path in paths:
        file = Path(path) / "results.json" if Path(path).is_dir() else Path(path)
        if not file.is_file():
            raise FileNotFoundError(f"no results.json at {file}")
        runs.append((file, json.loads(file.read_text())))
    if not runs:
        raise ValueError("no runs to merge")
    first_file, first = runs[0]
    for file, res in runs[1:]:
        for key in COMPARABLE:
            a, b = first["params"].get(key), res["params"].get(key)
            if a != b:
                raise ValueError(f"{file} differs from {first_file} in {key!r}: {b!r} vs {a!r}; not comparable")
    rows, methods, sources = [], [], []
    for file, res in runs:
        mine = [m for m in res["mean"] if m not in methods]
        rows += [r for r in res["rows"] if r["method"] in mine]
        methods += mine
        sources.append({"results": str(file), "methods": mine, "git_commit": res["versions"].get("git_commit")})
    mean, std = summarise(rows, methods)
    params = {k: first["params"].get(k) for k in COMPARABLE}
    return {"rows": rows, "mean": mean, "std": std, "params": params, "sources": sources}


REFERENCE_KEYS = ("dataset", "data_root", "indices", "batch_size", "budget", "seed", "model", "restarts")
# settings a defenses-grid job does not vary: a reference run must have kept them at their defaults
REFERENCE_DEFAULTS = ("bn_mode", "protocol", "label_strategy", "image_size", "split")


def undefended_rows(paths: list[str | Path], params: dict) -> tuple[list[dict], list[dict]]:
    """The undefended cells of a defenses grid taken from earlier comparison runs (``results.json`` of
    :func:`run_comparison`) instead of recomputing them: rows ``attack@none`` for the grid's attacks, and one
    source entry per run. A run is accepted only if it made the same client updates and attacks as the grid's
    undefended jobs would (:data:`REFERENCE_KEYS` equal to ``params``, :data:`REFERENCE_DEFAULTS`, the same
    generator for generative attacks); otherwise the error names the differing setting. Call it before the
    grid runs, so that a wrong reference fails before hours of attacks."""
    if paths and params.get("baseline", True):
        raise ValueError("undefended_from is given and baseline=True: the undefended cells would come twice")
    rows, sources = [], []
    for path in paths:
        file = Path(path) / "results.json" if Path(path).is_dir() else Path(path)
        if not file.is_file():
            raise FileNotFoundError(f"undefended_from: no results.json at {file}")
        ref = json.loads(file.read_text())
        rp = ref["params"]
        defaults = ExperimentParams()
        expected = {
            **{k: params.get(k) for k in REFERENCE_KEYS},
            **{k: getattr(defaults, k) for k in REFERENCE_DEFAULTS},
        }
        for key, want in expected.items():
            if rp.get(key) != want:
                raise ValueError(f"undefended_from {file}: {key!r} is {rp.get(key)!r}, the grid has {want!r}")
        mine = []
        for attack in params.get("methods", []):
            if attack in ref["mean"] and attack not in {r["attack"] for r in rows}:
                if attack in GENERATIVE and rp.get("generator") != params.get("generator", "bundled"):
                    raise ValueError(f"undefended_from {file}: generator {rp.get('generator')!r} differs")
                mine.append(attack)
                rows += [{**{k: r[k] for k in ("image", "psnr", "ssim", "lpips", "label_acc", "seconds", "score")},
                          "method": f"{attack}@none", "attack": attack, "defense": None, "strength": None,
                          "seed": rp["seed"], "source": str(file)}
                         for r in ref["rows"] if r["method"] == attack]  # fmt: skip
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
    return write_results(Path(out_dir), rows, methods, params, start, **({"sources": sources} if sources else {}))


def provenance(notebook: str, params: dict | ExperimentParams) -> dict:
    """What a figure records about its origin: the notebook, its parameters and the code version."""
    from .provenance import git_commit

    p = asdict(params) if isinstance(params, ExperimentParams) else dict(params)
    return {"notebook": notebook, "parameters": p, "git_commit": git_commit()}


def save_comparison(comparison: Comparison, notebook: str, title: str | None = None):
    """Write ``reconstructions.png`` and ``table.md`` beside ``results.json``; return (figure, table)."""
    from .plots import reconstruction_grid, results_table, save_figure

    res = comparison.results
    captions = {}
    for m in comparison.reconstructions:
        mine = [r for r in res["rows"] if r["method"] == m]
        captions[m] = [f"{r['psnr']:.1f} dB" for r in mine]
    titles = [comparison.data.classes[int(lbl)][:12] for lbl in comparison.data.labels]
    fig = reconstruction_grid(
        comparison.data.images, comparison.reconstructions, captions=captions, column_titles=titles, title=title
    )
    save_figure(fig, comparison.out_dir / "reconstructions.png", provenance(notebook, res["params"]))
    table = results_table(res)
    (comparison.out_dir / "table.md").write_text(
        f"<!-- made by notebooks/{notebook}; parameters in results.json -->\n{table}\n"
    )
    return fig, table


def compare_variants(params: dict, variants: dict[str, dict], *, lpips_model=None) -> Comparison:
    """Run the methods under several settings (``variants``: name -> parameter overrides) on the same images
    and merge them into one ``results.json`` whose methods are the variant names (``variant/method`` for
    several methods; sub-runs in ``out_dir/<variant>/``, one attack cache in ``out_dir/attacks``)."""
    if not variants:
        raise ValueError("variants is empty")
    base = ExperimentParams.from_dict(params)
    single = len(base.methods) == 1
    if lpips_model is None and base.lpips:
        from .perceptual import load_lpips

        lpips_model = load_lpips("alex")
    start = time.perf_counter()
    out_dir = Path(base.out_dir)
    rows, recon, data, subs = [], {}, None, {}
    for name, overrides in variants.items():
        # one attack cache for all variants: variants that amount to the same attack share its result
        sub = {**asdict(base), **overrides, "out_dir": str(out_dir / name),
               "cache_dir": base.cache_dir or str(out_dir / "attacks")}  # fmt: skip
        comp = run_comparison(sub, lpips_model=lpips_model)
        data = comp.data
        subs[name] = overrides

        def label(m: str, name: str = name) -> str:  # "variant" for one method (keeps "[K=k]" rows), else v/m
            return name + m[len(base.methods[0]) :] if single else f"{name}/{m}"

        rows += [{**r, "method": label(r["method"]), "variant": name} for r in comp.results["rows"]]
        recon.update({label(m): imgs for m, imgs in comp.reconstructions.items()})
    names = list(variants) if single else [f"{v}/{m}" for v in variants for m in base.methods]
    results = write_results(out_dir, rows, names, {**asdict(base), "variants": subs}, start)
    return Comparison(results, data, recon, out_dir)
