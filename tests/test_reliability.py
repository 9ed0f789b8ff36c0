"""Bad input and silent wrong results (issue 12): each case gives one clear, early error naming the problem, or
the right result. The error texts are asserted so that none comes back."""

import gzip
import json
import tarfile
import warnings
from pathlib import Path

import pytest
import torch

from gifd.experiment import ExperimentParams, run_comparison

SMALL = dict(dataset="samples", indices=[0], budget=8, methods=["ig"], model="convnet", restarts=2, progress=False,
             lpips=False)  # fmt: skip


# -- keys: grid records and the attack cache cover every setting ---------------------------------------------------


def test_grid_records_are_keyed_by_every_setting(tmp_path):
    from gifd.grid import make_grid, run_grid

    calls = []

    def job(j):
        calls.append(j.settings()["budget"])
        return {"value": j.settings()["budget"]}

    first = run_grid(make_grid(["ig"], None, [0, 1], 1, budget=10, model="convnet"), job, tmp_path, progress=False)
    assert calls == [10, 10] and [r["value"] for r in first] == [10, 10]
    # the same grid in the same out_dir with another budget, model or generator runs again
    for change in ({"budget": 20, "model": "convnet"}, {"budget": 10, "model": "resnet18"},
                   {"budget": 10, "model": "convnet", "generator": "dcgan:/x"}):  # fmt: skip
        calls.clear()
        again = run_grid(make_grid(["ig"], None, [0, 1], 1, **change), job, tmp_path, progress=False)
        assert len(calls) == 2 and [r["value"] for r in again] == [change["budget"]] * 2
    calls.clear()
    run_grid(make_grid(["ig"], None, [0, 1], 1, budget=10, model="convnet"), job, tmp_path, progress=False)
    assert calls == []  # the first grid's records are still there


def test_defense_grid_keys_cover_the_resolved_attack_configuration(monkeypatch):
    import gifd.attacks.gifd as gifd_module
    from gifd.defense_grid import make_defense_grid

    settings = dict(dataset="samples", model="convnet", budget=40, restarts=2)
    before = make_defense_grid(["ig", "gifd"], None, [0], 1, **settings)
    monkeypatch.setitem(gifd_module.GIFD_PRESETS, "dcgan", {**gifd_module.GIFD_PRESETS["dcgan"], "radii": (0, 7)})
    after = make_defense_grid(["ig", "gifd"], None, [0], 1, **settings)
    assert before[0].key == after[0].key  # IG did not change
    assert before[1].key != after[1].key  # GIFD's preset did
    assert json.loads(after[1].config)["resolved"]["radii"] == [0, 7]


def test_attack_cache_keys_cover_revision_and_generator_weights(tmp_path, monkeypatch):
    from safetensors.torch import save_file

    from gifd.attacks import GIFD
    from gifd.cache import attack_cache_path
    from gifd.fl import FLTask
    from gifd.generators import ConditionalDCGAN, load_generator

    p = ExperimentParams.from_dict(dict(SMALL, methods=["gifd"], out_dir=str(tmp_path)))
    task = FLTask()
    G = load_generator("bundled")
    path = attack_cache_path(tmp_path, p, GIFD(None, task, generator=G, budget=40, restarts=2), [0])
    monkeypatch.setattr(GIFD, "revision", GIFD.revision + 1)
    assert attack_cache_path(tmp_path, p, GIFD(None, task, generator=G, budget=40, restarts=2), [0]) != path
    # the same path holding other weights is another generator
    file = tmp_path / "g.safetensors"
    keys = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        save_file(ConditionalDCGAN().state_dict(), str(file))
        Gf = load_generator(f"dcgan:{file}")
        q = ExperimentParams.from_dict(dict(SMALL, methods=["gifd"], out_dir=str(tmp_path), generator=f"dcgan:{file}"))
        keys.append(attack_cache_path(tmp_path, q, GIFD(None, task, generator=Gf, budget=40, restarts=2), [0]))
    assert keys[0] != keys[1]


def test_caches_made_before_revisions_existed_keep_their_keys():
    """The committed attack cache of 02_ood_mnist (IG) is still found: unchanged attacks keep their keys."""
    from gifd.attacks import make_attack
    from gifd.cache import attack_cache_path
    from gifd.data import MNIST_STATS
    from gifd.fl import FLTask

    run = Path(__file__).resolve().parents[1] / "figures" / "02_ood_mnist"
    params = json.loads((run / "results.json").read_text())["params"]
    p = ExperimentParams(**params)
    task = FLTask((1, 32, 32), 10, *MNIST_STATS)
    for b, index in enumerate(p.indices):
        attack = make_attack("ig", None, task, budget=p.budget, seed=p.seed + b, label_strategy=p.label_strategy,
                             progress=False)  # fmt: skip
        assert attack_cache_path(run, p, attack, [index]).is_file()


# -- data --------------------------------------------------------------------------------------------------------------


def test_a_bad_archive_is_named_and_never_hides_a_good_one_of_the_same_name(tmp_path, monkeypatch):
    from gifd.data import load_images

    monkeypatch.setenv("GIFD_CACHE", str(tmp_path / "cache"))
    bad = tmp_path / "a" / "foo.tar.gz"
    bad.parent.mkdir()
    bad.write_bytes(gzip.compress(b"not a tar archive at all" * 100))
    with pytest.raises(ValueError, match=r"foo\.tar\.gz cannot be extracted as a \.tar"):
        load_images("imagefolder", bad, [0])
    assert not list((tmp_path / "cache" / "data").glob("*/.complete"))
    # an archive of the right layout with the same name is read, not mistaken for the first
    from PIL import Image

    tree = tmp_path / "tree" / "cat"
    tree.mkdir(parents=True)
    Image.new("RGB", (32, 32), (255, 0, 0)).save(tree / "x.png")
    good = tmp_path / "b" / "foo.tar.gz"
    good.parent.mkdir()
    with tarfile.open(good, "w:gz") as tar:
        tar.add(tree, arcname="cat")
    data = load_images("imagefolder", good, [0])
    assert data.classes == ["cat"] and data.images[0, 0].mean() > 0.99


def test_mnist_honours_its_split(tmp_path):
    from gifd.data import load_images

    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (tmp_path / name).write_bytes(b"")
    with pytest.raises(ValueError, match="split must be 'test' or 'train' for mnist, not 'validation'"):
        load_images("mnist", tmp_path, [0], split="validation")
    with pytest.raises(FileNotFoundError, match="no MNIST train images"):
        load_images("mnist", tmp_path, [0], split="train")
    with pytest.raises(ValueError, match="has no splits"):
        load_images("samples", None, [0], split="train")


def test_mnist_train_split_reads_the_training_files(tmp_path):
    import numpy as np

    from gifd.data import load_images

    def idx(path, arr):
        header = bytes([0, 0, 8, arr.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in arr.shape)
        path.write_bytes(header + arr.astype(np.uint8).tobytes())

    for prefix, value in (("t10k", 10), ("train", 200)):
        idx(tmp_path / f"{prefix}-images-idx3-ubyte", np.full((2, 28, 28), value))
        idx(tmp_path / f"{prefix}-labels-idx1-ubyte", np.array([1, 2]) if prefix == "t10k" else np.array([7, 8]))
    test, train = load_images("mnist", tmp_path, [1]), load_images("mnist", tmp_path, [1], split="train")
    assert test.labels.tolist() == [2] and train.labels.tolist() == [8]
    assert train.images.mean() > 0.7 > test.images.mean()


def test_dcgan_training_refuses_anything_but_a_training_split(tmp_path):
    from gifd.generators.dcgan import _training_images
    from gifd.generators.dcgan64 import training_split

    (tmp_path / "data" / "test" / "cat").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="no CIFAR-10 training split"):
        _training_images(str(tmp_path / "data" / "test"), tmp_path / "cache")
    (tmp_path / "tin" / "val" / "images").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="this is the validation split"):
        training_split(tmp_path / "tin")


# -- parameters ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad,error,message",
    [
        ({"budget": "abc"}, TypeError, "parameter 'budget' must be int, got 'abc'"),
        ({"batch_size": 2, "indices": [0]}, ValueError, "batch_size 2 does not split the 1 images"),
        ({"batch_size": 2, "indices": [0, 1, 2]}, ValueError, "batch_size 2 does not split the 3 images"),
        ({"seed": 1.5}, TypeError, "parameter 'seed' must be int"),
        ({"gifd_radii": "big"}, TypeError, "parameter 'gifd_radii' must be list"),
    ],
)
def test_parameters_of_the_wrong_type_or_shape_are_named(tmp_path, bad, error, message):
    out = tmp_path / "run"
    with pytest.raises(error, match=message):
        run_comparison({**SMALL, "out_dir": str(out), **bad})
    assert not out.exists()


def test_an_out_dir_that_cannot_be_written_fails_before_any_attack(tmp_path, monkeypatch):
    import gifd.experiment as ex

    monkeypatch.setattr(ex, "make_attack", lambda *a, **k: pytest.fail("an attack ran"))
    file = tmp_path / "file"
    file.write_text("x")
    with pytest.raises(ValueError, match="out_dir .*file' exists and is not a folder"):
        run_comparison({**SMALL, "out_dir": str(file)})
    with pytest.raises(ValueError, match="out_dir .*cannot be written"):
        run_comparison({**SMALL, "out_dir": str(file / "sub")})
    from gifd.variants import compare_variants

    with pytest.raises(ValueError, match="exists and is not a folder"):
        compare_variants({**SMALL, "out_dir": str(file)}, {"a": {}})
    with pytest.raises(TypeError, match="variant 'b': parameter 'budget'"):
        compare_variants({**SMALL, "out_dir": str(tmp_path / "v")}, {"a": {}, "b": {"budget": "x"}})


def test_unknown_or_mistyped_notebook_parameters_are_refused():
    from gifd.checks import PARAMETERS_MARK, check_notebook_parameters

    cell = f"{PARAMETERS_MARK}\nbudget = 40\ngenerator = 'bundled'\nrestarts = None\n"
    check_notebook_parameters([cell, "# Parameters\nbudget = 10\nrestarts = 3\n", "check()"])
    with pytest.raises(NameError, match="unknown notebook parameter 'buget'"):
        check_notebook_parameters([cell, "# Parameters\nbuget = 10\n", "check()"])
    with pytest.raises(TypeError, match="parameter 'budget' must be a number like its default 40, got 'abc'"):
        check_notebook_parameters([cell, "# Parameters\nbudget = 'abc'\n", "check()"])
    # a user's own cells in JupyterLab are not parameters
    check_notebook_parameters([cell, "fig = 1\n", "check()"])


def test_reproduce_refuses_an_unknown_parameter_before_running():
    from gifd.reproduce import main

    with pytest.raises(SystemExit, match="unknown parameter 'bugdet' for 01_in_distribution.ipynb"):
        main(["figures", "--only", "01_in_distribution_samples", "--set", "bugdet=3"])


# -- updates, labels, checkpoints -------------------------------------------------------------------------------


def test_labels_outside_the_task_are_named(tiny_setup):
    from gifd.attacks import make_attack

    task, model, _, _, update = tiny_setup
    with pytest.raises(ValueError, match=r"labels must lie in the task's classes \[0, 5\), got \[1, 7\]"):
        make_attack("ig", model, task, budget=8, restarts=1, progress=False)(update, torch.tensor([1, 7]))


def test_from_tensors_refuses_what_is_not_a_tensor():
    import numpy as np

    from gifd.fl import SharedUpdate

    with pytest.raises(TypeError, match="update entry 'w' is a list, not a tensor or NumPy array"):
        SharedUpdate.from_tensors({"w": [1.0, 2.0]})
    update = SharedUpdate.from_tensors({"w": np.ones((2, 2), dtype=np.float32)})
    assert torch.equal(update.tensors[0], torch.ones(2, 2))


def test_a_checkpoint_that_is_not_one_is_named(tmp_path):
    from gifd.generators import load_generator
    from gifd.models import load_checkpoint

    text = tmp_path / "notes.pt"
    text.write_text("hello\n" * 50)
    with pytest.raises(ValueError, match="notes.pt is not a PyTorch checkpoint"):
        load_checkpoint(text)
    with pytest.raises(ValueError, match="notes.pt is not a safetensors file of ConditionalDCGAN weights"):
        load_generator(f"dcgan:{text}")
    fake = tmp_path / "w.safetensors"
    fake.write_text("not safetensors")
    with pytest.raises(ValueError, match="w.safetensors is not a readable safetensors file"):
        load_checkpoint(fake)


def test_a_truncated_cache_file_is_named_and_recomputed(tmp_path):
    params = {**SMALL, "out_dir": str(tmp_path)}
    first = run_comparison(params).results["rows"][0]["psnr"]
    (cached,) = (tmp_path / "attacks").glob("ig-*.pt")
    data = cached.read_bytes()
    cached.write_bytes(data[: len(data) // 2])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = run_comparison(params).results["rows"][0]["psnr"]
    assert any(str(cached) in str(w.message) and "recomputing" in str(w.message) for w in caught)
    assert again == pytest.approx(first)
    assert cached.read_bytes() != data[: len(data) // 2]  # rewritten whole


def test_a_run_reuses_another_runs_attack_only_under_the_same_key(tmp_path):
    """``reuse_from``: a file of another run's attack cache with this run's key is copied in and read back (the
    same result, its original seconds: nothing recomputed); under any other setting nothing is reused."""
    first = run_comparison({**SMALL, "out_dir": str(tmp_path / "a")}).results["rows"][0]
    reuse = [str(tmp_path / "a" / "attacks")]
    again = run_comparison({**SMALL, "out_dir": str(tmp_path / "b"), "reuse_from": reuse}).results["rows"][0]
    assert (again["psnr"], again["seconds"]) == (first["psnr"], first["seconds"])
    names = sorted(p.name for p in (tmp_path / "a" / "attacks").glob("*.pt"))
    assert sorted(p.name for p in (tmp_path / "b" / "attacks").glob("*.pt")) == names
    other = run_comparison({**SMALL, "budget": 9, "out_dir": str(tmp_path / "c"), "reuse_from": reuse})
    assert other.results["rows"][0]["seconds"] != first["seconds"]
    assert not {p.name for p in (tmp_path / "c" / "attacks").glob("*.pt")} & set(names)


def test_a_reverse_run_attacks_the_same_batches_under_the_same_keys(tmp_path):
    """``batch_order="reverse"`` (a second process on the same run) attacks batch b with batch b's seed and key, and
    writes its results in batch order; sharing the first run's cache it recomputes nothing."""
    params = {**SMALL, "indices": [0, 1], "out_dir": str(tmp_path / "f")}
    forward = run_comparison(params).results["rows"]
    reverse = run_comparison({**params, "out_dir": str(tmp_path / "r"), "batch_order": "reverse"}).results["rows"]

    def names(run):
        return sorted(p.name for p in (tmp_path / run / "attacks").glob("*.pt"))

    assert len(names("f")) == 2 and names("r") == names("f")
    assert [r["image"] for r in reverse] == [r["image"] for r in forward] == [0, 1]
    assert [r["psnr"] for r in reverse] == pytest.approx([r["psnr"] for r in forward], abs=1e-4)
    shared = {**params, "out_dir": str(tmp_path / "s"), "batch_order": "reverse", "cache_dir": str(tmp_path / "f" /
              "attacks")}  # fmt: skip
    again = run_comparison(shared).results["rows"]
    assert [r["seconds"] for r in again] == [r["seconds"] for r in forward]  # read back, not recomputed
    assert not (tmp_path / "s" / "attacks").exists()
    with pytest.raises(ValueError, match="unknown batch_order 'backward'; use 'forward' or 'reverse'"):
        run_comparison({**params, "batch_order": "backward"})


def test_grid_keys_cover_the_defense_revision(monkeypatch):
    import gifd.defenses as defenses
    from gifd.grid import make_grid

    (job,) = make_grid(["ig"], {"clipping": [1.0]}, [0], 1, baseline=False, budget=10)
    before = job.key
    monkeypatch.setitem(defenses.REVISIONS, "clipping", 2)
    assert job.key != before


def test_keys_of_auto_labels_on_batches_carry_the_rules_revision(tmp_path, monkeypatch):
    """``auto`` changed its rule for batches (revision 2): a batch attacked under ``auto`` gets a new key, a batch
    of one and an explicit strategy keep theirs (the committed B = 1 caches stay valid)."""
    import gifd.labels as labels
    from gifd.attacks import make_attack
    from gifd.cache import attack_cache_path
    from gifd.defense_grid import make_defense_grid
    from gifd.fl import FLTask

    p = ExperimentParams.from_dict(dict(SMALL, methods=["ig"], out_dir=str(tmp_path)))
    task = FLTask()

    def paths():
        return {(s, n): attack_cache_path(tmp_path, p, make_attack("ig", None, task, budget=40, label_strategy=s),
                                          list(range(n)))  # fmt: skip
                for s in ("auto", "llg") for n in (1, 2)}  # fmt: skip

    def grid_keys():
        jobs = make_defense_grid(["ig"], None, [0, 1], 2, dataset="samples", model="convnet", budget=40)
        jobs += make_defense_grid(["ig"], None, [0], 1, dataset="samples", model="convnet", budget=40)
        return [j.key for j in jobs]

    now, grid_now = paths(), grid_keys()
    monkeypatch.setattr(labels, "AUTO_REVISION", 1)
    before, grid_before = paths(), grid_keys()
    assert now[("auto", 2)] != before[("auto", 2)] and grid_now[0] != grid_before[0]
    for other in (("auto", 1), ("llg", 1), ("llg", 2)):
        assert now[other] == before[other]
    assert grid_now[1] == grid_before[1]


def test_a_redraw_only_run_reads_its_caches_and_never_computes(tmp_path, monkeypatch):
    """``reproduce figures --redraw-only`` (``GIFD_REDRAW_ONLY``): a run whose attacks are cached redraws the same
    rows; a missing attack, label-mapping search, grid job or Flower setting is named, before any computation and
    before a results file is written."""
    from gifd.cache import REDRAW_ONLY, NotCached
    from gifd.flower_audit import run_audit
    from gifd.grid import load_records, make_grid, run_grid

    params = {**SMALL, "indices": [0, 1], "out_dir": str(tmp_path / "a")}
    first = run_comparison(params).results["rows"]
    cache = tmp_path / "a" / "attacks"
    monkeypatch.setenv(REDRAW_ONLY, "1")
    again = run_comparison({**params, "out_dir": str(tmp_path / "b"), "cache_dir": str(cache)}).results["rows"]
    assert [(r["psnr"], r["seconds"]) for r in again] == [(r["psnr"], r["seconds"]) for r in first]
    next(cache.glob("ig-1-*.pt")).unlink()
    with pytest.raises(NotCached, match=r"redraw only: the ig attack on batch 1 \(indices \[1\]\) is not in the "
                       rf"cache \({cache}/ig-1-[0-9a-f]+\.pt\)"):  # fmt: skip
        run_comparison({**params, "out_dir": str(tmp_path / "c"), "cache_dir": str(cache)})
    assert not (tmp_path / "c" / "results.json").exists()
    with pytest.raises(NotCached, match=r"the label-mapping search of batch 0 \(indices \[0\]\)"):
        run_comparison({**SMALL, "methods": ["gifd"], "label_mapping": "search", "out_dir": str(tmp_path / "m")})

    calls = []
    jobs = make_grid(["ig"], None, [0, 1], 1, budget=10, model="convnet")
    with pytest.raises(NotCached, match=rf"2 of the 2 grid jobs \(the first: {jobs[0].key}\)"):
        run_grid(jobs, lambda j: calls.append(j) or {}, tmp_path / "g", progress=False)
    assert calls == [] and load_records(tmp_path / "g") == {}
    with pytest.raises(NotCached, match=r"the Flower setting 'E=1 n=4' is not in the cache \(.*E1_n4-"):
        run_audit({"out_dir": str(tmp_path / "f"), "methods": ["ig"], "lpips": False, "progress": False})
    monkeypatch.setenv(REDRAW_ONLY, "0")  # "0" (or unset) computes again
    run_grid(jobs, lambda j: calls.append(j) or {}, tmp_path / "g", progress=False)
    assert len(calls) == 2


def test_data_enter_keys_by_content_not_by_path(tmp_path):
    """The same archive at two paths gives one key (a reader's copy finds the committed caches); other bytes give
    another; a missing path keys as given (loading names it)."""
    from gifd.keys import data_key, result_key

    one, two, other = tmp_path / "a.tar.gz", tmp_path / "sub" / "b.tar.gz", tmp_path / "c.tar.gz"
    two.parent.mkdir()
    payload = torch.randint(0, 256, (3 << 20,), dtype=torch.uint8).numpy().tobytes()  # over 2 MiB: both ends read
    one.write_bytes(payload)
    two.write_bytes(payload)
    other.write_bytes(payload[:-1] + bytes([payload[-1] ^ 1]))  # the last byte differs
    assert data_key(one) == data_key(two) and data_key(one).startswith("data:")
    assert data_key(other) != data_key(one)
    assert data_key(tmp_path / "missing.tar.gz") == str(tmp_path / "missing.tar.gz") and data_key(None) is None
    settings = dict(dataset="cifar10", indices=[0], budget=10)
    assert result_key({**settings, "data_root": str(one)}) == result_key({**settings, "data_root": str(two)})
    assert result_key({**settings, "data_root": str(one)}) != result_key({**settings, "data_root": str(other)})
    folder = tmp_path / "mnist"
    folder.mkdir()
    (folder / "t10k.gz").write_bytes(b"123")
    before = data_key(folder)
    (folder / "t10k.gz").write_bytes(b"1234")  # a file of another size in a folder: other data
    assert data_key(folder) != before


def test_the_committed_data_roots_keep_the_keys_they_were_made_with(shared_data, tmp_path):
    """Every data root of runs.json keys as its path string did before keys read content (so the committed caches
    stay valid), and so does a copy of it elsewhere (here a link under another name)."""
    from gifd.keys import KNOWN_DATA, data_key
    from gifd.reproduce import ROOT, load_runs

    runs = load_runs()["data"]
    roots = {r["parameters"]["data_root"] for r in runs.values() if r["parameters"].get("data_root")}
    assert roots <= set(KNOWN_DATA.values())
    for root in sorted(roots):
        assert data_key(ROOT / root) == root
        link = tmp_path / f"copy-{len(list(tmp_path.iterdir()))}"
        link.symlink_to((ROOT / root).resolve())
        assert data_key(link) == root


def test_a_result_rewritten_under_figures_does_not_make_the_code_dirty(tmp_path):
    """``versions()["git_dirty"]`` says whether the code that made a result differs from its commit: a redraw that
    rewrites committed figures stays clean, a changed source file does not."""
    import subprocess

    from gifd.provenance import git_dirty

    def git(*args):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path, check=True,
                       capture_output=True)  # fmt: skip

    (tmp_path / "figures").mkdir()
    (tmp_path / "code.py").write_text("x = 1\n")
    (tmp_path / "figures" / "results.json").write_text("{}\n")
    git("init", "-q")
    git("add", ".")
    git("commit", "-qm", "first")
    assert git_dirty(tmp_path) is False
    (tmp_path / "figures" / "results.json").write_text('{"redrawn": true}\n')
    (tmp_path / "new.py").write_text("")  # untracked files are not the commit's code either
    assert git_dirty(tmp_path) is False
    (tmp_path / "code.py").write_text("x = 2\n")
    assert git_dirty(tmp_path) is True


def test_make_figures_redraws_every_committed_run_it_can_and_names_the_others(tmp_path, monkeypatch, capsys):
    """``reproduce figures --committed``: each committed data run redrawn redraw-only; one whose data is not on
    this machine is skipped, one whose cache lacks an attack is named, and neither stops the others."""
    import os

    import papermill

    from gifd import reproduce
    from gifd.cache import REDRAW_ONLY

    (tmp_path / "data").mkdir()
    runs = {name: {"notebook": "x.ipynb", "parameters": {"data_root": str(root)}} for name, root in
            [("here", tmp_path / "data"), ("elsewhere", tmp_path / "missing"), ("old", tmp_path / "data"),
             ("broken", tmp_path / "data"), ("last", tmp_path / "data")]}  # fmt: skip
    monkeypatch.setattr(reproduce, "load_runs", lambda: {"data": runs})
    monkeypatch.setattr(reproduce, "committed_runs", lambda: list(runs))
    seen = []

    def execute(name, spec, overrides):
        seen.append((name, os.environ.get(REDRAW_ONLY)))
        if name == "old":
            raise SystemExit("error: old: no cached gifd attack at figures/old/attacks/gifd-0-abc.pt")
        if name == "broken":
            raise papermill.PapermillExecutionError(3, 3, "plan()", "ValueError", "undefended_from x: rerun it", [])

    monkeypatch.setattr(reproduce, "_execute", execute)
    done, left = reproduce.redraw_committed()
    assert done == ["here", "last"] and left == ["elsewhere", "old", "broken"]
    assert seen == [(name, "1") for name in ("here", "old", "broken", "last")]
    out = capsys.readouterr().out
    assert "elsewhere: skipped, its data" in out and "old: not redrawn: error: old: no cached gifd attack" in out
    assert "broken: not redrawn: ValueError: undefended_from x: rerun it" in out
    assert REDRAW_ONLY not in os.environ  # later runs of the same process compute again


def test_committed_runs_are_the_data_runs_with_a_tracked_results_file():
    from gifd.reproduce import ROOT, committed_runs, load_runs

    data = load_runs()["data"]
    runs = committed_runs()
    assert "01_in_distribution_cifar10_16" in runs and set(runs) <= set(data)
    assert all((ROOT / data[r]["parameters"]["out_dir"] / "results.json").is_file() for r in runs)


def test_committed_runs_without_git_are_those_with_results_on_disk(monkeypatch):
    import subprocess

    from gifd import reproduce

    def no_git(*args, **kwargs):
        raise FileNotFoundError("git")

    monkeypatch.setattr(subprocess, "run", no_git)
    runs = reproduce.committed_runs()
    assert "01_in_distribution_cifar10_16" in runs
    data = reproduce.load_runs()["data"]
    assert all((reproduce.ROOT / data[r]["parameters"]["out_dir"] / "results.json").is_file() for r in runs)
