"""tools/tune.py: the protocol's six configurations, its winner, and a resumed tuning that leaves each finished
configuration's record (commit, seconds) as it was."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("tune", ROOT / "tools" / "tune.py")
tune = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tune)

SMALL = dict(split="test", model="convnet", lpips=False)  # the bundled samples have no training split


def test_a_resumed_tuning_keeps_each_configurations_record_and_finds_the_same_winner(tmp_path):
    out = tmp_path / "tuning_ig"
    first = tune.tune("ig", None, [0], 8, out, "bundled", "test", dataset="samples", settings=SMALL)
    assert len(first["configs"]) == 6 and first["winner"] in first["configs"]
    means = {n: first["mean"][n]["psnr"] for n in first["configs"]}
    assert first["winner"] == max(means, key=means.get)
    records = {n: (out / n / "results.json").read_text() for n in first["configs"]}
    table = json.loads(records["R=2"])
    table["timing"]["marker"] = "the first run"  # what a rewrite would lose
    del table["params"]["batch_order"]  # a record older than a parameter (it reads as the default)
    table["params"]["progress"] = True  # and one no result depends on
    table["rows"][0]["psnr"] *= 1 + 1e-7  # float noise, as a redraw on another CPU gives
    (out / "R=2" / "results.json").write_text(json.dumps(table))
    records["R=2"] = (out / "R=2" / "results.json").read_text()
    summary = json.loads((out / "results.json").read_text())
    summary["timing"]["marker"] = "the first run"
    (out / "results.json").write_text(json.dumps(summary))

    again = tune.tune("ig", None, [0], 8, out, "bundled", "test", dataset="samples", settings=SMALL)
    assert again["winner"] == first["winner"] and again["rows"] == first["rows"]
    for name, text in records.items():
        assert (out / name / "results.json").read_text() == text, name
    assert json.loads((out / "results.json").read_text())["timing"]["marker"] == "the first run"


def test_close_forgives_float_noise_and_nothing_else():
    assert tune.close({"a": [1.0, 2]}, {"a": [1.0 + 1e-7, 2]})
    assert not tune.close({"a": [1.0, 2]}, {"a": [1.001, 2]})
    assert not tune.close({"a": 1.0}, {"a": 1.0, "b": 0})
    assert not tune.close([1.0], [1.0, 1.0]) and not tune.close(1.0, "1.0") and not tune.close(2, 3)


def test_a_configuration_rerun_under_other_settings_is_rewritten(tmp_path):
    out = tmp_path / "tuning_ig"
    tune.tune("ig", None, [0], 8, out, "bundled", "test", dataset="samples", settings=SMALL)
    tune.tune("ig", None, [0], 12, out, "bundled", "test", dataset="samples", settings=SMALL)
    assert json.loads((out / "R=1" / "results.json").read_text())["params"]["budget"] == 12
