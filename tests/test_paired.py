"""Paired differences against a baseline (protocols.paired, comparison.md --baseline), checked
against hand computations."""
import math

import pytest
from test_report import fake_run, table_rows
from test_sweep import main as cli

from protocols import paired, report


def test_t_quantiles_match_the_table_and_interpolate():
    assert paired.t_quantile_975(1) == 12.706 and paired.t_quantile_975(9) == 2.262
    assert paired.t_quantile_975(35) == pytest.approx(2.030, abs=1e-3)    # t table: 2.030
    assert paired.t_quantile_975(200) == pytest.approx(1.972, abs=1e-3)   # t table: 1.972
    with pytest.raises(ValueError, match="degrees of freedom"):
        paired.t_quantile_975(0)


def test_a_paired_difference_by_hand():
    # differences 0.1, 0.3, 0.2: mean 0.2, sample sd 0.1, t(0.975, 2) = 4.303
    difference = paired.PairedDifference([0.1, 0.3, 0.2])
    half = 4.303 * 0.1 / math.sqrt(3)                        # 0.24843...
    assert difference.mean == pytest.approx(0.2)
    assert difference.interval == pytest.approx((0.2 - half, 0.2 + half))
    assert difference.wins == 3
    assert paired.format_difference(difference) == "+0.200 [-0.048, +0.448] (3/3)"
    assert paired.format_difference(paired.PairedDifference([0.05])) == "+0.050 (1 pair)"
    assert paired.format_difference(paired.PairedDifference([])) == "—"


def run(strategy, configuration, final_pw, *, seed=100, mile=None, superclass=0.5):
    result = fake_run(strategy, configuration, [0.7, 0.5, final_pw], mile=mile,
                      superclass=[None, 0.5, superclass])
    result["config"]["seed"] = seed
    return result


def test_comparison_pairs_by_configuration_and_seed_and_lists_the_unpaired():
    mile = {"interactive_steps": 10}
    results = [
        run("er", 0, 0.20, superclass=0.0), run("er", 1, 0.30, superclass=0.0),
        run("er", 2, 0.10, superclass=0.1),
        run("er", 0, 0.25, superclass=0.5, mile=mile),      # pairs with er config 0
        run("er", 1, 0.40, superclass=0.4, mile=mile),      # pairs with er config 1
        run("er", 3, 0.90, superclass=0.9, mile=mile),      # no er run of config 3
        run("er", 0, 0.50, seed=7, mile=mile),              # config 0 but another seed
    ]
    markdown = report.comparison_table(results, baseline="er")
    section = markdown.split("## Paired differences against `er`")[1]
    row = table_rows(section)["er+MILe[no-gt,mean,no-prior,s10/e1]"]
    # pw-JS: 0.25-0.20 = 0.05, 0.40-0.30 = 0.10; mean 0.075, sd 0.035355, t(1) = 12.706
    half = 12.706 * math.sqrt(((0.05 - 0.075) ** 2 + (0.10 - 0.075) ** 2) / 1) / math.sqrt(2)
    assert row["pairs"] == "2"
    assert row["Δ pw-JS"] == f"+0.075 [{0.075 - half:+.3f}, {0.075 + half:+.3f}] (2/2)"
    # superclass recall: 0.5-0.0, 0.4-0.0 -> mean 0.45
    assert row["Δ super recall"].startswith("+0.450 [")
    assert "- `er+MILe[no-gt,mean,no-prior,s10/e1]`: configuration 3, seed 100 has no `er` run" \
        in section
    assert "configuration 0, seed 7 has no `er` run" in section
    assert "- `er`: configuration 2, seed 100 has no `er+MILe[no-gt,mean,no-prior,s10/e1]` run" \
        in section
    assert "Unpaired runs (3)" in section


def test_an_unknown_baseline_names_the_labels():
    results = [run("er", 0, 0.2), run("finetune", 0, 0.1)]
    markdown = report.comparison_table(results, baseline="joint")
    assert "No runs are labelled `joint`; the labels are: `er`, `finetune`" in markdown


def test_no_baseline_no_section():
    assert "Paired differences" not in report.comparison_table([run("er", 0, 0.2)])


def test_baseline_flag_must_name_a_swept_strategy(capsys, tmp_path):
    status, _, err = cli(capsys, "--synthetic", "--fast-dev-run", "--strategy", "finetune",
                         "--device", "cpu", "--baseline", "er", "--out", str(tmp_path / "out"))
    assert status == 2 and "--baseline 'er': the sweep runs no 'er'" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.filterwarnings("ignore:Call to deprecated function update")
def test_baseline_flag_puts_paired_differences_in_comparison_md(capsys, tmp_path):
    status, _, _ = cli(capsys, "--synthetic", "--fast-dev-run", "--strategy", "finetune,er",
                       "--mile", "off", "--configurations", "0-1", "--device", "cpu",
                       "--baseline", "er", "--out", str(tmp_path / "out"))
    assert status == 0
    section = (tmp_path / "out" / "comparison.md").read_text().split(
        "## Paired differences against `er`")[1]
    assert table_rows(section)["finetune"]["pairs"] == "2"


def test_paired_differences_on_posttask_valid_read_that_split():
    results = [run("er", 0, 0.20), run("er", 1, 0.30),
               run("finetune", 0, 0.10), run("finetune", 1, 0.10)]
    for result, posttask in zip(results, (0.5, 0.6, 0.1, 0.3), strict=True):
        result["posttask_valid"] = {"union_avg": {"pw_jaccard": [0.9, 0.8, posttask]}}
    markdown = report.comparison_table(results, baseline="er", baseline_split="posttask_valid")
    section = markdown.split("## Paired differences against `er` (final, posttask-valid")[1]
    # posttask: 0.1-0.5 = -0.4, 0.3-0.6 = -0.3 (test would give -0.1 and -0.2)
    assert table_rows(section)["finetune"]["Δ pw-JS"].startswith("-0.350 [")
