"""The experiment runner behind the notebooks: one function from parameters to ``results.json``.

Contract (external checks depend on it): ``out_dir/results.json`` holds

* ``rows``: one per (method, image): ``method``, ``image`` (dataset index), ``psnr``, ``ssim``, ``lpips``
  (``null`` when LPIPS is unavailable), ``label_acc`` (of the image's batch), ``seconds`` (the attack's wall
  time for the batch divided by its size), plus ``label``, ``mse``, ``logit_mse``, ``score``,
  ``evaluations``;
* ``mean``: per method, the means of ``psnr``, ``ssim``, ``lpips``, ``label_acc``, ``seconds`` (and ``n``);
  ``std``: the standard deviations;
* ``params``: every parameter of the run; ``versions``: interpreter, packages, git commit;
  ``timing``: wall-clock seconds of the whole run (``total_seconds``) and the sum of the attacks' own seconds
  (``attack_seconds``, what the results cost even when this run read them from the attack cache);
* the resolved configuration of every attack (:func:`gifd.keys.attack_record`): in ``attacks`` (one entry per
  attack, its ``config``) or, where every client's attack shares it (the Flower audit), ``attack_configs``.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import torch

from .attacks import ATTACKS, GENERATIVE, make_attack
from .cache import (
    adopt,
    attack_cache_path,
    load_attack,
    load_mapping,
    mapping_cache_path,
    refuse_if_redraw_only,
    save_attack,
    save_mapping,
)
from .data import DATASETS, ImageSet, load_images
from .fl import LocalTraining, ThreatModel, client_update
from .keys import attack_record
from .labels import infer_labels
from .metrics import evaluate_batch, hungarian_match
from .models import make_model
from .presets import attack_overrides
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
    # the order batches are attacked in, "forward" or "reverse" (each keeps its number, seed and key): two processes
    # sharing one cache_dir, one each way, split a run between two cores and meet in the middle
    batch_order: str = "forward"
    reuse_from: list[str] | None = None  # other runs' attack caches whose files with this run's keys are reused
    preset: str = "tuned"  # attack settings: "tuned" (gifd.presets.TUNED where tuned) or "paper"
    attack_config: dict | None = None  # method -> config overrides on top of the preset (tuning runs)

    @classmethod
    def from_dict(cls, params: dict) -> ExperimentParams:
        from .checks import known_fields

        return cls(**known_fields(cls, params)).validated()

    def validated(self) -> ExperimentParams:
        from .checks import check_types

        self.methods = [self.methods] if isinstance(self.methods, str) else self.methods
        self.indices = [self.indices] if isinstance(self.indices, int) and not isinstance(self.indices, bool) else (
            self.indices)  # fmt: skip
        check_types(self)
        self.methods, self.indices = list(self.methods), [int(i) for i in self.indices]
        if self.dataset not in DATASETS:
            raise ValueError(f"unknown dataset {self.dataset!r}; choose one of {DATASETS}")
        bad = [m for m in self.methods if m not in ATTACKS]
        if bad:
            raise ValueError(f"unknown method {bad[0]!r}; choose from {sorted(ATTACKS)}")
        if not self.methods:
            raise ValueError("methods is empty")
        if not self.indices:
            raise ValueError("indices is empty")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.batch_size > len(self.indices) or len(self.indices) % self.batch_size:
            raise ValueError(f"batch_size {self.batch_size} does not split the {len(self.indices)} images of indices "
                             "into whole batches")  # fmt: skip
        if self.budget < 2:
            raise ValueError(f"budget must be >= 2, got {self.budget}")
        from .presets import check_preset

        check_preset(self.preset)
        for method, overrides in (self.attack_config or {}).items():
            if method not in ATTACKS:
                raise ValueError(f"attack_config names unknown method {method!r}; choose from {sorted(ATTACKS)}")
            known = {f.name for f in fields(ATTACKS[method].Config)}
            bad = sorted(set(overrides) - known)
            if bad:
                raise ValueError(f"attack_config[{method!r}]: unknown parameter {bad[0]!r}; known: {sorted(known)}")
        if self.device == "auto":
            self.device = "cuda" if torch.cuda.is_available() else "cpu"
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"device {self.device!r} requested but CUDA is not available")
        from .label_mapping import MAPPINGS

        if self.label_mapping not in MAPPINGS:
            raise ValueError(f"unknown label mapping {self.label_mapping!r}; choose from {MAPPINGS}")
        if self.batch_order not in ("forward", "reverse"):
            raise ValueError(f"unknown batch_order {self.batch_order!r}; use 'forward' or 'reverse'")
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
                  started_versions: dict | None = None, reference: str = "gifd", **extra) -> dict:  # fmt: skip
    """Summarise ``rows`` and write ``out_dir/results.json`` (the contract above); return the dictionary.
    ``started_versions``: :func:`gifd.provenance.versions` taken when the run started (default: now). When the
    ``reference`` method ran beside others, ``paired`` holds its paired PSNR comparison with each of them
    (:mod:`gifd.stats`: mean difference, 95 % bootstrap CI, wins)."""
    attacked = set(methods)
    methods = list(dict.fromkeys([*methods, *(r["method"] for r in rows)]))
    mean, std = summarise(rows, methods)
    results = {"rows": rows, "mean": mean, "std": std}
    if reference in mean and len(mean) > 1 and rows:
        from .stats import paired_against

        results["paired"] = paired_against(results, reference)
    results.update({
        "params": params,
        "versions": started_versions or versions(),
        "timing": {
            "total_seconds": time.perf_counter() - start,  # this run (a redraw from the attack cache: seconds)
            "attack_seconds": sum(r["seconds"] for r in rows if r["method"] in attacked
                                  and r.get("seconds") is not None),  # cached or not; not the post-hoc stage rows
        },
        **extra,
    })  # fmt: skip
    write_json(Path(out_dir) / "results.json", results)
    return results


def run_comparison(params: dict | ExperimentParams, *, lpips_model=None) -> Comparison:
    """Attack every batch of the selected images with every method; write ``out_dir/results.json``."""
    p = params if isinstance(params, ExperimentParams) else ExperimentParams.from_dict(params)
    p.validated()
    from .checks import writable_dir

    out_dir = writable_dir(p.out_dir)
    if p.cache_dir:
        writable_dir(p.cache_dir, "cache_dir")
    start, started_versions = time.perf_counter(), versions()
    device = torch.device(p.device)
    data = load_images(p.dataset, p.data_root, p.indices, image_size=p.image_size, split=p.split)
    task = data.task
    model = make_model(p.model, task.num_classes, in_channels=task.image_shape[0], seed=p.seed, bn_mode=p.bn_mode)
    model = model.to(device)
    eval_model = model  # the logit MSE runs on the victim's device; the image metrics and LPIPS on the CPU
    if p.lpips and lpips_model is None:
        from .perceptual import load_lpips

        lpips_model = load_lpips("alex")
    local = LocalTraining(p.local_steps, p.local_lr, p.local_batch_size) if p.protocol == "fedavg" else None
    generator = None
    if any(m in GENERATIVE for m in p.methods):
        from .generators import load_generator

        generator = load_generator(p.generator, num_classes=task.num_classes).to(device)
    done: dict[int, dict] = {}  # batch number -> its rows, reconstructions, results and attack summaries
    batches = list(enumerate(data.batches(p.batch_size)))
    for b, (idx, images, labels) in reversed(batches) if p.batch_order == "reverse" else batches:
        got = done[b] = {"rows": [], "recon": {}, "kept": {}, "attacks": []}
        images, labels = images.to(device), labels.to(device)
        update = client_update(model, task, images, labels, protocol=p.protocol, local=local, threat=ThreatModel())
        mapping = None
        if generator is not None and generator.num_classes:
            from .label_mapping import make_mapping

            cache = mapping_cache_path(out_dir, p, idx) if p.resume and p.label_mapping == "search" else None
            adopt(cache, p.reuse_from)
            mapping = load_mapping(cache)
            if mapping is None:
                if p.label_mapping == "search":
                    refuse_if_redraw_only(f"the label-mapping search of batch {b} (indices {idx})", cache)
                inferred = infer_labels(update, task.num_classes, strategy=p.label_strategy)
                mapping = make_mapping(p.label_mapping, inferred, generator.num_classes,
                                       num_fl_classes=task.num_classes, seed=p.seed + b, model=model, task=task,
                                       update=update, G=generator, probes=p.mapping_probes)  # fmt: skip
                if cache is not None:
                    save_mapping(cache, mapping)
        for method in p.methods:
            overrides = {"budget": p.budget, "seed": p.seed + b, "label_strategy": p.label_strategy,
                         "progress": p.progress}  # fmt: skip
            overrides.update(attack_overrides(method, preset=p.preset, restarts=p.restarts, dataset=p.dataset,
                                              generator=generator if method in GENERATIVE else None,
                                              attack_config=p.attack_config))  # fmt: skip
            if method in GENERATIVE:
                overrides["generator"] = generator
                if mapping is not None:
                    overrides["gen_labels"] = mapping
                    overrides["budget"] = p.budget - mapping.evaluations
                if method == "gifd":
                    overrides.update({k: v for k, v in (("radii", p.gifd_radii), ("last_stage", p.gifd_last_stage))
                                      if v is not None})  # fmt: skip
            attack = make_attack(method, model, task, **overrides)
            cache = attack_cache_path(out_dir, p, attack, idx) if p.resume else None
            adopt(cache, p.reuse_from)
            result = load_attack(cache)
            if result is None:
                refuse_if_redraw_only(f"the {method} attack on batch {b} (indices {idx})", cache)
                result = attack(update)
                if mapping is not None and method in GENERATIVE:
                    result.extras["label_mapping"] = {"name": mapping.name, "evaluations": mapping.evaluations,
                                                      "conditioning": mapping.conditioning.tolist()}  # fmt: skip
                    result.evaluations += mapping.evaluations
                result.extras["versions"] = started_versions
                result.extras["device"] = str(device)
                if cache is not None:
                    save_attack(cache, result)
            scores = evaluate_batch(
                result.images.cpu(), result.labels.cpu(), images.cpu(), labels.cpu(),
                model=eval_model, task=task, lpips=lpips_model,
            )  # fmt: skip
            got["recon"][method] = result.images.cpu()[hungarian_match(result.images.cpu(), images.cpu())]
            got["attacks"].append({"batch": b, **result.summary(), "versions": result.extras.get("versions"),
                                   "config": attack_record(attack)})  # fmt: skip
            got["kept"][method] = result
            got["rows"] += result_rows(method, idx, labels, scores, result)
            if p.stage_rows and "stage_images" in result.extras:
                got["rows"] += stage_rows(method, idx, labels, images, result, eval_model, task, lpips_model)
    ordered = [done[b] for b in sorted(done)]  # batch order, whichever order they ran in
    rows = [row for got in ordered for row in got["rows"]]
    attack_summaries = [a for got in ordered for a in got["attacks"]]
    recon = {m: [got["recon"][m] for got in ordered] for m in p.methods}
    kept = {m: [got["kept"][m] for got in ordered] for m in p.methods}
    results = write_results(out_dir, rows, p.methods, asdict(p), start, started_versions, attacks=attack_summaries,
                            lpips_net=None if lpips_model is None else "alex")  # fmt: skip
    return Comparison(results, data, {m: torch.cat(v) for m, v in recon.items()}, out_dir, kept)


def provenance(notebook: str, params: dict | ExperimentParams) -> dict:
    """What a figure records about its origin: the notebook, its parameters and the code version."""
    from .provenance import git_commit

    p = asdict(params) if isinstance(params, ExperimentParams) else dict(params)
    return {"notebook": notebook, "parameters": p, "git_commit": git_commit()}


def write_table(res: dict, out_dir: Path, notebook: str, pairs: list[tuple[str, str, str]] | None = None) -> str:
    """Write ``table.md`` for a run's ``results.json`` content and return it: the results table, the paired sections
    against GIFD when ``res`` has them, and ``pairs`` (comparisons ``(a, b, label)``, :func:`gifd.stats.pairs_table`,
    e.g. a sweep's :func:`gifd.variants.sweep_pairs`)."""
    from .plots import results_table
    from .stats import paired_sections, pairs_table

    table = results_table(res)
    if "paired" in res:
        table += paired_sections(res, "gifd")
    if pairs:
        table += "\n\nPaired per image (PSNR):\n\n" + pairs_table(res, pairs, "comparison")
    header = f"<!-- made by notebooks/{notebook}; parameters in results.json -->"
    (Path(out_dir) / "table.md").write_text(f"{header}\n{table}\n")
    return table


def save_comparison(comparison: Comparison, notebook: str, title: str | None = None,
                    pairs: list[tuple[str, str, str]] | None = None):  # fmt: skip
    """Write ``reconstructions.png`` and ``table.md`` (:func:`write_table`, with ``pairs``) beside ``results.json``;
    return (figure, table)."""
    from .plots import reconstruction_grid, save_figure

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
    table = write_table(res, comparison.out_dir, notebook, pairs)
    return fig, table
