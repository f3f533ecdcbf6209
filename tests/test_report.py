"""protocols.report: hand-made results dicts in, files out, parsed back and checked by hand.

The aggregation convention under test: mean ± SAMPLE std (n - 1 denominator) over the runs
that define a value; null/NaN skipped. mean(0.2, 0.4) = 0.300, sample std = 0.141.
"""
import csv
import json
import math

import pytest
from matplotlib.image import imread

from protocols import report

SYNTHETIC_SEEN = [10, 15, 20]
CIFAR_SEEN = [10, 60, 115]       # a short stand-in for IIRC-CIFAR's 22 tasks, ending at 115


def fake_run(strategy, configuration, pw, *, mile=None, js=None, superclass=None,
             name="synthetic_iirc", seen=SYNTHETIC_SEEN, posttask=False, **config):
    """A results dict as run_iirc saves it (JSON null for NaN), 3 tasks, a few metrics."""
    js = js or [v + 0.05 for v in pw]
    superclass = superclass or [None, 0.5, 0.6]
    run = {
        "config": {"strategy": strategy, "mile": mile, "configuration": configuration,
                   "seed": 100, "epochs": 140, "first_task_epochs": 280, **config},
        "environment": {"device": "cpu"},
        "benchmark": {"name": name, "num_seen": seen, "class_names": [], "tasks": []},
        "union_avg": {"pw_jaccard": pw, "jaccard": js, "strict_accuracy": [0.5, 0.4, 0.3],
                      "f1": [0.7, 0.6, 0.5]},
        "R": {"pw_jaccard": [[pw[0], None, None], [0.3, pw[1], None], [0.2, None, pw[2]]]},
        "forgetting": {"pw_jaccard": [None, 0.1, 0.2]},
        "hierarchy": {"superclass_recall": superclass, "subclass_recall": [None, 0.4, 0.5],
                      "wrong_association": [None, 0.1, 0.2]},
        "timings": {"task_seconds": [1.0, 1.0, 1.0], "total_seconds": 3.0},
    }
    if posttask:
        run["posttask_valid"] = {"union_avg": {"pw_jaccard": pw},
                                 "R": {"pw_jaccard": run["R"]["pw_jaccard"]}, "hierarchy": {}}
    return run


# union_avg 4 metrics x 3 tasks + R 6 lower cells + forgetting 3 + hierarchy 3 x 3
ROWS_PER_RUN = 4 * 3 + 6 + 3 + 3 * 3
ROWS_POSTTASK = 3 + 6


MILE = "er+MILe[no-gt,mean,no-prior,s10/e1]"     # the label of the runs below with MILe


def synthetic_runs():
    return [
        fake_run("er", 0, [0.7, 0.5, 0.2], posttask=True),
        fake_run("er", 1, [0.7, 0.5, 0.4]),
        fake_run("er", 0, [0.7, 0.6, 0.5], mile={"interactive_steps": 10},
                 superclass=[None, 0.5, None]),
        fake_run("er", 1, [0.7, 0.6, 0.6], mile={"interactive_steps": 10},
                 superclass=[None, 0.5, 0.8]),
        fake_run("finetune", 0, [0.7, 0.1, 0.05]),
    ]


def table_rows(markdown: str) -> dict[str, dict[str, str]]:
    """{run label: {column header: cell}} from comparison.md's table."""
    lines = [line for line in markdown.splitlines() if line.startswith("|")]
    headers = [h.strip() for h in lines[0].strip("|").split("|")]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]
    return {row[0]: dict(zip(headers, row, strict=True)) for row in rows}


def is_png(path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_write_report_files_parse_back(tmp_path):
    paths = report.write_report(synthetic_runs(), tmp_path / "report")
    assert set(paths) == {"runs", "comparison", "union_pwjs", "r_matrix_er",
                          "r_matrix_" + report._file_safe(MILE), "r_matrix_finetune"}

    with open(paths["runs"], newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 5 * ROWS_PER_RUN + ROWS_POSTTASK
    assert list(rows[0]) == list(report.CSV_COLUMNS)
    final_pw = [r for r in rows if r["label"] == "er" and r["configuration"] == "1"
                and r["split"] == "test" and r["kind"] == "union_avg"
                and r["metric"] == "pw_jaccard" and r["task"] == "2"]
    assert len(final_pw) == 1 and float(final_pw[0]["value"]) == 0.4
    assert final_pw[0]["num_seen"] == "20" and final_pw[0]["mile"] == "False"
    missing = [r for r in rows if r["label"] == MILE and r["configuration"] == "0"
               and r["metric"] == "superclass_recall" and r["task"] == "2"]
    assert missing[0]["kind"] == "hierarchy" and missing[0]["value"] == ""   # null -> empty
    r_cell = [r for r in rows if r["kind"] == "R" and r["label"] == "er" and r["split"] == "test"
              and r["configuration"] == "0" and r["task"] == "2" and r["eval_task"] == "0"]
    assert float(r_cell[0]["value"]) == 0.2
    assert {r["split"] for r in rows} == {"test", "posttask_valid"}

    table = table_rows(paths["comparison"].read_text())
    assert list(table) == ["er", MILE, "finetune"]
    # er: final pw-JS 0.2 and 0.4 -> mean 0.3, sample std sqrt(0.02) = 0.1414
    std = math.sqrt(((0.2 - 0.3) ** 2 + (0.4 - 0.3) ** 2) / (2 - 1))
    assert table["er"]["pw-JS"] == f"{0.3:.3f} ± {std:.3f}" == "0.300 ± 0.141"
    assert table["er"]["JS"] == "0.350 ± 0.141"
    assert table["er"]["n"] == "2"
    assert table[MILE]["pw-JS"] == "0.550 ± 0.071"
    assert table[MILE]["super recall"] == "0.800 (1 of 2)"    # one run left it null
    assert table["er"]["wrong assoc."] == "0.200 ± 0.000"
    assert table["finetune"]["pw-JS"] == "0.050 (n=1)"
    assert table["finetune"]["n"] == "1"


def test_reference_numbers_only_for_iirc_cifar(tmp_path):
    cifar = [fake_run("er", c, [0.7, 0.3, 0.1 + 0.02 * c], name="iirc_cifar100",
                      seen=CIFAR_SEEN) for c in range(2)]
    cifar.append(fake_run("er", 0, [0.7, 0.3, 0.2], name="iirc_cifar100", seen=CIFAR_SEEN,
                          mile={"interactive_steps": 10}))
    cifar_md = report.write_report(cifar, tmp_path / "cifar")["comparison"].read_text()
    table = table_rows(cifar_md)
    assert table["er"]["paper pw-JS"] == "0.130" and table["er"]["paper JS"] == "0.135"
    assert table[MILE]["paper pw-JS"] == "0.130"      # the baseline MILe must beat
    assert "iirc_cifar100, 3 tasks, 115 classes" in cifar_md
    assert "do not apply" not in cifar_md

    synthetic_md = report.comparison_table(synthetic_runs())
    assert "paper pw-JS" not in synthetic_md and "0.135" not in synthetic_md
    assert "do not apply: the benchmark is synthetic_iirc" in synthetic_md

    short = [fake_run("er", 0, [0.7, 0.3, 0.1], name="iirc_cifar100", seen=[10, 15, 20])]
    assert "do not apply: the runs stop after 20 classes" in report.comparison_table(short)


def test_pngs_are_valid_and_nontrivial(tmp_path):
    paths = report.write_report(synthetic_runs(), tmp_path)
    for name in ("union_pwjs", "r_matrix_er", "r_matrix_" + report._file_safe(MILE),
                 "r_matrix_finetune"):
        path = paths[name]
        assert path.exists() and is_png(path) and path.stat().st_size > 10_000, name
        image = imread(path)
        assert image.ndim == 3 and image.shape[0] > 300 and image.shape[1] > 300
        assert image.std() > 0.05, f"{name} looks blank"


def test_mean_r_matrix_skips_nulls():
    runs = [fake_run("er", 0, [0.6, 0.5, 0.2]), fake_run("er", 1, [0.8, 0.5, 0.4])]
    runs[1]["R"]["pw_jaccard"][2][0] = None
    matrix = report.mean_r_matrix(runs)
    assert matrix[0, 0] == pytest.approx(0.7)
    assert matrix[2, 0] == pytest.approx(0.2)          # only run 0 defines it
    assert math.isnan(matrix[2, 1]) and math.isnan(matrix[0, 2])


def test_load_results_finds_nested_runs(tmp_path):
    runs = synthetic_runs()
    for i, run in enumerate(runs):
        folder = tmp_path / "sweep" / run["config"]["strategy"] / f"run{i}" / "inner"
        folder.mkdir(parents=True)
        (folder / "results.json").write_text(json.dumps(run))
    (tmp_path / "sweep" / "er" / "run0" / "results.partial.json").write_text("{")   # unfinished
    (tmp_path / "sweep" / "notes.json").write_text("{}")

    loaded = report.load_results(tmp_path / "sweep")
    assert len(loaded) == len(runs)
    assert sorted(r["config"]["configuration"] for r in loaded) == [0, 0, 0, 1, 1]
    assert all(r["_source"].endswith("results.json") for r in loaded)
    assert loaded[0]["hierarchy"]["superclass_recall"][0] is None
    assert report.write_report(loaded, tmp_path / "report")["comparison"].exists()


def test_load_results_names_the_corrupt_file(tmp_path):
    good = tmp_path / "a" / "results.json"
    bad = tmp_path / "b" / "c" / "results.json"
    for path in (good, bad):
        path.parent.mkdir(parents=True)
    good.write_text(json.dumps(synthetic_runs()[0]))
    bad.write_text('{"config": {"strategy": "er", ')          # truncated mid-write
    with pytest.raises(ValueError, match="not valid JSON") as error:
        report.load_results(tmp_path)
    assert str(bad) in str(error.value)

    bad.write_text(json.dumps({"config": {}}))
    with pytest.raises(ValueError, match="missing benchmark"):
        report.load_results(tmp_path)
    with pytest.raises(FileNotFoundError, match="no results.json"):
        report.load_results(tmp_path / "a" / "nothing_here")


def test_same_label_on_different_task_sequences_is_refused(tmp_path):
    runs = [fake_run("er", 0, [0.7, 0.5, 0.2]),
            fake_run("er", 1, [0.7, 0.5, 0.4], name="iirc_cifar100", seen=CIFAR_SEEN)]
    runs[0]["_source"], runs[1]["_source"] = "runs/a/results.json", "runs/b/results.json"
    with pytest.raises(ValueError, match="task sequence") as error:
        report.write_report(runs, tmp_path / "report")
    assert "runs/a/results.json" in str(error.value) and "[10, 60, 115]" in str(error.value)
    assert not (tmp_path / "report" / "runs.csv").exists()     # nothing half-written
    with pytest.raises(ValueError, match="task sequence"):
        report.plot_union_curves(runs, tmp_path / "curve.png")
    # same benchmark name, other class counts per task: still a different curve
    short = fake_run("er", 1, [0.7, 0.5, 0.4], seen=[10, 15, 25])
    with pytest.raises(ValueError, match="task sequence"):
        report.comparison_table([runs[0], short])


def test_runs_with_other_settings_get_their_own_labels():
    a = fake_run("er", 0, [0.7, 0.5, 0.2], mile={"interactive_steps": 10})
    b = fake_run("er", 1, [0.7, 0.5, 0.4], mile={"interactive_steps": 20})
    rows = table_rows(report.comparison_table([a, b]))
    # the MILe variant's name (tested in test_mile_options) already tells them apart
    assert len(rows) == 2
    for steps in (10, 20):
        [label] = [row for row in rows if f"s{steps}/" in row]
        assert label.startswith("er+MILe[") and rows[label]["n"] == "1"


def test_prior_bias_alone_splits_a_label_and_seed_configuration_do_not():
    # the drift of the old hand-written list: prior_bias was not in it, so these averaged
    runs = [fake_run("er", c, [0.7, 0.5, 0.2 + c / 10], prior_bias=bias, data_fingerprint=f"{c}")
            for c in (0, 1) for bias in (False, True)]
    runs[0]["config"]["seed"] = 7                         # averaged over, like configuration
    rows = table_rows(report.comparison_table(runs))
    assert set(rows) == {"er (prior_bias=False)", "er (prior_bias=True)"}
    assert rows["er (prior_bias=True)"]["n"] == "2"
    assert rows["er (prior_bias=False)"]["pw-JS"] == "0.250 ± 0.071"


def test_failed_runs_are_listed(tmp_path):
    (tmp_path / "er" / "config1").mkdir(parents=True)
    (tmp_path / "er" / "config1" / "error.txt").write_text("Traceback ...\nMemoryError: CUDA\n")
    failed = report.load_failures(tmp_path)
    assert failed == [{"folder": str(tmp_path / "er" / "config1"), "error": "MemoryError: CUDA"}]
    table = report.comparison_table([fake_run("er", 0, [0.7, 0.5, 0.2])], failed)
    assert "## Failed runs (1)" in table and "MemoryError: CUDA" in table


def test_duplicates_are_refused():
    c = fake_run("er", 0, [0.7, 0.5, 0.4])
    with pytest.raises(ValueError, match="two runs of configuration 0 with seed 100"):
        report.comparison_table([c, fake_run("er", 0, [0.7, 0.5, 0.3])])
    with pytest.raises(ValueError, match="no runs"):
        report.comparison_table([])


def test_epoch_note_when_not_the_reference_recipe():
    runs = [fake_run("er", 0, [0.7, 0.3, 0.1], name="iirc_cifar100", seen=CIFAR_SEEN,
                     epochs=1, first_task_epochs=1)]
    assert "not the reference's (140, 280)" in report.comparison_table(runs)


def test_mean_std_convention():
    assert report.mean_std([0.2, None, 0.4]) == pytest.approx((0.3, math.sqrt(0.02), 2))
    mean, std, n = report.mean_std([0.5])
    assert (mean, n) == (0.5, 1) and math.isnan(std)
    mean, std, n = report.mean_std([None, float("nan")])
    assert n == 0 and math.isnan(mean) and math.isnan(std)
    assert report.run_label({"config": {"strategy": "lucir", "mile": {}}}) \
        == "lucir+MILe[no-gt,mean,no-prior,e1/e1]"
    old_default = {"interactive_epochs": 1, "imitation_epochs": 1, "keep_ground_truth": True}
    assert report.run_label({"config": {"strategy": "er", "mile": old_default,
                                        "prior_bias": True}}) == "er+MILe[gt,mean,prior,e1/e1]"
    assert report.run_label({"config": {"strategy": "lucir", "mile": None}}) == "lucir"


def test_the_previous_task_teacher_is_named_in_plain_words():
    default = fake_run("er", 0, [0.7, 0.5, 0.3],
                       mile={"interactive_epochs": 1, "old_class_teacher": "previous"})
    one_teacher = fake_run("er", 0, [0.7, 0.5, 0.3], mile={"interactive_epochs": 1})
    assert "the old model's labels, not the generations" in report.comparison_table([default])
    assert "prev-teacher (in a MILe label)" not in report.comparison_table([one_teacher])


def test_warm_started_runs_are_said_to_share_a_first_task():
    runs = [fake_run("er", 0, [0.7, 0.5, 0.3], warm_start="runs/first/er/config0")]
    assert "their task 0 was trained there" in report.comparison_table(runs)
    assert "warm_start" not in report.comparison_table([fake_run("er", 0, [0.7, 0.5, 0.3])])

