"""Grids of independent jobs (attacks x defenses x strengths x images x seeds), resumable, in-process or on Ray.

Each finished job appends one JSON record to ``out_dir/records.jsonl`` (flushed and fsynced), keyed by
:func:`gifd.keys.result_key` over everything that determines it: the job's own fields, every shared setting
(``context``: data, model, budget, ...) and the attack's resolved configuration (``configs``). Running the
same grid again skips every job that has a record, so a run killed half-way
loses only the jobs in flight; a half-written last line is ignored. With ``backend="ray"`` every job is a Ray
task (one GPU each where GPUs exist), retried if its worker dies; ``address`` joins an existing cluster.
The same seeds give the same records on both backends.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

__all__ = ["Job", "make_grid", "run_grid", "load_records", "BACKENDS", "job_images", "cell_strips", "image_path"]

BACKENDS = ("inprocess", "ray")


@dataclass(frozen=True)
class Job:
    """One cell of a grid: an attack on some images under a defense at a strength, with a seed."""

    attack: str
    defense: str | None
    strength: float | None
    images: tuple[int, ...]
    seed: int
    context: tuple = field(default=(), compare=False)  # shared settings (sorted items)
    config: str = field(default="", compare=False)  # the attack's resolved configuration (JSON), if known

    @property
    def key(self) -> str:
        """:func:`gifd.keys.result_key` of the settings, the job's fields and the attack's configuration."""
        from .keys import label_parts, result_key

        parts = {"attack": self.attack, "defense": self.defense, "strength": self.strength,
                 "images": list(self.images), "seed": self.seed}  # fmt: skip
        if self.config:
            parts["attack_config"] = json.loads(self.config)
            strategy = parts["attack_config"].get("config", {}).get("label_strategy", "")
            parts.update(label_parts(strategy, len(self.images)))
        from .defenses import REVISIONS

        if REVISIONS.get(self.defense, 1) > 1:
            parts["defense_revision"] = REVISIONS[self.defense]
        return result_key(self.settings(), **parts)

    def settings(self) -> dict:
        return dict(self.context)


def make_grid(attacks: Iterable[str], defenses: dict[str, list[float]] | None, images: list[int], batch_size: int,
              seeds: Iterable[int] = (0,), baseline: bool = True, configs: dict[str, dict] | None = None,
              **context) -> list[Job]:  # fmt: skip
    """The cross product; ``defenses`` maps a defense name to its strengths (``"none"`` or ``{}``: undefended).
    ``baseline`` adds the undefended cell. Batch ``b`` of seed ``s`` is attacked with seed ``s + b``.
    ``context`` holds the settings every job shares (dataset, model, budget, ...); ``configs`` maps an attack to
    what identifies it beyond them (:func:`gifd.defense_grid.attack_config`). Both enter the jobs' keys."""
    attacks = list(attacks)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if batch_size > len(images) or len(images) % batch_size:
        raise ValueError(f"the {len(images)} images do not split into batches of {batch_size}")
    batches = [tuple(images[i : i + batch_size]) for i in range(0, len(images), batch_size)]
    cells: list[tuple[str | None, float | None]] = [(None, None)] if baseline else []
    for name, strengths in (defenses or {}).items():
        if name != "none":
            from .defenses import Defense

            cells += [(name, Defense(name, float(s)).strength) for s in strengths]  # validates early
    ctx = tuple(sorted(context.items(), key=lambda kv: kv[0]))
    ctx = tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in ctx)
    if not cells:
        raise ValueError("the grid is empty: no defenses and baseline=False")
    # batch b of seed s attacks with seed s + b, as run_comparison does (so its runs can supply the baseline)
    cfg = {a: json.dumps((configs or {}).get(a) or {}, sort_keys=True, default=str) if configs else "" for a in attacks}
    return [Job(a, d, s, batch, seed + b, ctx, cfg[a]) for a in attacks for d, s in cells
            for b, batch in enumerate(batches) for seed in seeds]  # fmt: skip


def load_records(out_dir: str | Path) -> dict[str, dict]:
    """Finished records by job key (a truncated last line from a killed run is skipped)."""
    path = Path(out_dir) / "records.jsonl"
    records: dict[str, dict] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            records[rec["key"]] = rec
    return records


def _append(path: Path, record: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())


def _repair(path: Path) -> None:
    """Drop a half-written last line so that appends start on a fresh line."""
    if path.is_file():
        data = path.read_bytes()
        if data and not data.endswith(b"\n"):
            path.write_bytes(data[: data.rfind(b"\n") + 1])


def run_grid(jobs: list[Job], job_fn: Callable[[Job], dict], out_dir: str | Path, *, backend: str = "inprocess",
             address: str | None = None, retries: int = 2, progress: bool = True) -> list[dict]:  # fmt: skip
    """Run the jobs that have no record yet; return every record of ``jobs`` (in job order)."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose from {BACKENDS}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "records.jsonl"
    _repair(path)
    done = load_records(out)
    todo = [j for j in jobs if j.key not in done]
    if todo:
        from .cache import refuse_if_redraw_only

        refuse_if_redraw_only(f"{len(todo)} of the {len(jobs)} grid jobs (the first: {todo[0].key})", path)
    from tqdm.auto import tqdm

    bar = tqdm(total=len(jobs), initial=len(jobs) - len(todo), desc="grid", disable=not progress)
    if backend == "inprocess":
        for job in todo:
            rec = _record(job, job_fn)
            _append(path, rec)
            done[job.key] = rec
            bar.update(1)
    else:
        os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
        import ray

        if not ray.is_initialized():
            ray.init(address=address, **({} if address else {"num_cpus": os.cpu_count()}), log_to_driver=False)
        gpus = 1 if ray.cluster_resources().get("GPU", 0) > 0 else 0  # the cluster's GPUs, not the driver's
        remote = ray.remote(num_gpus=gpus, max_retries=retries)(_record)
        pending = {remote.remote(job, job_fn): job for job in todo}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                pending.pop(ref)
                rec = ray.get(ref)
                _append(path, rec)
                done[rec["key"]] = rec
                bar.update(1)
    bar.close()
    return [done[j.key] for j in jobs]


def _record(job: Job, job_fn: Callable[[Job], dict]) -> dict:
    start = time.perf_counter()
    result = job_fn(job)
    return {"key": job.key, **{k: v for k, v in asdict(job).items() if k not in ("context", "config")},
            "images": list(job.images), **result, "job_seconds": time.perf_counter() - start}  # fmt: skip


def image_path(image_dir: str | Path, job: Job) -> Path:
    """Where :func:`defense_job` keeps a job's reconstruction (uint8 tensor) when ``image_dir`` is set."""
    import hashlib

    return Path(image_dir) / f"{hashlib.sha1(job.key.encode()).hexdigest()[:16]}.pt"


def job_images(image_dir: str | Path, job: Job):
    """A job's reconstruction as ``[0, 1]`` floats (``None`` if it was not kept)."""
    import torch

    path = image_path(image_dir, job)
    return torch.load(path, weights_only=True).float() / 255 if path.is_file() else None


def cell_strips(image_dir: str | Path, jobs: list[Job]) -> list[tuple[str, torch.Tensor]]:
    """One ``(title, images)`` row per attack and defense setting: the kept reconstructions of all its batches
    (first seed) in job order; a cell with a missing reconstruction is left out."""
    import torch

    cells: dict[tuple, dict[tuple[int, ...], Job]] = {}
    for job in jobs:
        cells.setdefault((job.attack, job.defense, job.strength), {}).setdefault(job.images, job)
    rows = []
    for (attack, defense, strength), by_batch in cells.items():
        images = [job_images(image_dir, j) for j in by_batch.values()]
        if all(i is not None for i in images):
            rows.append((f"{attack} " + ("none" if defense is None else f"{defense} {strength:g}"), torch.cat(images)))
    return rows
