import pytest
import torch

from gifd.generators import make_generator
from gifd.label_mapping import make_mapping


def test_simple_mappings():
    labels = torch.tensor([3, 12, 7])
    assert make_mapping("identity", labels, 10).conditioning.tolist() == [3, 2, 7]
    a = make_mapping("random", labels, 10, num_fl_classes=20, seed=1).conditioning
    b = make_mapping("random", labels, 10, num_fl_classes=20, seed=1).conditioning
    assert torch.equal(a, b) and a.max() < 10
    none = make_mapping("none", labels, 10).conditioning
    assert none.shape == (3, 10) and torch.allclose(none.sum(1), torch.ones(3))
    with pytest.raises(ValueError, match="unknown label mapping 'wordnet'"):
        make_mapping("wordnet", labels, 10)
    with pytest.raises(ValueError, match="made for 3 slots"):
        make_mapping("identity", labels, 10)(torch.tensor([1]))


def test_gradient_search_scores_every_class_and_keeps_the_best(tiny_setup):
    task, model, _, labels, update = tiny_setup
    torch.manual_seed(0)
    G = make_generator("dcgan", num_classes=4).eval()
    m = make_mapping("search", labels, 4, model=model, task=task, update=update, G=G, probes=3)
    assert m.evaluations == 2 * 4 * 3
    assert m.scores.shape == (2, 4) and torch.isfinite(m.scores).all()
    assert m.conditioning.tolist() == m.scores.argmin(1).tolist()
    # conditioning passed to a generative attack is used as the GAN classes
    from gifd.attacks import GIFD

    result = GIFD(model, task, generator=G, budget=120, gen_labels=m, progress=False)(update)
    assert result.labels.tolist() == labels.tolist()


def test_gradient_search_in_chunks_scores_as_in_one_batch(tiny_setup):
    """Chains are evaluated ``chunk`` at a time (memory); the scores and the choice are those of one batch."""
    from gifd.label_mapping import gradient_search

    task, model, _, labels, update = tiny_setup
    torch.manual_seed(0)
    G = make_generator("dcgan", num_classes=4).eval()
    whole = gradient_search(model, task, update, G, labels, probes=3, chunk=12)
    for chunk in (1, 5):  # one chain (no vmap) and a last chunk shorter than the others
        part = gradient_search(model, task, update, G, labels, probes=3, chunk=chunk)
        torch.testing.assert_close(part.scores, whole.scores, rtol=1e-4, atol=1e-6)
        assert part.conditioning.tolist() == whole.conditioning.tolist() and part.evaluations == whole.evaluations


def test_search_counts_against_the_budget_in_the_runner(tmp_path, monkeypatch):
    import gifd.label_mapping
    from gifd.experiment import run_comparison

    params = dict(dataset="samples", indices=[0], budget=120, methods=["gifd"], model="convnet",
                  generator="random-dcgan", label_mapping="search", mapping_probes=2, out_dir=str(tmp_path),
                  progress=False, lpips=False, restarts=2)  # fmt: skip
    comp = run_comparison(params)
    row = comp.results["rows"][0]
    assert row["evaluations"] <= 120
    assert comp.results["attacks"][0]["evaluations"] == row["evaluations"]
    assert len(list((tmp_path / "attacks").glob("mapping-0-*.pt"))) == 1

    def no_search(**kw):
        raise AssertionError("the search ran again")

    monkeypatch.setattr(gifd.label_mapping, "gradient_search", no_search)
    again = run_comparison(params)  # mapping and attack from the cache
    assert again.results["rows"][0]["psnr"] == row["psnr"]
    assert again.results["attacks"][0]["evaluations"] == row["evaluations"]
    with pytest.raises(AssertionError, match="ran again"):
        run_comparison({**params, "resume": False})


def test_compare_variants_merges_runs(tmp_path):
    from gifd.variants import compare_variants

    comp = compare_variants(
        dict(dataset="samples", indices=[0], budget=64, methods=["gifd"], model="convnet", generator="random-dcgan",
             out_dir=str(tmp_path), progress=False, lpips=False, restarts=2),
        {"a": {"label_mapping": "identity"}, "b": {"label_mapping": "none", "stage_rows": True},
         "a2": {"label_mapping": "identity", "stage_rows": True}},
    )  # fmt: skip
    # one cache for all variants: a2 is the attack of a (plus its K rows), so it was not run again
    assert len(list((tmp_path / "attacks").glob("gifd-*.pt"))) == 2 and not (tmp_path / "a" / "attacks").exists()
    same = {r["method"]: r["psnr"] for r in comp.results["rows"]}
    assert same["a2"] == same["a"] and "a2[K=3]" in same
    methods = {r["method"] for r in comp.results["rows"]}
    assert {"a", "b", "b[K=0]", "b[K=3]"} <= methods
    assert (tmp_path / "results.json").is_file() and (tmp_path / "a" / "results.json").is_file()
    # the merged results record every variant's attacks with their resolved configuration
    assert [(a["variant"], a["method"]) for a in comp.results["attacks"]] == [("a", "gifd"), ("b", "gifd"),
                                                                                ("a2", "gifd")]  # fmt: skip
    assert all(a["config"]["resolved"]["last_stage"] == 3 for a in comp.results["attacks"])


def test_the_label_mapping_notebooks_variants():
    from gifd.variants import mapping_variants

    v = mapping_variants(["identity", "search"])
    assert v == {"map:identity": {"label_mapping": "identity"},
                 "map:search": {"label_mapping": "search", "stage_rows": True},
                 "no-l1": {"label_mapping": "search", "gifd_radii": [0.0]}}  # fmt: skip
    assert mapping_variants(["none"], ablation=False) == {"map:none": {"label_mapping": "none"}}
    assert list(mapping_variants(["identity", "search"], only=["no-l1"])) == ["no-l1"]
    with pytest.raises(ValueError, match="unknown variant"):
        mapping_variants(["identity"], only=["map:search"])
    with pytest.raises(ValueError, match="unknown label mapping 'wordnet'"):
        mapping_variants(["wordnet"])
