import json

import pytest

from gifd.experiment import run_comparison

CONTRACT_ROW = {"method", "image", "psnr", "ssim", "lpips", "label_acc", "seconds"}


def test_results_json_follows_the_contract(tmp_path):
    out = tmp_path / "run"
    comp = run_comparison(dict(dataset="samples", indices=[0, 1, 2], batch_size=3, budget=8, methods=["ig", "dlg"],
                               model="convnet", out_dir=str(out), progress=False, lpips=False))  # fmt: skip
    res = json.loads((out / "results.json").read_text())
    assert len(res["rows"]) == 6
    for row in res["rows"]:
        assert CONTRACT_ROW <= set(row)
    assert {r["image"] for r in res["rows"]} == {0, 1, 2}
    assert set(res["mean"]) == {"ig", "dlg"}
    for stats in res["mean"].values():
        assert {"psnr", "ssim", "lpips", "label_acc", "seconds"} <= set(stats)
    assert res["params"]["budget"] == 8 and res["params"]["seed"] == 123
    assert res["versions"]["torch"] and "python" in res["versions"]
    assert res["timing"]["total_seconds"] > 0
    assert res["timing"]["attack_seconds"] == pytest.approx(sum(r["seconds"] for r in res["rows"]))
    assert comp.reconstructions["ig"].shape == (3, 3, 32, 32)
    mean_psnr = sum(r["psnr"] for r in res["rows"] if r["method"] == "ig") / 3
    assert res["mean"]["ig"]["psnr"] == pytest.approx(mean_psnr)


@pytest.mark.parametrize(
    "bad,message",
    [
        ({"dataset": "imagenet"}, "unknown dataset 'imagenet'"),
        ({"methods": ["ig", "gifd++"]}, "unknown method 'gifd\\+\\+'"),
        ({"budgett": 3}, "unknown parameter 'budgett'"),
        ({"dataset": "cifar10", "data_root": "/nonexistent/cifar"}, "does not exist"),
        ({"device": "cuda:0"}, "CUDA is not available"),
    ],
)
def test_bad_parameters_fail_before_anything_is_written(tmp_path, bad, message):
    import torch

    if "device" in bad and torch.cuda.is_available():
        pytest.skip("a GPU is present")
    out = tmp_path / "run"
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        run_comparison({"out_dir": str(out), "budget": 8, "progress": False, **bad})
    assert not out.exists()


def test_the_explorer_widget_builds_for_every_method(tmp_path):
    from gifd.widgets import explore

    comp = run_comparison(dict(dataset="samples", indices=[0], budget=40, methods=["ig", "gifd"], model="convnet",
                               generator="random-dcgan", restarts=2, out_dir=str(tmp_path), progress=False,
                               lpips=False))  # fmt: skip
    box = explore(comp)
    method, _, stage = box.children[0].children
    method.value = "gifd"
    assert stage.max == 3 and not stage.disabled
    stage.value = 2
    method.value = "ig"
    assert stage.disabled


def test_finished_attacks_are_reused_and_a_changed_setting_is_rerun(tmp_path, monkeypatch):
    import gifd.experiment as ex

    base = dict(dataset="samples", indices=[0, 1], budget=40, model="convnet", generator="random-dcgan", restarts=2,
                out_dir=str(tmp_path), progress=False, lpips=False)  # fmt: skip
    # two processes may share a run, each given some of the methods
    rows = run_comparison({**base, "methods": ["ig"]}).results["rows"]
    rows += run_comparison({**base, "methods": ["gifd"]}).results["rows"]
    first = {(r["method"], r["image"]): r["psnr"] for r in rows}
    assert len(list((tmp_path / "attacks").glob("*.pt"))) == 4

    missed = []

    def load(path, original=ex.load_attack):
        result = original(path)
        if result is None:
            missed.append(path.name.split("-")[0] if path else "no cache")
        return result

    monkeypatch.setattr(ex, "load_attack", load)
    comp = run_comparison({**base, "methods": ["gifd", "ig"]})
    assert missed == []  # everything came from the cache
    assert {(r["method"], r["image"]): r["psnr"] for r in comp.results["rows"]} == first
    assert comp.reconstructions["gifd"].shape == (2, 3, 32, 32)
    assert all(a["versions"]["torch"] for a in comp.results["attacks"])

    # a different GIFD radius is a different attack: both GIFD batches run again, IG's do not
    run_comparison({**base, "methods": ["gifd", "ig"], "gifd_radii": [0.0, 5.0]})
    assert missed == ["gifd", "gifd"] and len(list((tmp_path / "attacks").glob("gifd-*.pt"))) == 4
    run_comparison({**base, "methods": ["ig"], "resume": False, "seed": 7})
    assert missed[2:] == ["no cache", "no cache"] and len(list((tmp_path / "attacks").glob("*.pt"))) == 6


def test_runs_on_the_same_images_merge_into_one_table_and_others_do_not(tmp_path):
    from gifd.reproduce import main

    base = dict(dataset="samples", indices=[0], budget=8, model="convnet", progress=False, lpips=False)
    run_comparison({**base, "methods": ["ig"], "out_dir": str(tmp_path / "a")})
    run_comparison({**base, "methods": ["dlg", "ig"], "out_dir": str(tmp_path / "b")})
    main(["table", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "ab.md")])
    merged = json.loads((tmp_path / "ab.json").read_text())
    assert list(merged["mean"]) == ["ig", "dlg"] and len(merged["rows"]) == 2
    assert [s["methods"] for s in merged["sources"]] == [["ig"], ["dlg"]]
    assert "| dlg | 1 |" in (tmp_path / "ab.md").read_text()

    main(["table", str(tmp_path / "a"), f"{tmp_path / 'b'}:ig=ig/b", "--out", str(tmp_path / "renamed.md")])
    renamed = json.loads((tmp_path / "renamed.json").read_text())  # the same attack from two runs, side by side
    assert list(renamed["mean"]) == ["ig", "dlg", "ig/b"] and len(renamed["rows"]) == 3
    assert [s["methods"] for s in renamed["sources"]] == [["ig"], ["dlg", "ig/b"]]
    with pytest.raises(SystemExit, match="has no method 'gifd' to rename"):
        main(["table", str(tmp_path / "a"), f"{tmp_path / 'b'}:gifd=x"])

    run_comparison({**base, "methods": ["ig"], "seed": 5, "out_dir": str(tmp_path / "c")})
    with pytest.raises(SystemExit, match="differs .* in 'seed': 5 vs 123"):
        main(["table", str(tmp_path / "a"), str(tmp_path / "c")])


def test_a_renamed_gifd_run_pairs_with_the_other_priors_gifd_image_by_image(tmp_path):
    from gifd.merge import merge_results

    def run(name, psnrs):
        rows = [{"method": m, "image": i, "psnr": p, "ssim": 0.0, "lpips": None, "label_acc": 1.0, "seconds": 1.0}
                for i, p in enumerate(psnrs) for m in ("gifd", "gifd[K=0]")]  # fmt: skip
        mean = {m: {} for m in ("gifd", "gifd[K=0]")}
        params = {"dataset": "tinyimagenet", "indices": [0, 1, 2]}
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text(json.dumps(
            {"rows": rows, "mean": mean, "params": params, "versions": {"git_commit": name}}))  # fmt: skip

    run("own_prior", [20.0, 21.0, 22.0])
    run("cifar_prior", [18.0, 20.5, 23.0])
    merged = merge_results([tmp_path / "own_prior", f"{tmp_path / 'cifar_prior'}:gifd=gifd/cifar"])
    assert list(merged["mean"]) == ["gifd", "gifd[K=0]", "gifd/cifar", "gifd/cifar[K=0]"]
    paired = merged["paired"]["gifd/cifar"]
    assert paired["mean"] == pytest.approx(0.5) and paired["wins"] == 2 and paired["n"] == 3
