"""Presets: the tuned settings reach every runner, ``paper`` ignores them, and a changed preset never reuses a
result made under another (attack cache, grid, Flower settings)."""

import json
from pathlib import Path

import pytest
import torch

import gifd.presets as presets
from gifd.attacks import make_attack
from gifd.data import load_images
from gifd.experiment import ExperimentParams, run_comparison
from gifd.generators import load_generator
from gifd.keys import attack_parts
from gifd.models import make_model
from gifd.presets import TUNED, attack_overrides, tuned


def test_every_tuned_preset_is_the_winner_of_its_table():
    """Each ``figures/tuning_<method>[_<family>]/results.json`` written by tools/tune.py has its winner in TUNED
    (as ``method`` or ``method@family``), and every TUNED entry has such a table."""
    import json
    from pathlib import Path

    tables = {}
    for path in sorted((Path(__file__).resolve().parents[1] / "figures").glob("tuning_*/results.json")):
        table = json.loads(path.read_text())
        if "winner_config" not in table:  # the older radius-only tuning (tools/tune_gifd_radii.py)
            continue
        suffix = path.parent.name.removeprefix(f"tuning_{table['method']}")
        tables[table["method"] + (f"@{suffix[1:]}" if suffix else "")] = table["winner_config"]
    assert tables and tables == TUNED


def test_overrides_apply_preset_then_restarts_then_the_runs_own_config(monkeypatch):
    monkeypatch.setitem(TUNED, "gi", {"restarts": 1, "lr": 0.3})
    assert attack_overrides("gi") == {"restarts": 1, "lr": 0.3}
    assert attack_overrides("gi", preset="paper") == {}
    assert attack_overrides("gi", restarts=2) == {"restarts": 2, "lr": 0.3}
    assert attack_overrides("gi", restarts=2, attack_config={"gi": {"restarts": 3}, "ig": {"lr": 9}}) == {
        "restarts": 3,
        "lr": 0.3,
    }
    with pytest.raises(ValueError, match="unknown preset 'best'"):
        attack_overrides("gi", preset="best")


def test_generative_presets_are_per_generator_family(monkeypatch):
    G = load_generator("random-dcgan", num_classes=10)
    monkeypatch.setitem(TUNED, "gias@dcgan", {"weight_lr": 1e-3})
    monkeypatch.setitem(TUNED, "gias", {"weight_lr": 5.0})  # a family-less entry never applies to a generator
    assert presets.family(G) == "dcgan"
    assert tuned("gias", G) == {"weight_lr": 1e-3}
    monkeypatch.delitem(TUNED, "gias@dcgan")
    assert tuned("gias", G) == {}


def test_a_pixel_method_tuned_on_a_data_set_uses_that_entry_there_only(monkeypatch):
    monkeypatch.setitem(TUNED, "ig@tinyimagenet", {"restarts": 2, "lr": 0.05})
    assert tuned("ig", dataset="tinyimagenet") == {"restarts": 2, "lr": 0.05}
    assert tuned("ig", dataset="cifar10") == tuned("ig") == TUNED["ig"]
    assert attack_overrides("ig", dataset="tinyimagenet", restarts=1) == {"restarts": 1, "lr": 0.05}
    G = load_generator("random-dcgan")  # a generative method's entry follows its generator, never the data set
    monkeypatch.setitem(TUNED, "gifd@tinyimagenet", {"restarts": 3})
    assert tuned("gifd", G, dataset="tinyimagenet") == TUNED["gifd@dcgan"]


def test_a_run_resolves_the_preset_into_its_attack_and_cache_key(tmp_path, monkeypatch):
    monkeypatch.setitem(TUNED, "ig", {"restarts": 1, "total_variation": 3e-3})
    data = load_images("samples", None, [0])
    model = make_model("convnet", data.task.num_classes, seed=0)
    a = make_attack("ig", model, data.task, budget=8, **attack_overrides("ig"))
    b = make_attack("ig", model, data.task, budget=8, **attack_overrides("ig", preset="paper"))
    assert (a.config.total_variation, a.config.restarts) == (3e-3, 1)
    assert attack_parts(a) != attack_parts(b)
    base = dict(dataset="samples", indices=[0], budget=8, methods=["ig"], model="convnet", lpips=False,
                progress=False)  # fmt: skip
    res = run_comparison({**base, "out_dir": str(tmp_path / "t")}).results
    paper = run_comparison({**base, "out_dir": str(tmp_path / "t"), "preset": "paper"}).results
    cached = sorted(p.name for p in (tmp_path / "t" / "attacks").glob("ig-*.pt"))
    assert len(cached) == 2  # the paper run did not reuse the tuned run's result
    assert res["attacks"][0]["config"]["config"]["total_variation"] == pytest.approx(3e-3)
    assert paper["attacks"][0]["config"]["config"]["total_variation"] == pytest.approx(1e-4)
    assert ExperimentParams(**{**base, "out_dir": "x"}).preset == "tuned"


def test_the_flower_setting_cache_follows_the_resolved_preset(tmp_path, monkeypatch):
    from gifd.flower_audit import FlowerAuditParams, _attack_parts, _overrides, _setting_cache

    p = FlowerAuditParams.from_dict(dict(dataset="samples", indices=[0, 1], partition_sizes=[1], methods=["ig"],
                                              out_dir=str(tmp_path)))  # fmt: skip
    setting = next(iter(p.settings()))
    task = load_images("samples", None, [0]).task
    model = make_model("convnet", task.num_classes, seed=0)
    before = _setting_cache(p, setting, _attack_parts(p, model, task))
    monkeypatch.setitem(TUNED, "ig", {"restarts": 1, "lr": 0.5})
    assert {k: _overrides(p, "ig", None)[k] for k in ("restarts", "lr")} == {"restarts": 1, "lr": 0.5}
    assert _setting_cache(p, setting, _attack_parts(p, model, task)) != before
    with pytest.raises(ValueError, match="unknown preset"):
        FlowerAuditParams.from_dict(dict(dataset="samples", indices=[0, 1], partition_sizes=[1], preset="x"))


def test_the_results_record_the_resolved_configuration(tmp_path):
    torch.manual_seed(0)
    res = run_comparison(dict(dataset="samples", indices=[0], budget=8, methods=["ig"], model="convnet",
                              lpips=False, progress=False, out_dir=str(tmp_path))).results  # fmt: skip
    config = res["attacks"][0]["config"]["config"]
    for k, v in attack_overrides("ig").items():
        assert config[k] == pytest.approx(v)


def test_the_tuning_protocol_runs_six_configurations_on_training_images(shared_data, tmp_path):
    """tools/tune.py on Tiny-ImageNet *training* images (64x64): restarts 1, 2, 4, then the three knobs at the best
    restart count; the winner is the best mean PSNR, and the table names the data set and the command."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("tune", Path(__file__).resolve().parents[1] / "tools" / "tune.py")
    tune = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tune)
    data = str(shared_data / "tinyimagenet_rangeetpan" / "tiny_imagenet_train_wnids_words.tar.gz")
    res = tune.tune("ig", data, [25000], 8, tmp_path, "bundled", "cmd", dataset="tinyimagenet")
    names = ["R=1", "R=2", "R=4"]
    best_r = max(names, key=lambda n: res["mean"][n]["psnr"])
    assert list(res["configs"]) == names + [f"{best_r},{k}" for k in tune.KNOBS["ig"]]
    assert res["winner"] == max(res["configs"], key=lambda n: res["mean"][n]["psnr"])
    assert res["dataset"] == "tinyimagenet" and res["split"] == "train"
    assert [r["image"] for r in res["rows"]] == [25000] * 6
    assert "Tiny-ImageNet training images [25000]" in (tmp_path / "table.md").read_text()


def test_every_committed_tuned_run_ran_the_presets_it_records():
    """A committed results.json that says ``preset: tuned`` must show, in each attack's recorded configuration, the
    settings :func:`attack_overrides` gives today (so a newly tuned preset marks every figure made before it as
    stale until it is regenerated), and must record its attacks' configurations at all."""
    from gifd.attacks import GENERATIVE

    generators = {}
    checked = 0
    for path in sorted(Path(__file__).parents[1].glob("figures/**/results.json")):
        res = json.loads(path.read_text())
        params = res.get("params", {})
        if params.get("preset") != "tuned":
            continue
        records = [a["config"] for a in res.get("attacks", []) if "config" in a] + list(
            res.get("attack_configs", {}).values()
        )
        assert records, f"{path} says preset 'tuned' but records no attack configurations"
        for record in records:
            method, config = record["method"], record["config"]
            gen = None
            if method in GENERATIVE:
                name = params.get("generator", "bundled")
                gen = generators.setdefault(name, load_generator(name, num_classes=10))
            want = attack_overrides(method, preset="tuned", generator=gen, restarts=params.get("restarts"),
                                    attack_config=params.get("attack_config"),
                                    dataset=params.get("dataset"))  # fmt: skip
            got = {k: config.get(k) for k in want}
            assert got == want, f"{path}: {method} ran {got}, the tuned preset is {want}: regenerate it"
            checked += 1
    assert checked > 0
