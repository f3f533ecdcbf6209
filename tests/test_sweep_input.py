"""A careless sweep file is refused at --dry-run, with exit 2 and one line, and nothing is
written."""
import re
import time

import pytest

from protocols import iirc_cifar
from protocols.sweep import MAX_ALIAS_VALUES, load_sweep_file


def main(capsys, *args):
    """(exit status, stdout, stderr) of the CLI, in process."""
    try:
        status = iirc_cifar.main([*args, "--quiet"])
    except SystemExit as exit_:
        status = exit_.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


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
    # safe_load kept the last of two keys, silently
    ("seed: 1\nlr: 0.1\nseed: 2\n", "key 'seed' given twice, on line 1 and line 3"),
    ("mile: {threshold: 0.6, threshold: 0.7}\n", "key 'threshold' given twice, on line 1"),
    # an alias to a list that holds it
    ("strategy_overrides: {mem_per_class: &a [*a]}\n", "expands without end"),
])
def test_a_bad_value_fails_the_dry_run_in_one_line(capsys, tmp_path, text, message):
    status, _, err = dry_run_file(capsys, tmp_path, text)
    assert status == 2 and message in error_line(err), err
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

