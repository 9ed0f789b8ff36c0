"""The ``06_flower_audit`` experiment: Flower simulations of a federation whose server audits its clients
(:class:`gifd.flower.AuditingStrategy`), the attacks on what it captured, their scores, ``results.json``, the
figure, the table and the curve.

Each (``local_epochs``, ``partition_sizes``) pair of :class:`FlowerAuditParams` is one Flower simulation; a finished
setting (its captures attacked and scored) is kept under ``out_dir/settings`` with a key over every setting that
changes its result (:func:`gifd.keys.result_key`), so a rerun redraws from it.
"""

from __future__ import annotations

import copy
import math
import statistics
import time
from dataclasses import asdict, dataclass, field
from logging import WARNING
from pathlib import Path

import torch
from flwr.common import ndarrays_to_parameters
from flwr.common.logger import log
from flwr.server.strategy import FedAvg, Strategy
from torch import nn

from .fl import FLTask
from .flower import MODES, AuditingStrategy, TorchClient, model_arrays

__all__ = ["FlowerAuditParams", "FlowerAudit", "run_audit", "audit_figure", "audit_curve", "audit_table"]

SIMULATION_ATTEMPTS = 3  # a simulation that fails before its first round is started again: on a loaded machine
# Ray's raylet can give up waiting for its (slow to import) agent and never come up


@dataclass
class FlowerAuditParams:
    """Parameters of ``06_flower_audit`` (its ``parameters`` cell maps onto these).

    ``indices`` are dealt to the clients: client ``k`` holds ``indices[k*n:(k+1)*n]`` for a partition size
    ``n``. Every (``local_epochs``, ``partition_sizes``) pair is one Flower simulation of ``num_clients``
    clients over ``rounds`` rounds; with ``dp_clipping_norm`` one more runs the first pair under Flower's
    client-side fixed clipping (``fixedclipping_mod`` and ``DifferentialPrivacyClientSideFixedClipping``
    with ``dp_noise_multiplier``). ``batch_size`` is the clients' local mini-batch size. The audit attacks
    ``audit_clients`` (partition ids) at ``audit_rounds`` with ``methods``.
    """

    dataset: str = "samples"
    data_root: str | None = None
    indices: list[int] = field(default_factory=lambda: list(range(8)))
    batch_size: int = 2
    budget: int = 40
    methods: list[str] = field(default_factory=lambda: ["ig"])
    seed: int = 123
    device: str = "cpu"
    out_dir: str = "build/06_flower_audit"
    num_clients: int = 2
    rounds: int = 2
    local_epochs: list[int] = field(default_factory=lambda: [1])
    partition_sizes: list[int] = field(default_factory=lambda: [4])
    lr: float = 0.01
    audit_rounds: list[int] = field(default_factory=lambda: [1, 2])
    audit_clients: list[int] = field(default_factory=lambda: [0])
    mode: str = "gradient"
    shuffle: bool = True
    dp_clipping_norm: float | None = None
    dp_noise_multiplier: float = 1.0
    model: str = "resnet18"
    bn_mode: str = "eval"
    restarts: int | None = None
    preset: str = "tuned"  # attack settings: "tuned" (gifd.presets.TUNED where tuned) or "paper"
    label_strategy: str = "llg"  # a client's partition repeats labels (Yin et al.'s rule assumes distinct ones)
    lpips: bool = True
    generator: str = "bundled"
    progress: bool = True
    max_images: int = 8
    client_cpus: float = 1.0
    resume: bool = True  # reuse finished settings kept in out_dir/settings (False: rerun every simulation)

    @classmethod
    def from_dict(cls, params: dict) -> FlowerAuditParams:
        from .checks import known_fields

        return cls(**known_fields(cls, params)).validated()

    def validated(self) -> FlowerAuditParams:
        from .attacks import ATTACKS
        from .data import DATASETS

        if self.dataset not in DATASETS:
            raise ValueError(f"unknown dataset {self.dataset!r}; choose one of {DATASETS}")
        self.methods = [self.methods] if isinstance(self.methods, str) else list(self.methods)
        bad = [m for m in self.methods if m not in ATTACKS]
        if bad or not self.methods:
            raise ValueError(f"unknown method {bad[0] if bad else None!r}; choose from {sorted(ATTACKS)}")
        for name in ("indices", "local_epochs", "partition_sizes", "audit_rounds", "audit_clients"):
            value = getattr(self, name)
            setattr(self, name, [int(v) for v in ([value] if isinstance(value, int) else value)])
        for name in ("local_epochs", "partition_sizes"):
            if not getattr(self, name) or min(getattr(self, name)) < 1:
                raise ValueError(f"{name} must list positive numbers, got {getattr(self, name)}")
        for name in ("batch_size", "num_clients", "rounds", "max_images"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.budget < 2:
            raise ValueError(f"budget must be >= 2, got {self.budget}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.mode not in MODES:
            raise ValueError(f"unknown audit mode {self.mode!r}; choose one of {MODES}")
        from .presets import check_preset

        check_preset(self.preset)
        from .labels import LABEL_STRATEGIES

        if self.label_strategy not in LABEL_STRATEGIES:
            raise ValueError(f"unknown label strategy {self.label_strategy!r}; choose one of {LABEL_STRATEGIES}")
        outside = [r for r in self.audit_rounds if not 1 <= r <= self.rounds]
        if outside:
            raise ValueError(f"audit round {outside[0]} is outside the {self.rounds} rounds")
        outside = [c for c in self.audit_clients if not 0 <= c < self.num_clients]
        if outside:
            raise ValueError(f"audit client {outside[0]} is outside the {self.num_clients} clients (0-based)")
        need = self.num_clients * max(self.partition_sizes)
        if len(self.indices) < need:
            raise ValueError(
                f"{self.num_clients} clients with partitions of {max(self.partition_sizes)} need {need} indices, "
                f"got {len(self.indices)}"
            )
        if self.dp_clipping_norm is not None and not self.dp_clipping_norm > 0:
            raise ValueError(f"dp_clipping_norm must be positive, got {self.dp_clipping_norm}")
        if self.dp_noise_multiplier < 0:
            raise ValueError(f"dp_noise_multiplier must be >= 0, got {self.dp_noise_multiplier}")
        if self.device == "auto":
            self.device = "cuda" if torch.cuda.is_available() else "cpu"
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"device {self.device!r} requested but CUDA is not available")
        return self

    def settings(self) -> list[dict]:
        """One dict per Flower simulation: ``name``, ``local_epochs``, ``partition_size``, ``dp``."""
        out = [{"local_epochs": e, "partition_size": n, "dp": None} for e in self.local_epochs
               for n in self.partition_sizes]  # fmt: skip
        if self.dp_clipping_norm is not None:
            dp = {"clipping_norm": self.dp_clipping_norm, "noise_multiplier": self.dp_noise_multiplier}
            out.append({**out[0], "dp": dp})
        for s in out:
            s["name"] = f"E={s['local_epochs']} n={s['partition_size']}" + (
                f" clip {s['dp']['clipping_norm']:g}" if s["dp"] else ""
            )
        return out


@dataclass
class FlowerAudit:
    """What :func:`run_audit` produced: ``results`` (as written to ``results.json``), the private images of
    every audited client (``truth[(setting, client)]``), the matched reconstructions
    (``reconstructions[(setting, client, round, method)]``) and the skipped results."""

    results: dict
    truth: dict[tuple[str, int], torch.Tensor]
    reconstructions: dict[tuple[str, int, int, str], torch.Tensor]
    skipped: list[dict]
    out_dir: Path
    #: GIFD's image at the end of each stage and its gradient distance, same keys (settings cached before these were
    #: kept have none)
    stages: dict[tuple[str, int, int, str], tuple[list[torch.Tensor], list[float]]] = field(default_factory=dict)


def _simulate(p: FlowerAuditParams, setting: dict, model: nn.Module, task: FLTask, data) -> AuditingStrategy:
    """One Flower simulation of ``setting``; returns the auditing strategy with its captures."""
    from flwr.client import ClientApp
    from flwr.client.mod import fixedclipping_mod
    from flwr.server import ServerApp, ServerAppComponents, ServerConfig
    from flwr.server.strategy import DifferentialPrivacyClientSideFixedClipping
    from flwr.simulation import run_simulation

    n, clients = setting["partition_size"], p.num_clients
    x = task.normalize(data.images)
    parts = [(x[k * n : (k + 1) * n].clone(), data.labels[k * n : (k + 1) * n].clone()) for k in range(clients)]
    client_model = copy.deepcopy(model).cpu()
    shuffle, seed = p.shuffle, p.seed

    def client_fn(context):  # plain Flower: the partition id picks the data
        pid = int(context.node_config["partition-id"])
        images, labels = parts[pid]
        return TorchClient(copy.deepcopy(client_model), images, labels, shuffle=shuffle, seed=seed + pid,
                           metrics={"partition_id": pid}).to_client()  # fmt: skip

    fit_config = {"lr": p.lr, "local_epochs": setting["local_epochs"], "batch_size": p.batch_size}
    strategy: Strategy = FedAvg(
        fraction_fit=1.0, fraction_evaluate=0.0, min_fit_clients=clients, min_available_clients=clients,
        initial_parameters=ndarrays_to_parameters(model_arrays(client_model)),
        on_fit_config_fn=lambda r: {**fit_config, "server_round": r},
    )  # fmt: skip
    mods = []
    if setting["dp"]:
        dp = setting["dp"]
        strategy = DifferentialPrivacyClientSideFixedClipping(strategy, dp["noise_multiplier"], dp["clipping_norm"],
                                                              clients)  # fmt: skip
        mods = [fixedclipping_mod]
    audit = AuditingStrategy(client_model, strategy, rounds=p.audit_rounds, clients=p.audit_clients,
                             client_key="partition_id", mode=p.mode)  # fmt: skip

    def server_fn(context):
        return ServerAppComponents(strategy=audit, config=ServerConfig(num_rounds=p.rounds))

    cpus = int(math.ceil(max(p.client_cpus, 1.0) * clients))
    for attempt in range(1, SIMULATION_ATTEMPTS + 1):
        try:
            run_simulation(ServerApp(server_fn=server_fn), ClientApp(client_fn=client_fn, mods=mods),
                           num_supernodes=clients,
                           backend_config={"client_resources": {"num_cpus": p.client_cpus, "num_gpus": 0.0},
                                           "init_args": {"num_cpus": cpus, "include_dashboard": False}})  # fmt: skip
            break
        except RuntimeError as err:  # Flower's "Simulation Runtime crashed" (e.g. Ray failed to start)
            if audit.rounds_aggregated or attempt == SIMULATION_ATTEMPTS:
                raise
            import ray

            ray.shutdown()
            log(WARNING, "audit: the simulation %r failed before round 1 (%s); starting it again", setting["name"],
                err)  # fmt: skip
    if audit.rounds_aggregated != list(range(1, p.rounds + 1)):
        raise RuntimeError(
            f"the Flower simulation {setting['name']!r} aggregated rounds {audit.rounds_aggregated} of {p.rounds}; "
            "see Flower's log above"
        )
    return audit


def _grouped(rows: list[dict]) -> tuple[dict, dict]:
    mean, std = {}, {}
    for key in dict.fromkeys(f"{r['setting']} · round {r['round']} · {r['method']}" for r in rows):
        mine = [r for r in rows if f"{r['setting']} · round {r['round']} · {r['method']}" == key]
        mean[key], std[key] = {"n": len(mine)}, {}
        for k in ("psnr", "ssim", "lpips", "label_acc", "seconds"):  # the contract's means
            vals = [r[k] for r in mine if r.get(k) is not None and math.isfinite(r[k])]
            mean[key][k] = statistics.fmean(vals) if vals else None
            std[key][k] = statistics.stdev(vals) if len(vals) > 1 else None
    return mean, std


def _overrides(p: FlowerAuditParams, method: str, generator, seed: int | None = None) -> dict:
    """``method``'s configuration in this audit: its preset, the audit's ``restarts``, budget and label strategy,
    the generator (generative methods) and ``seed`` (default the audit's; each client's attack adds its id)."""
    from .attacks import GENERATIVE
    from .presets import attack_overrides

    gen = generator if method in GENERATIVE else None
    out = attack_overrides(method, preset=p.preset, generator=gen, restarts=p.restarts, dataset=p.dataset)
    out.update(budget=p.budget, seed=p.seed if seed is None else seed, label_strategy=p.label_strategy,
               progress=p.progress)  # fmt: skip
    if gen is not None:
        out["generator"] = gen
    return out


#: parameters that do not change a setting's attacks (left out of its cache key, besides :data:`keys.NOT_IN_KEY`;
#: ``methods`` counts through the attacks' parts)
_NOT_IN_KEY = frozenset({"max_images", "client_cpus", "local_epochs", "partition_sizes", "dp_clipping_norm",
                         "dp_noise_multiplier"})  # fmt: skip


def _attack_parts(p: FlowerAuditParams, model: nn.Module, task: FLTask, generator=None) -> dict:
    """Per method, the :func:`~gifd.keys.attack_record` of its attack in this audit (resolved configuration and
    presets, revision, generator file sha256; ``seed`` the audit's, to which each client's attack adds the
    client's id): the same for every setting of the audit, recorded in results.json as ``attack_configs``."""
    from .attacks import make_attack
    from .keys import attack_record

    return {m: attack_record(make_attack(m, model, task, **_overrides(p, m, generator))) for m in p.methods}


def _setting_cache(p: FlowerAuditParams, setting: dict, attacks: dict) -> Path:
    """Where a finished setting (its simulation's attacks, scored) is kept, keyed like every stored result
    (:func:`gifd.keys.result_key`): the audit's parameters, the setting, and ``attacks``, per method the parts
    from :func:`_attack_parts`, so a newly tuned preset or a changed attack never reuses an old setting."""
    from .keys import result_key

    key = result_key(asdict(p), skip=_NOT_IN_KEY, setting=setting, attacks=attacks)
    slug = setting["name"].replace(" ", "_").replace("=", "")
    return Path(p.out_dir) / "settings" / f"{slug}-{key}.pt"


def _attack_setting(p, setting, audit, model, task, data, device, generator, lpips_model) -> dict:
    """Attack one simulation's captures with every method and score them: rows, attack summaries, matched
    reconstructions and the skipped clients (plain containers, so the setting's cache loads with
    ``weights_only=True``)."""
    from .attacks import make_attack
    from .experiment import result_rows
    from .metrics import evaluate_batch, hungarian_match

    done = {
        "rows": [],
        "attacks": [],
        "recon": [],
        "skipped": [{**s, "setting": setting["name"]} for s in audit.skipped],
    }
    n = setting["partition_size"]
    for cap in audit.captures:
        k = int(cap.client)
        idx = data.indices[k * n : (k + 1) * n]
        images, labels = data.images[k * n : (k + 1) * n], data.labels[k * n : (k + 1) * n]
        victim = cap.global_model(model).to(device)
        eval_model = cap.global_model(model)
        update = cap.update.with_tensors([t.to(device) for t in cap.update.tensors])
        steps = setting["local_epochs"] * math.ceil(n / min(p.batch_size, n))
        for method in p.methods:
            overrides = _overrides(p, method, generator, seed=p.seed + k)
            result = make_attack(method, victim, task, **overrides)(update)
            recons = result.images.cpu()
            scores = evaluate_batch(recons, result.labels.cpu(), images, labels, model=eval_model, task=task,
                                    lpips=lpips_model)  # fmt: skip
            perm = hungarian_match(recons, images)
            entry = {"client": k, "round": cap.round, "method": method, "images": recons[perm]}
            if "stage_images" in result.extras:  # GIFD: each stage's image, matched alike (for the explorer)
                entry["stages"] = [s.cpu()[perm].half() for s in result.extras["stage_images"]]
                entry["stage_scores"] = list(result.extras["stage_scores"])
            done["recon"].append(entry)
            extra = {"client": k, "round": cap.round, "setting": setting["name"],
                     "local_epochs": setting["local_epochs"], "partition_size": n, "local_steps": steps,
                     "dp_clipping_norm": setting["dp"]["clipping_norm"] if setting["dp"] else None,
                     "delta_norm": cap.delta_norm, "mode": p.mode}  # fmt: skip
            done["rows"] += [{**r, **extra} for r in result_rows(method, idx, labels, scores, result)]
            done["attacks"].append({**extra, **result.summary()})
    return done


def run_audit(params: dict | FlowerAuditParams, *, lpips_model=None) -> FlowerAudit:
    """Run every setting's Flower simulation with the auditing server, attack the captured updates with every
    method, score them against the clients' private images and write ``out_dir/results.json`` (the contract
    of :mod:`gifd.experiment`, each row with ``client``, ``round``, ``setting``, ``local_epochs``,
    ``partition_size``, ``local_steps``, ``dp_clipping_norm`` and ``delta_norm``, the norm of the update the
    server received; ``groups``: mean and std per setting, round and method)."""
    from .attacks import GENERATIVE
    from .cache import refuse_if_redraw_only
    from .data import load_images
    from .experiment import write_results
    from .metrics import psnr
    from .models import make_model
    from .provenance import versions

    p = params if isinstance(params, FlowerAuditParams) else FlowerAuditParams.from_dict(params)
    p.validated()
    start, started_versions = time.perf_counter(), versions()
    device = torch.device(p.device)
    data = load_images(p.dataset, p.data_root, p.indices)
    task = data.task
    model = make_model(p.model, task.num_classes, in_channels=task.image_shape[0], seed=p.seed, bn_mode=p.bn_mode)
    if p.lpips and lpips_model is None:
        from .perceptual import load_lpips

        lpips_model = load_lpips("alex")
    generator = None
    if any(m in GENERATIVE for m in p.methods):
        from .generators import load_generator

        generator = load_generator(p.generator, num_classes=task.num_classes).to(device)
    rows, truth, recon, stages, skipped, attacks = [], {}, {}, {}, [], []
    parts = _attack_parts(p, model, task, generator)
    for setting in p.settings():
        cache = _setting_cache(p, setting, parts) if p.resume else None
        done = torch.load(cache, weights_only=True) if cache is not None and cache.is_file() else None
        if done is None:
            refuse_if_redraw_only(f"the Flower setting {setting['name']!r}", cache)
            audit = _simulate(p, setting, model, task, data)
            done = _attack_setting(p, setting, audit, model, task, data, device, generator, lpips_model)
            if cache is not None:
                cache.parent.mkdir(parents=True, exist_ok=True)
                torch.save(done, cache.with_suffix(".partial"))
                cache.with_suffix(".partial").replace(cache)  # a killed run never leaves half a setting
        name, n = setting["name"], setting["partition_size"]
        rows += done["rows"]
        attacks += done["attacks"]
        skipped += done["skipped"]
        for k in dict.fromkeys(r["client"] for r in done["rows"]):
            truth[(name, k)] = data.images[k * n : (k + 1) * n]
        for e in done["recon"]:
            key = (name, e["client"], e["round"], e["method"])
            recon[key] = e["images"]
            if "stages" in e:
                stages[key] = ([s.float() for s in e["stages"]], e["stage_scores"])
    mean, std = _grouped(rows)
    grey = {}  # what no attack at all scores: a flat grey image against the audited clients' private images
    for (name, _), images in truth.items():
        grey.setdefault(name, []).extend(psnr(torch.full_like(images, 0.5), images).tolist())
    grey = {k: statistics.fmean(v) for k, v in grey.items()}
    results = write_results(Path(p.out_dir), rows, p.methods, asdict(p), start, started_versions,
                            groups={"mean": mean, "std": std}, skipped=skipped, attacks=attacks,
                            settings=p.settings(), lpips_net=None if lpips_model is None else "alex",
                            attack_configs=parts, flat_grey_psnr=grey)  # fmt: skip
    return FlowerAudit(results, truth, recon, skipped, Path(p.out_dir), stages)


def audit_figure(audit: FlowerAudit, max_images: int | None = None):
    """Private images and reconstructions: per setting and audited client, the client's images, then one row
    per audited round and method (mean PSNR in the row title); at most ``max_images`` columns."""
    from .plots import image_grid

    cap = max_images or audit.results["params"].get("max_images", 8)
    rows, titles = [], []
    psnr = {}
    for r in audit.results["rows"]:
        psnr.setdefault((r["setting"], r["client"], r["round"], r["method"]), []).append(r["psnr"])
    for (setting, client), images in audit.truth.items():
        rows.append(images[:cap])
        titles.append(f"{setting}\nclient {client}: private")
        for (s, c, rnd, method), imgs in audit.reconstructions.items():
            if (s, c) == (setting, client):
                vals = [v for v in psnr.get((s, c, rnd, method), []) if math.isfinite(v)]
                mean = f"{statistics.fmean(vals):.1f} dB" if vals else ""
                rows.append(imgs[:cap])
                titles.append(f"round {rnd} {method}\n{mean}")
    if not rows:
        raise ValueError("the audit captured nothing to show (see the skipped clients)")
    p = audit.results["params"]
    return image_grid(rows, row_titles=titles, title=f"Flower audit: {p['dataset']}, {p['model']}, {p['mode']} mode")


def audit_table(results: dict) -> str:
    """Markdown table of mean ± std per setting, round and method."""
    from .plots import results_table

    table = results_table({"mean": results["groups"]["mean"], "std": results["groups"]["std"]})
    if results.get("flat_grey_psnr"):
        table += (
            "\n\nNo attack at all, for reference: a flat grey image (0.5) against the same private images scores "
            + "; ".join(f"{k} {v:.2f} dB" for k, v in results["flat_grey_psnr"].items())
            + " (PSNR)."
        )
    return table


def audit_curve(results: dict, metric: str = "psnr"):
    """What leaks as local work grows: mean ``metric`` against the local epochs, one line per method and
    partition size (the runs without clipping; all audited rounds and clients), clipped runs as markers."""
    import matplotlib.pyplot as plt

    from .plots import METRIC_LABELS

    rows = results["rows"]
    fig, ax = plt.subplots(figsize=(4.2, 3.0))
    colors: dict = {}
    for method in dict.fromkeys(r["method"] for r in rows):
        for n in sorted({r["partition_size"] for r in rows}):
            for clipped in (False, True):
                mine = [r for r in rows if r["method"] == method and r["partition_size"] == n
                        and (r["dp_clipping_norm"] is not None) == clipped and r.get(metric) is not None
                        and math.isfinite(r[metric])]  # fmt: skip
                epochs = sorted({r["local_epochs"] for r in mine})
                if not epochs:
                    continue
                ys = [statistics.fmean(r[metric] for r in mine if r["local_epochs"] == e) for e in epochs]
                style = {"marker": "x", "ls": "none", "ms": 9} if clipped else {"marker": "o"}
                line = ax.plot(epochs, ys, color=colors.get((method, n)), **style,
                               label=f"{method}, n={n}" + (", clipped" if clipped else ""))[0]  # fmt: skip
                colors.setdefault((method, n), line.get_color())
    grey = [v for k, v in results.get("flat_grey_psnr", {}).items() if "clip" not in k]
    if metric == "psnr" and grey:  # what no attack scores (a flat grey image), over the unclipped settings
        ax.axhline(statistics.fmean(grey), color="0.5", ls=":", lw=1, label="flat grey image (no attack)")
    ax.set_xticks(sorted({r["local_epochs"] for r in rows}))
    ax.set_xlabel("local epochs", fontsize=8)
    ax.set_ylabel(METRIC_LABELS.get(metric, metric), fontsize=8)
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    return fig
