import pytest

from gifd.stats import paired, paired_sections, paired_table


def _rows(a, b):
    return [{"method": "a", "image": i, "psnr": v} for i, v in enumerate(a)] + [
        {"method": "b", "image": i, "psnr": v} for i, v in enumerate(b)
    ]


def test_paired_difference_interval_and_wins():
    rows = _rows([20, 22, 25, 21, 30, 18], [15, 23, 20, 19, 22, 17])
    p = paired(rows, "a", "b")
    assert p.n == 6 and p.mean == pytest.approx((5 - 1 + 5 + 2 + 8 + 1) / 6)
    assert p.wins == 5 and p.ci_low < p.mean < p.ci_high and p.significant
    assert p.ci_low >= -1 and p.ci_high <= 8  # within the range of the differences


def test_a_difference_that_could_be_noise_is_not_significant():
    p = paired(_rows([20, 10, 20, 10, 20, 10], [10, 20, 10, 20, 10, 21]), "a", "b")
    assert p.ci_low < 0 < p.ci_high and not p.significant and p.wins == 3


def test_only_shared_images_count_and_lpips_wins_are_lower():
    rows = _rows([0.1, 0.2], [0.3, 0.1, 0.5])
    for r in rows:
        r["lpips"] = r["psnr"]
    assert paired(rows, "a", "b", "lpips").wins == 1 and paired(rows, "a", "b", "lpips").n == 2
    with pytest.raises(ValueError, match="share no image"):
        paired(rows, "a", "c")


def test_the_table_says_when_there_are_too_few_images():
    res = {"mean": {"a": {}, "b": {}}, "rows": _rows([3, 4], [1, 2])}
    assert "only 2 images" in paired_table(res, "a")


def test_what_each_defense_costs_is_paired_with_the_undefended_cell_of_the_same_attack():
    from gifd.defense_grid import defense_pairs
    from gifd.stats import pairs_table

    def cell(attack, defense, strength, values):
        method = f"{attack}@none" if defense is None else f"{attack}@{defense}={strength:g}"
        return [{"method": method, "image": i, "attack": attack, "defense": defense, "strength": strength,
                 "psnr": v} for i, v in enumerate(values)]  # fmt: skip

    rows = (
        cell("ig", None, None, [14, 15, 16, 13, 15, 14])
        + cell("gifd", None, None, [25, 26, 24, 27, 25, 26])
        + cell("ig", "pruning", 0.9, [12, 13, 15, 10, 14, 12])
        + cell("gifd", "pruning", 0.9, [20, 22, 18, 21, 24, 20])
        + cell("dlg", "gaussian", 0.01, [9] * 6)
    )  # fmt: skip  (dlg has no undefended cell: no pair)
    pairs = defense_pairs({"rows": rows})
    assert pairs == [
        ("ig@pruning=0.9", "ig@none", "ig: pruning 0.9"),
        ("gifd@pruning=0.9", "gifd@none", "gifd: pruning 0.9"),
    ]
    table = pairs_table({"rows": rows}, pairs, "attack: defense")
    assert "| ig: pruning 0.9 | -1.83 |" in table and "| gifd: pruning 0.9 | -4.67 |" in table
    assert "| 0/6 |" in table  # the defense lowered every image of both attacks (a wins nowhere)


def test_a_sweep_pairs_the_reference_within_each_variant_or_each_variant_with_the_one_before():
    from gifd.variants import sweep_pairs

    several = {"params": {"variants": {"budget=250": {}, "budget=1000": {}}, "methods": ["ig", "gifd"]}}
    assert sweep_pairs(several) == [
        ("budget=250/gifd", "budget=250/ig", "budget=250: gifd vs ig"),
        ("budget=1000/gifd", "budget=1000/ig", "budget=1000: gifd vs ig"),
        ("budget=1000/ig", "budget=250/ig", "ig: budget=1000 vs budget=250"),
        ("budget=1000/gifd", "budget=250/gifd", "gifd: budget=1000 vs budget=250"),
    ]
    three = {"params": {"variants": {"B=1": {}, "B=4": {}, "B=8": {}}, "methods": ["ig", "gias"]}}  # no reference
    assert sweep_pairs(three) == [("B=4/ig", "B=1/ig", "ig: B=4 vs B=1"), ("B=8/ig", "B=1/ig", "ig: B=8 vs B=1"),
                                  ("B=4/gias", "B=1/gias", "gias: B=4 vs B=1"),
                                  ("B=8/gias", "B=1/gias", "gias: B=8 vs B=1")]  # fmt: skip
    one = {"params": {"variants": {"K=0": {}, "K=1": {}, "K=2": {}}, "methods": ["gifd"]}}
    assert sweep_pairs(one) == [
        ("K=1", "K=0", "K=1 vs K=0"),
        ("K=2", "K=1", "K=2 vs K=1"),
        ("K=2", "K=0", "K=2 vs K=0"),
    ]
    assert sweep_pairs({"params": {"variants": {"a": {}, "b": {}}, "methods": ["ig"]}}) == [("b", "a", "b vs a")]
    assert sweep_pairs({"params": {"variants": {"a": {}}, "methods": ["ig", "gi"]}}) == []  # one variant, no reference


def test_a_sweep_curve_draws_each_attacks_mean_against_the_setting_with_its_unit():
    import matplotlib

    matplotlib.use("Agg")
    from gifd.plots import SETTING_LABELS, sweep_curve
    from gifd.variants import SWEEPABLE

    rows = [{"method": f"budget={b}/{m}", "variant": f"budget={b}", "psnr": v}
            for b, m, vals in [(250, "ig", [10, 12]), (1000, "ig", [20, 24]), (250, "gifd", [15, 17]),
                               (1000, "gifd", [25, 27])]
            for v in vals]  # fmt: skip
    fig = sweep_curve({"params": {"methods": ["ig", "gifd"]}, "rows": rows}, "budget", [250, 1000])
    ax = fig.axes[0]
    lines = {line.get_label(): (list(line.get_xdata()), list(line.get_ydata())) for line in ax.get_lines()}
    assert lines == {"ig": ([250.0, 1000.0], [11.0, 22.0]), "gifd": ([250.0, 1000.0], [16.0, 26.0])}
    assert ax.get_xscale() == "log" and ax.get_xlabel() == "budget (loss evaluations)"
    assert ax.get_ylabel() == "PSNR (dB)" and [t.get_text() for t in ax.get_xticklabels()] == ["250", "1000"]
    linear = sweep_curve({"params": {"methods": ["ig", "gifd"]}, "rows": rows}, "budget", [250, 1000], log_x=False)
    assert linear.axes[0].get_xscale() == "linear" and list(linear.axes[0].get_xticks()) == [250.0, 1000.0]
    assert set(SWEEPABLE) <= set(SETTING_LABELS)  # every setting a sweep can vary has its axis label


def test_the_dpsgd_table_and_panel_show_each_noise_multipliers_epsilon():
    import matplotlib

    matplotlib.use("Agg")
    from gifd.defense_grid import privacy_table
    from gifd.plots import strength_curves

    def cell(attack, strength, values, eps=None):
        defense = None if strength is None else "dpsgd"
        return [{"method": f"{attack}@{defense}", "image": i, "attack": attack, "defense": defense,
                 "strength": strength, "psnr": v, **({"epsilon": eps, "delta": 1e-5} if eps else {})}
                for i, v in enumerate(values)]  # fmt: skip

    rows = cell("ig", None, [15, 17]) + cell("ig", 0.1, [12, 14], 3500.0) + cell("ig", 1.0, [9, 9], 4.2)
    table = privacy_table({"rows": rows})
    assert "| noise multiplier | ε (δ = 1e-05) | ig psnr |" in table
    assert "| none (undefended) | ∞ | 16.00 ± 1.41 |" in table
    assert "| 0.1 | 3.5e+03 | 13.00 ± 1.41 |" in table and "| 1 | 4.2 | 9.00 ± 0.00 |" in table
    assert privacy_table({"rows": cell("ig", None, [15])}) == ""
    fig = strength_curves({"rows": rows})
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["0.1\nε=3.5e+03", "1\nε=4.2"]


def test_table_md_pairs_lpips_when_every_method_has_it():
    rows = _rows([20, 22, 24, 26, 28, 30], [21, 21, 21, 21, 21, 21])
    for r in rows:
        r["lpips"] = 0.1 if r["method"] == "a" else 0.2 - r["psnr"] / 1000  # a lower everywhere: 6 wins, -0.079
    res = {"mean": {"a": {}, "b": {}}, "rows": rows}
    text = paired_sections(res, "a")
    psnr, lpips = text.split("Paired per image (LPIPS")
    assert "| b | +4.00 |" in psnr and "6/6" not in psnr  # a wins on 4 of 6 by PSNR
    assert "| b | -0.079 | [-0.079, -0.079] | 6/6 | yes |" in lpips
    for r in rows:
        if r["method"] == "b":
            r["lpips"] = None
    assert "LPIPS" not in paired_sections(res, "a")
