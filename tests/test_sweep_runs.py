"""A sweep that runs: a run that raises does not stop the others, and runs that differ only in
prior_bias are reported under two labels."""
from pathlib import Path

import pytest
from avalanche.core import SupervisedPlugin

import strategies
from protocols import iirc_cifar

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.filterwarnings("ignore:Call to deprecated function update")

SWEEP = """\
benchmark: synthetic_iirc
synthetic_per_class: [8, 2]
strategy: finetune
mile: false
prior_bias: [false, true]
configuration: [0, 1]
fast_dev_run: true
device: cpu
"""


class OutOfMemoryAtTask(SupervisedPlugin):
    def before_training_exp(self, strategy, **kwargs):
        if strategy.experience.current_experience == 1:
            raise MemoryError("CUDA out of memory (pretend)")


def test_a_raising_run_does_not_stop_the_others(capsys, tmp_path, monkeypatch):
    builds = []
    build = strategies.build

    def third_run_raises(*args, plugins=(), **kwargs):      # runs go in grid order
        builds.append(1)
        extra = [OutOfMemoryAtTask()] if len(builds) == 3 else []
        return build(*args, plugins=[*plugins, *extra], **kwargs)
    monkeypatch.setattr(strategies, "build", third_run_raises)
    (tmp_path / "sweep.yaml").write_text(SWEEP)
    out = tmp_path / "runs"
    status = iirc_cifar.main(["--config", str(tmp_path / "sweep.yaml"), "--out", str(out),
                              "--quiet"])
    err = capsys.readouterr().err
    assert status == 1 and len(builds) == 4                   # the fourth run still ran
    failed = out / "finetune,prior_bias=False" / "config1"
    assert "MemoryError: CUDA out of memory (pretend)" in (failed / "error.txt").read_text()
    assert "Traceback" in (failed / "error.txt").read_text()
    assert not (failed / "results.json").exists()
    assert "1 run(s) failed" in err and "finetune,prior_bias=False config1" in err
    table = (out / "comparison.md").read_text()
    assert "## Failed runs (1)" in table and str(failed) in table
    rows = {line.split("|")[1].strip(): line.split("|")[2].strip()
            for line in table.splitlines() if line.startswith("| finetune")}
    # two labels, prior_bias told apart; the failed run is not counted
    assert rows == {"finetune (prior_bias=False)": "1", "finetune (prior_bias=True)": "2"}
