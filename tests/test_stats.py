import pytest

from gifd.stats import paired, paired_table


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
