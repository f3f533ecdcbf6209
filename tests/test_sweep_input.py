"""A careless sweep file: every value is refused at --dry-run, with exit 2 and one line, as
it would be before any training, and nothing is written; a long grid needs --yes."""
import ast
import re
import time
from pathlib import Path

import pytest
import torch
from test_sweep import main  # the CLI in process: (status, stdout, stderr)

import strategies
from mile_cl.benchmarks import synthetic_iirc
from mile_cl.models import resnet32
from protocols import cli, iirc_cifar
from protocols.config import RUN_KEYWORDS
from protocols.sweep import MAX_ALIAS_VALUES, load_sweep_file

REPO = Path(__file__).resolve().parents[1]


def dry_run_file(capsys, tmp_path, text, *flags):
    (tmp_path / "sweep.yaml").write_text(text)
    return main(capsys, "--synthetic", "--fast-dev-run", "--device", "cpu", "--config",
                str(tmp_path / "sweep.yaml"), "--dry-run", "--out", str(tmp_path / "runs"),
                *flags)


def error_line(err: str) -> str:
    """The one error line (argparse's usage lines before it aside)."""
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def bomb(levels: int, width: int = 9) -> str:
    """A "billion laughs" sweep file: ``levels`` lists of ``width`` aliases of the one before,
    ``width ** levels`` values once expanded, a few hundred bytes as written."""
    lines = ["strategy_overrides:", f"  l0: &l0 [{', '.join(['x'] * width)}]"]
    for k in range(1, levels):
        lines.append(f"  l{k}: &l{k} [{', '.join([f'*l{k - 1}'] * width)}]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("text, message", [
    # each passed --dry-run before and failed when its run started (exit 1, a folder left)
    ('strategy_overrides: {"bogus": 1}\n',
     "strategy_overrides: er takes no keyword 'bogus'; valid: mem_per_class, buffer_seed"),
    ("lr: .nan\n", "lr must be a finite number > 0, got nan"),
    ("seed: 99999999999999999999\n", "seed must be a whole number from 0 to 2**32 - 1"),
    ("model: ../../x\n", "model must be one of resnet32, resnet50, got '../../x'"),
    ("lr: 0\n", "lr must be a finite number > 0, got 0"),       # trained nothing, silently
    ("gpu_decode: true\n", "gpu_decode decodes JPEG files"),     # needs the data: checked too
    # safe_load kept the last of two keys, silently
    ("seed: 1\nlr: 0.1\nseed: 2\n", "key 'seed' given twice, on line 1 and line 3"),
    ("mile: {threshold: 0.6, threshold: 0.7}\n", "key 'threshold' given twice, on line 1"),
    # an alias to a list that holds it
    ("strategy_overrides: {mem_per_class: &a [*a]}\n", "expands without end"),
    # a traceback (RecursionError) before; PyYAML's own message drew the place in 4 lines
    ("lr: " + "[" * 3000 + "]" * 3000 + "\n", "nested too deeply to be a sweep file"),
    ("lr: [0.1\nseed: 1\n", "not valid YAML (expected ',' or ']', but got ':', line 2 column 5)"),
])
def test_a_bad_value_fails_the_dry_run_in_one_line(capsys, tmp_path, text, message):
    status, _, err = dry_run_file(capsys, tmp_path, text)
    assert status == 2 and message in error_line(err), err
    assert not (tmp_path / "runs").exists()


def test_a_bad_value_the_data_shows_stops_a_real_run_before_any_folder(capsys, tmp_path):
    status, _, err = main(capsys, "--synthetic", "--fast-dev-run", "--device", "cpu",
                          "--gpu-decode", "--out", str(tmp_path / "runs"))
    assert status == 2 and "gpu_decode decodes JPEG files" in error_line(err)
    assert not (tmp_path / "runs").exists()


def test_a_yaml_alias_bomb_is_refused_at_once(capsys, tmp_path):
    text = bomb(levels=10)          # over 9**10: 3.9 billion values, in 562 bytes
    assert len(text.encode()) < 600
    started = time.perf_counter()
    status, _, err = dry_run_file(capsys, tmp_path, text)
    line = error_line(err)
    added = re.search(r"its aliases \(\*name\) expand to ([\d,]+) more values", line)
    assert status == 2 and added and int(added[1].replace(",", "")) > 9**10
    assert f"more than the {MAX_ALIAS_VALUES:,} a sweep file may add" in line
    assert time.perf_counter() - started < 10 and not (tmp_path / "runs").exists()


def test_aliases_expanding_beyond_the_limit_are_refused(tmp_path):
    # 9**6 = 531,441 values: small enough that the old loader took it (and a run would
    # copy it around), big enough to be over the limit
    (tmp_path / "sweep.yaml").write_text(bomb(levels=6))
    with pytest.raises(ValueError, match=r"sweep.yaml: its aliases \(\*name\) expand to"):
        load_sweep_file(tmp_path / "sweep.yaml")


def test_aliases_and_merges_a_real_file_uses_still_load(tmp_path):
    (tmp_path / "sweep.yaml").write_text(
        "arms:\n  - &er {strategy: er, mile: false}\n  - {<<: *er, mile: true}\n"
        "  - {<<: *er, strategy: icarl_cnn}\n")
    arms = load_sweep_file(tmp_path / "sweep.yaml")["arms"]
    assert arms[1] == {"strategy": "er", "mile": True} and arms[2]["strategy"] == "icarl_cnn"


def test_a_sweep_above_the_run_cap_needs_yes(capsys, tmp_path):
    runs = cli.CONFIRM_RUNS + 1
    (tmp_path / "sweep.yaml").write_text(f"seed: {list(range(runs))}\nmile: false\n")
    status, _, err = main(capsys, "--synthetic", "--config", str(tmp_path / "sweep.yaml"),
                          "--out", str(tmp_path / "runs"))
    assert status == 2 and (f"the sweep has {runs:,} runs, more than {cli.CONFIRM_RUNS:,}: pass "
                            "--yes to start them (or --dry-run to list them)") in error_line(err)
    assert not (tmp_path / "runs").exists()
    common = ["--synthetic", "--config", str(tmp_path / "sweep.yaml"), "--out",
              str(tmp_path / "runs")]
    assert len(iirc_cifar.parse_args([*common, "--dry-run"]).jobs) == runs   # never asks
    assert len(iirc_cifar.parse_args([*common, "--yes"]).jobs) == runs


def test_run_keywords_are_what_run_iirc_gives_build():
    tree = ast.parse((REPO / "protocols" / "runner.py").read_text())
    calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call)
             and ast.unparse(node.func) == "strategies.build"]
    assert len(calls) == 1
    given = {k.arg for k in calls[0].keywords if k.arg is not None}
    assert given | {"model", "optimizer"} <= set(RUN_KEYWORDS)


# A value for every keyword a strategy takes beyond the run's own: a new keyword must be
# added here, and build must take it.
OVERRIDES = {"mem_per_class": 5, "buffer_seed": 1, "eval_every": -1, "peval_mode": "epoch",
             "reset_sigma": False, "lambda_base": 2.0, "margin": 0.3, "top_k": 1,
             "sigma_min": None, "memory_batch_size": 8, "new_classes_only": False}


@pytest.fixture(scope="module")
def bench():
    return synthetic_iirc(n_superclasses=2, subclasses_per_superclass=2, n_orphans=0,
                          classes_per_task=2, n_train_per_class=4, n_test_per_class=1)


@pytest.mark.parametrize("name", strategies.NAMES)
def test_strategy_keywords_are_what_build_takes(bench, name):
    model = resnet32(bench.num_classes,
                     head="cosine" if name in ("icarl_norm", "lucir") else "linear")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    valid = [k for k in strategies.keywords(name) if k not in RUN_KEYWORDS]
    assert set(valid) <= set(OVERRIDES)
    strategies.build(name, model, optimizer, benchmark=bench,
                     **{k: OVERRIDES[k] for k in valid})
    with pytest.raises(TypeError):
        strategies.build(name, model, optimizer, benchmark=bench, bogus=1)
