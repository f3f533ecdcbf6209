"""Sweep files and --dry-run: the grid, flags over the file, and errors naming the key."""
import sys
from pathlib import Path

import pytest

from protocols import iirc_cifar
from protocols.config import MILE_DEFAULTS
from protocols.sweep import expand, run_folders

REPO = Path(__file__).resolve().parents[1]


def main(capsys, *args):
    """(exit status, stdout, stderr) of the CLI, in process."""
    try:
        status = iirc_cifar.main([*args, "--quiet"])
    except SystemExit as exit_:
        status = exit_.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def dry_run_rows(out: str) -> list[list[str]]:
    lines = out.strip().splitlines()
    return [line.split() for line in lines[1:] if not line.endswith("run(s)")]


SWEEP = """\
benchmark: synthetic_iirc
synthetic_per_class: [8, 2]
strategy: [finetune, er]
mile: [false, {threshold: 0.7}]
configuration: [0, 1, 2]
fast_dev_run: true
"""


def test_grid_expands_to_the_expected_runs(capsys, tmp_path):
    (tmp_path / "sweep.yaml").write_text(SWEEP)
    status, out, _ = main(capsys, "--config", str(tmp_path / "sweep.yaml"), "--dry-run",
                          "--out", str(tmp_path / "runs"))
    assert status == 0 and "12 run(s)" in out
    rows = dry_run_rows(out)
    assert [(r[0], r[1]) for r in rows[:4]] == [("finetune", "0"), ("finetune+mile", "0"),
                                                ("er", "0"), ("er+mile", "0")]
    assert {r[1] for r in rows} == {"0", "1", "2"}
    assert rows[0][2] == str(tmp_path / "runs" / "finetune" / "config0")
    assert all(int(r[3]) > 0 for r in rows)             # sample-steps of a fast dev run
    assert not (tmp_path / "runs").exists()              # a dry run writes nothing


def test_flags_override_the_file(capsys, tmp_path):
    (tmp_path / "sweep.yaml").write_text(SWEEP)
    status, out, _ = main(capsys, "--config", str(tmp_path / "sweep.yaml"), "--dry-run",
                          "--strategy", "er", "--mile", "on", "--configurations", "4",
                          "--mile-threshold", "0.6", "--out", str(tmp_path / "runs"))
    assert status == 0 and "1 run(s)" in out
    assert dry_run_rows(out) and dry_run_rows(out)[0][:2] == ["er+mile", "4"]
    args = iirc_cifar.parse_args(["--config", str(tmp_path / "sweep.yaml"), "--mile", "on",
                                  "--mile-threshold", "0.6", "--epochs", "3",
                                  "--out", str(tmp_path / "runs")])
    configs = [job.config for job in args.jobs]
    assert {c.mile.threshold for c in configs} == {0.6}         # the flag beat the file's 0.7
    assert {c.epochs for c in configs} == {3} and {c.synthetic_per_class for c in configs} == {
        (8, 2)}


@pytest.mark.parametrize("text, message", [
    ("epoch: 3\n", "unknown key 'epoch'; valid keys (RunConfig fields): benchmark, "),
    ("epochs: three\n", "sweep.yaml: epochs must be a whole number, got 'three'"),
    ("prior_bias: [yes, 2]\n", "prior_bias must be true or false, got 2"),
    ("mile: {threshhold: 0.4}\n", "unknown mile setting 'threshhold'; valid: interactive_steps"),
    ("- strategy\n", "expected a mapping of RunConfig fields"),
])
def test_sweep_file_errors_name_the_key(capsys, tmp_path, text, message):
    (tmp_path / "sweep.yaml").write_text(text)
    status, _, err = main(capsys, "--config", str(tmp_path / "sweep.yaml"), "--synthetic",
                          "--dry-run", "--out", str(tmp_path / "runs"))
    assert status == 2 and message in err, err


def test_runs_differing_only_in_prior_bias_get_their_own_folders(tmp_path):
    configs = expand({"benchmark": "synthetic_iirc", "strategy": "er", "mile": [None, True],
                      "prior_bias": [False, True]})
    assert len(configs) == 4
    folders = [folder for _, folder in run_folders(configs, tmp_path)]
    assert len(set(folders)) == 4
    assert tmp_path / "er+mile,prior_bias=True" / "config0" in folders
    assert configs[2].mile == MILE_DEFAULTS and configs[2].prior_bias is False


def test_workers_without_ray_says_how_to_install_it(capsys, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)          # import ray -> ImportError
    status, _, err = main(capsys, "--synthetic", "--fast-dev-run", "--workers", "2",
                          "--out", str(tmp_path / "runs"))
    assert status == 2 and 'pip install -e ".[ray]"' in err


def test_help_reads_like_a_man_page(capsys):
    status, out, _ = main(capsys, "--help")
    assert status == 0
    for section in ("synopsis:", "description:", "sweep files:", "execution:", "examples:",
                    "exit status:", "the recipe:", "MILe knobs", "sweep and execution:"):
        assert section in out, section
    # a flag for every RunConfig field, because the field exists
    for flag in ("--momentum X", "--weight-decay X", "--eval-batch-size N", "--selection",
                 "--prior-bias, --no-prior-bias", "--mile-threshold X", "--workers N",
                 "--gpus-per-run F", "--ray-address ADDR"):
        assert flag in out, flag
